"""Question answering commands: train qa, predict qa, qa, eval-squad."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from minitransfer.cli import HelpFormatter, UsageError, add_device_flag
from minitransfer.cli.training_options import add_training_flags, printing_callbacks, training_arguments
from minitransfer.errors import InputError


def register(commands, train_tasks) -> None:
    p = train_tasks.add_parser("qa", help="span question answering on SQuAD-format JSON", formatter_class=HelpFormatter)
    add_training_flags(p, epochs=2, max_length=384)
    p.add_argument("--doc-stride", type=int, default=128, help="tokens shared by consecutive windows of a context")
    p.add_argument("--dev-fraction", type=float, default=0.1, help="without --eval: share of articles held out")
    p.add_argument("--split-by", choices=["title", "context"], default="title",
                   help="without --eval: hold out whole articles (title) or paragraphs (context)")
    p.add_argument("--cache-dir", help="cache tokenized windows here (reused when nothing changed)")
    p.set_defaults(func=train_qa)

    p = commands.add_parser("predict-qa", help="predict qa DIR --data F --out predictions.json",
                            formatter_class=HelpFormatter)
    add_model_and_window_flags(p)
    p.add_argument("--data", required=True, help="SQuAD-format JSON")
    p.add_argument("--out", required=True, help="where to write {id: answer}")
    p.set_defaults(func=predict_qa)

    p = commands.add_parser("qa", help="answer one question about a context (of any length)",
                            formatter_class=HelpFormatter)
    add_model_and_window_flags(p)
    p.add_argument("--question", required=True, help="the question to answer")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--context", help="the text to find the answer in")
    group.add_argument("--context-file", help="a file holding the context")
    p.set_defaults(func=ask)

    p = commands.add_parser("eval-squad", help="official SQuAD v1.1 EM/F1 of a predictions file",
                            formatter_class=HelpFormatter)
    p.add_argument("predictions", help="JSON {question id: answer}")
    p.add_argument("data", help="SQuAD-format JSON with the gold answers")
    p.set_defaults(func=eval_squad)


def add_model_and_window_flags(p: argparse.ArgumentParser) -> None:
    """A fine-tuned QA directory and its window settings (by default the run's own)."""
    p.add_argument("model_dir", help="fine-tuned QA model directory (from train qa)")
    p.add_argument("--max-length", type=int,
                   help="tokens per window (default: the run's own, from qa_args.json, else 384)")
    p.add_argument("--doc-stride", type=int,
                   help="tokens shared by consecutive windows (default: the run's own, else 128)")
    add_device_flag(p)


def train_qa(args: argparse.Namespace) -> None:
    from minitransfer.tasks.squad.recipe import train_qa as run

    metrics = run(args.model, args.train, args.eval, training_arguments(args, "f1"), args.max_length, args.doc_stride,
                  args.max_train_examples, args.max_eval_examples, args.dev_fraction, args.split_by, args.cache_dir,
                  args.resume, printing_callbacks())
    print(json.dumps(metrics, indent=2))


def predict_qa(args: argparse.Namespace) -> None:
    from minitransfer.tasks.squad.recipe import predict_squad

    predictions = predict_squad(args.model_dir, args.data, args.max_length, args.doc_stride, device=args.device)
    Path(args.out).write_text(json.dumps(predictions, indent=1, ensure_ascii=False))
    print(f"{len(predictions)} predictions written to {args.out}")


def ask(args: argparse.Namespace) -> None:
    from minitransfer import AutoModelForQuestionAnswering, AutoTokenizer
    from minitransfer.tasks.squad import answer
    from minitransfer.tasks.squad.recipe import window_settings

    if not args.question.strip():
        raise UsageError("--question is empty: give the question to answer")
    if args.context_file:
        path = Path(args.context_file)
        if not path.is_file():
            raise InputError(f"no context file at {path}")
        context = path.read_text(encoding="utf-8")
    else:
        context = args.context
    max_length, doc_stride = window_settings(args.model_dir, args.max_length, args.doc_stride)
    model = AutoModelForQuestionAnswering.from_pretrained(args.model_dir).eval().to(args.device)
    result = answer(args.question, context, model, AutoTokenizer.from_pretrained(args.model_dir), max_length,
                    doc_stride)
    print(f"{result['answer']}\t(score {result['score']:.2f}, probability {result['probability']:.3f}, "
          f"characters {result['start']}-{result['end']})")


def eval_squad(args: argparse.Namespace) -> None:
    from minitransfer.tasks.squad import evaluate

    print(json.dumps(evaluate(args.data, args.predictions)))
