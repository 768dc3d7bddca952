"""Classification commands: train classification, eval, predict, compare."""
from __future__ import annotations

import argparse
import json

from minitransfer.cli import HelpFormatter, UsageError, add_device_flag
from minitransfer.cli.training_options import FORMATS, add_training_flags, printing_callbacks, training_arguments


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
    add_device_flag(p)
    p.set_defaults(func=evaluate)

    p = commands.add_parser("predict", help='classify texts: predict DIR "text" ["text" ...] (QA: predict qa DIR ...)',
                            formatter_class=HelpFormatter)
    p.add_argument("model_dir", help="fine-tuned classifier directory (from train classification)")
    p.add_argument("texts", nargs="+", help="texts to classify, one result line each")
    p.add_argument("--pair", action="append", help="second sentence for sentence-pair models (one per text)")
    p.add_argument("--max-length", type=int, default=128, help="tokens per input; longer inputs are truncated")
    add_device_flag(p)
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
    from minitransfer.tasks.classification.recipe import Recipe

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
    from minitransfer.tasks.classification.recipe import Recipe

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
    from minitransfer.tasks.classification.recipe import train_classification as run

    metrics = run(args.model, args.train, args.eval, training_arguments(args, args.metric), recipe_from_args(args),
                  args.format, args.max_length, args.max_train_examples, args.max_eval_examples, args.resume,
                  printing_callbacks())
    print(json.dumps(metrics, indent=2))


def evaluate(args: argparse.Namespace) -> None:
    from minitransfer.tasks.classification.recipe import evaluate_classifier

    print(json.dumps(evaluate_classifier(args.model_dir, args.data, args.format, args.max_length,
                                         device=args.device), indent=2))


def predict(args: argparse.Namespace) -> None:
    from minitransfer.pipelines import pipeline

    if args.pair and len(args.pair) != len(args.texts):
        raise UsageError(f"{len(args.texts)} texts but {len(args.pair)} --pair sentences: give one --pair per text")
    inputs = [{"text": t, "text_pair": p} for t, p in zip(args.texts, args.pair)] if args.pair else args.texts
    classify = pipeline("text-classification", model=args.model_dir, batch_size=64, device=args.device)
    for text, result in zip(args.texts, classify(inputs, truncation=True, max_length=args.max_length)):
        print(f"{result['label']}\t{result['score']:.4f}\t{text}")


def compare(args: argparse.Namespace) -> None:
    from pathlib import Path

    from minitransfer.tasks.classification.recipe import train_classification as run

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
                      args.max_train_examples, args.max_eval_examples, callbacks=printing_callbacks())
        rows.append((recipe.name, metrics))
    keys = [k for k in ("accuracy", "f1", "macro_f1", "eval_loss", "train_runtime_s") if k in rows[0][1]]
    print("\n" + f"{'recipe':<20}" + "".join(f"{k:>16}" for k in keys))
    for name, metrics in rows:
        print(f"{name:<20}" + "".join(f"{metrics[k]:>16.4f}" for k in keys))
    (Path(args.out) / "compare.json").write_text(json.dumps(dict(rows), indent=2))
