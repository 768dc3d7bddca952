"""`minitransfer` command line: each subcommand is a few lines over the library.

Command groups live in modules beside this one; each has `register(commands, train_tasks)` adding its
subparsers (`train_tasks` holds the `minitransfer train <task>` subcommands).
Errors a user can fix (MiniTransferError) print one line and exit with status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from minitransfer.errors import MiniTransferError

COMMAND_MODULES = [
    "minitransfer.cli.model_commands",
    "minitransfer.cli.classification_commands",
    "minitransfer.cli.adaptation_commands",
    "minitransfer.cli.qa_commands",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minitransfer", description="Fine-tune BERT-family models on NLP tasks.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = commands.add_parser("train", help="fine-tune a model on a task")
    train_tasks = train.add_subparsers(dest="task", required=True, metavar="TASK")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands, train_tasks)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["predict", "qa"]:  # `predict qa DIR` and `predict DIR TEXT` share a verb
        argv = ["predict-qa"] + argv[2:]
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MiniTransferError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
