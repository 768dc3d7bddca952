"""Classification commands: train classification, eval, predict, compare."""
from __future__ import annotations

import argparse
import json

from minitransfer.cli import HelpFormatter, UsageError

FORMATS = ["glue", "msr", "sms", "csv", "jsonl"]


def add_training_flags(p: argparse.ArgumentParser, *, batch_size: int = 32, max_length: int = 128, epochs: float = 3,
                       lr: float = 5e-5) -> None:
    """The flags every `train` task shares (defaults as transformers' examples)."""
    p.add_argument("--model", default="minilm", help="pretrained model directory or cached alias")
    p.add_argument("--train", required=True, help="training file")
    p.add_argument("--eval", help="evaluation file (metrics each epoch; the best model is kept)")
    p.add_argument("--out", required=True,
                   help="output directory (the best model and tokenizer, metrics.jsonl, checkpoint-N/ folders)")
    p.add_argument("--epochs", type=float, default=epochs, help="passes over the training data (may be fractional)")
    p.add_argument("--max-steps", type=int, default=-1,
                   help="stop after this many optimizer steps (overrides --epochs)")
    p.add_argument("--lr", type=float, default=lr, help="peak learning rate (AdamW)")
    p.add_argument("--batch-size", type=int, default=batch_size, help="training examples per batch")
    p.add_argument("--grad-accum", type=int, default=1, help="gradient accumulation steps")
    p.add_argument("--max-length", type=int, default=max_length, help="tokens per input; longer inputs are truncated")
    p.add_argument("--max-train-examples", type=int, help="use only the first N training examples")
    p.add_argument("--max-eval-examples", type=int, help="use only the first N evaluation examples")
    p.add_argument("--seed", type=int, default=42, help="random seed (shuffling, dropout, new weights)")
    p.add_argument("--warmup", type=float, default=0.1, help="fraction of steps with linear warmup")
    p.add_argument("--weight-decay", type=float, default=0.01,
                   help="AdamW weight decay (not on biases and LayerNorm weights)")
    p.add_argument("--schedule", choices=["linear", "constant", "cosine"], default="linear",
                   help="learning-rate schedule after the warmup")
    p.add_argument("--max-grad-norm", type=float, default=1.0, help="clip the gradient norm to this (0: no clipping)")
    p.add_argument("--logging-steps", type=int, default=10, help="log the mean training loss every N steps")
    p.add_argument("--eval-steps", type=int, default=0,
                   help="evaluate and checkpoint every N steps instead of every epoch (0: every epoch)")
    p.add_argument("--resume", action="store_true", help="continue from the latest OUT/checkpoint-N")
    p.add_argument("--plot", action="store_true", help="write OUT/curves.png (needs matplotlib)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--group-by-length", action="store_true",
                   help="batch sentences of similar length together: less padding, faster (transformers' option)")
    p.add_argument("--max-tokens-per-batch", type=int, default=0, metavar="N",
                   help="batches of at most N real tokens instead of --batch-size rows (fairseq's max_tokens; 0: off)")
    p.add_argument("--overwrite-output-dir", action="store_true",
                   help="replace the run already in --out (by default a finished run's folder is kept)")
    p.add_argument("--no-padding-free", dest="padding_free", action="store_false",
                   help="compute padding too, as transformers does (its exact numbers; slower)")


def training_arguments(args: argparse.Namespace, metric: str = "accuracy", greater_is_better: bool = True):
    """The CLI's recipe in transformers' terms: evaluate and checkpoint every epoch (or every --eval-steps), keep the
    best and the latest checkpoint, end on the best model; log every 10 steps."""
    from minitransfer.training import TrainingArguments

    check_output_dir(args)
    strategy = "steps" if args.eval_steps else "epoch"
    return TrainingArguments(
        output_dir=args.out, num_train_epochs=args.epochs, max_steps=args.max_steps, learning_rate=args.lr,
        per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=64,
        gradient_accumulation_steps=args.grad_accum, seed=args.seed, warmup_ratio=args.warmup,
        weight_decay=args.weight_decay, lr_scheduler_type=args.schedule, max_grad_norm=args.max_grad_norm,
        logging_steps=args.logging_steps, eval_strategy=strategy, save_strategy=strategy,
        eval_steps=args.eval_steps or None,
        save_steps=args.eval_steps or 500, save_total_limit=1, load_best_model_at_end=True,
        metric_for_best_model=metric, greater_is_better=greater_is_better, plot=args.plot,
        group_by_length=args.group_by_length, max_tokens_per_batch=args.max_tokens_per_batch,
        padding_free=args.padding_free, disable_tqdm=args.no_progress,
        overwrite_output_dir=args.overwrite_output_dir)


RUN_FILES = ("training_args.json", "metrics.jsonl", "model.safetensors", "config.json", "compare.json")


def check_output_dir(args: argparse.Namespace) -> None:
    """--out must not be the model being trained, and a finished run there is kept unless the user says otherwise."""
    from pathlib import Path

    from minitransfer.errors import TrainingError

    out = Path(args.out)
    model = Path(getattr(args, "model", "") or "")
    if model.is_dir() and out.exists() and out.resolve() == model.resolve():
        raise UsageError(f"--out {out} is the model folder itself: training would overwrite the checkpoint it starts "
                         "from; give another --out")
    if out.is_file():
        raise UsageError(f"--out {out} is a file: give a folder (it is created if missing)")
    previous = out.is_dir() and (any((out / name).exists() for name in RUN_FILES) or any(out.glob("checkpoint-*")))
    if previous and not args.resume and not args.overwrite_output_dir:
        raise TrainingError(f"{out} already holds a run (its model, metrics or checkpoints): pass --resume to "
                            "continue it, --overwrite-output-dir to replace it, or choose another --out")


def add_freezing_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--freeze-embeddings", action="store_true", help="keep the embedding layer fixed")
    p.add_argument("--freeze-layers", type=int, default=0, metavar="N",
                   help="keep embeddings and the lower N layers fixed")
    p.add_argument("--head-only", action="store_true", help="train only the new head (linear probe)")
    p.add_argument("--from-scratch", action="store_true", help="same architecture, random weights (no transfer)")


def register(commands, train_tasks) -> None:
    p = train_tasks.add_parser("classification", help="sentence or sentence-pair classification",
                               formatter_class=HelpFormatter)
    add_training_flags(p)
    add_freezing_flags(p)
    p.add_argument("--format", choices=FORMATS, help="file layout (detected when omitted)")
    p.add_argument("--metric", default="accuracy", choices=["accuracy", "f1", "macro_f1"],
                   help="metric that picks the best checkpoint")
    p.set_defaults(func=train_classification)

    p = commands.add_parser("eval", help="evaluate a fine-tuned classifier on a labeled file",
                            formatter_class=HelpFormatter)
    p.add_argument("model_dir", help="fine-tuned classifier directory (from train classification)")
    p.add_argument("--data", required=True, help="labeled file to score")
    p.add_argument("--format", choices=FORMATS, help="file layout (detected when omitted)")
    p.add_argument("--max-length", type=int, default=128, help="tokens per input; longer inputs are truncated")
    p.set_defaults(func=evaluate)

    p = commands.add_parser("predict", help='classify texts: predict DIR "text" ["text" ...] (QA: predict qa DIR ...)',
                            formatter_class=HelpFormatter)
    p.add_argument("model_dir", help="fine-tuned classifier directory (from train classification)")
    p.add_argument("texts", nargs="+", help="texts to classify, one result line each")
    p.add_argument("--pair", action="append", help="second sentence for sentence-pair models (one per text)")
    p.add_argument("--max-length", type=int, default=128, help="tokens per input; longer inputs are truncated")
    p.set_defaults(func=predict)

    p = commands.add_parser("compare", help="pretrained vs from-scratch (and full vs partial fine-tuning), one table",
                            formatter_class=HelpFormatter)
    add_training_flags(p)
    p.add_argument("--format", choices=FORMATS, help="file layout (detected when omitted)")
    p.add_argument("--recipes", default="full,scratch",
                   help="comma-separated from: full, scratch, freeze-embeddings, freeze-N (lower N layers), head-only")
    p.add_argument("--metric", default="accuracy", choices=["accuracy", "f1", "macro_f1"],
                   help="metric that picks each run's best checkpoint")
    p.set_defaults(func=compare)


def recipe_from_args(args) -> object:
    from minitransfer.training.classification import Recipe

    if args.head_only and (args.freeze_layers or args.freeze_embeddings):
        raise UsageError("--head-only already freezes the whole body: drop --freeze-layers / --freeze-embeddings, "
                         "or drop --head-only to train the layers above them")
    if args.head_only and args.from_scratch:
        raise UsageError("--head-only with --from-scratch would train a head on a random, frozen body: drop one")
    if args.from_scratch:
        name = "scratch"
    elif args.head_only:
        name = "head-only"
    elif args.freeze_layers:
        name = f"freeze-{args.freeze_layers}"
    else:
        name = "freeze-embeddings" if args.freeze_embeddings else "full"
    return Recipe(name, args.from_scratch, args.freeze_embeddings, args.freeze_layers, args.head_only)


def parse_recipe(name: str):
    from minitransfer.training.classification import Recipe

    if name == "full":
        return Recipe("full")
    if name == "scratch":
        return Recipe("scratch", from_scratch=True)
    if name == "freeze-embeddings":
        return Recipe(name, freeze_embeddings=True)
    if name == "head-only":
        return Recipe(name, head_only=True)
    if name.startswith("freeze-") and name[7:].isdigit():
        return Recipe(name, freeze_layers=int(name[7:]))
    raise UsageError(f"unknown recipe {name!r}: use full, scratch, freeze-embeddings, freeze-N or head-only")


def train_classification(args: argparse.Namespace) -> None:
    from minitransfer.training.classification import train_classification as run

    metrics = run(args.model, args.train, args.eval, training_arguments(args, args.metric), recipe_from_args(args),
                  args.format, args.max_length, args.max_train_examples, args.max_eval_examples, args.resume)
    print(json.dumps(metrics, indent=2))


def evaluate(args: argparse.Namespace) -> None:
    from minitransfer.training.classification import evaluate_classifier

    print(json.dumps(evaluate_classifier(args.model_dir, args.data, args.format, args.max_length), indent=2))


def predict(args: argparse.Namespace) -> None:
    from minitransfer.training.classification import predict_texts

    if args.pair and len(args.pair) != len(args.texts):
        raise UsageError(f"{len(args.texts)} texts but {len(args.pair)} --pair sentences: give one --pair per text")
    for text, result in zip(args.texts, predict_texts(args.model_dir, args.texts, args.pair, args.max_length)):
        print(f"{result['label']}\t{result['score']:.4f}\t{text}")


def compare(args: argparse.Namespace) -> None:
    from pathlib import Path

    from minitransfer.training.classification import train_classification as run

    recipes = [parse_recipe(name.strip()) for name in args.recipes.split(",") if name.strip()]
    if not recipes:
        raise UsageError("--recipes is empty: use full, scratch, freeze-embeddings, freeze-N or head-only")
    if not args.eval:
        raise UsageError("compare needs --eval: the comparison is on held-out data")
    rows = []
    for recipe in recipes:
        run_args = training_arguments(args, args.metric)
        run_args.output_dir = str(Path(args.out) / recipe.name)
        metrics = run(args.model, args.train, args.eval, run_args, recipe, args.format, args.max_length,
                      args.max_train_examples, args.max_eval_examples)
        rows.append((recipe.name, metrics))
    keys = [k for k in ("accuracy", "f1", "macro_f1", "eval_loss", "train_runtime_s") if k in rows[0][1]]
    print("\n" + f"{'recipe':<20}" + "".join(f"{k:>16}" for k in keys))
    for name, metrics in rows:
        print(f"{name:<20}" + "".join(f"{metrics[k]:>16.4f}" for k in keys))
    (Path(args.out) / "compare.json").write_text(json.dumps(dict(rows), indent=2))
