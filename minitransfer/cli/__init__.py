"""`minitransfer` command line: each subcommand is a few lines over the library.

Command groups live in modules beside this one; each has `register(commands, train_tasks)` adding its
subparsers (`train_tasks` holds the `minitransfer train <task>` subcommands); every parser uses `HelpFormatter`.

Exit status: 0 on success; 2 for a usage error (argparse's own, or a `UsageError` from the commands' argument
checks: an unknown recipe, options that exclude or need each other); 1 for a failure while running (any other
MiniTransferError: a missing or unreadable file, a bad checkpoint, empty data; or an OSError); 130 on Ctrl-C.
Errors print one `error: ...` line on stderr, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import textwrap

from minitransfer.errors import MiniTransferError

COMMAND_MODULES = [
    "minitransfer.cli.model_commands",
    "minitransfer.cli.classification_commands",
    "minitransfer.cli.adaptation_commands",
    "minitransfer.cli.qa_commands",
    "minitransfer.cli.inspect_commands",
]

EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class UsageError(MiniTransferError):
    """The command was called wrongly (a bad option value or combination): exit status 2, like argparse's errors."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default, except where there is none to show (None) and for on/off switches."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or isinstance(action.default, bool):
            return action.help or ""
        return super()._get_help_string(action)

    def _split_lines(self, text: str, width: int) -> list[str]:  # keep "--batch-size" whole when wrapping
        return textwrap.wrap(self._whitespace_matcher.sub(" ", text).strip(), width, break_on_hyphens=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return textwrap.fill(self._whitespace_matcher.sub(" ", text).strip(), width, initial_indent=indent,
                             subsequent_indent=indent, break_on_hyphens=False)


class _TqdmHandler(logging.Handler):
    """Log records on stderr through tqdm.write, so a warning during training does not break the progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm.auto import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)  # sys.stderr now, not when the handler was made
        except Exception:  # noqa: BLE001 (logging's own convention)
            self.handleError(record)


def add_device_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="where the model runs: cpu, or cuda / cuda:N (a GPU, through CuPy: "
                   "pip install 'minitransfer[gpu]')")


def _version() -> str:
    from minitransfer import __version__

    return f"minitransfer {__version__}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minitransfer", description="Fine-tune BERT-family models on NLP tasks.",
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=_version(), help="print the version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     help="the command to run (`minitransfer COMMAND --help` lists its flags)")
    train = commands.add_parser("train", help="fine-tune a model on a task", formatter_class=HelpFormatter)
    train_tasks = train.add_subparsers(dest="task", required=True, metavar="TASK",
                                       help="the task (`minitransfer train TASK --help` lists its flags)")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands, train_tasks)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit status (argparse's own exits, --help and --version included, too)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["launch"]:
        return launch(argv[1:])
    if argv[:2] == ["predict", "qa"]:  # `predict qa DIR` and `predict DIR TEXT` share a verb
        argv = ["predict-qa"] + argv[2:]
    comm = _ranks()
    status = _run(argv)
    if status not in (0, None) and comm is not None and comm.size > 1:
        comm.abort(status)  # one rank failing alone would leave the others waiting in a collective forever
    return status


def _ranks():
    """Under mpiexec: the communicator, with stdout silenced on ranks > 0 (their prints would repeat rank 0's;
    errors still reach stderr). None in a single process (nothing is imported)."""
    from minitransfer.distributed import launched_by_mpi  # noqa: PLC0415 (cheap: reads the environment)

    if not launched_by_mpi():
        return None
    from minitransfer.distributed import get_communicator  # noqa: PLC0415

    comm = get_communicator()
    if comm.rank > 0:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
    return comm


def launch(argv: list[str]) -> int:
    """`minitransfer launch -n N COMMAND ...`: run COMMAND on N ranks through the mpiexec the mpich wheel installs."""
    parser = argparse.ArgumentParser(prog="minitransfer launch", formatter_class=HelpFormatter,
                                     description="run a minitransfer command on N processes (data parallel, MPI)")
    parser.add_argument("-n", "--nproc", type=int, required=True, help="number of processes (ranks)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the minitransfer command, e.g. train classification")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    if args.nproc < 1 or not args.command:
        return _error("launch needs -n N (N >= 1) and a command, e.g. `minitransfer launch -n 2 train "
                      "classification ...`", EXIT_USAGE)
    from minitransfer.distributed import find_mpiexec  # noqa: PLC0415

    mpiexec = find_mpiexec()
    if mpiexec is None:
        return _error("no mpiexec found: pip install 'minitransfer[mpi]' (mpi4py and mpich), or set $MPIEXEC",
                      EXIT_FAILURE)
    import subprocess  # noqa: PLC0415

    return subprocess.call([mpiexec, "-n", str(args.nproc), sys.executable, "-m", "minitransfer", *args.command])


def _run(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s", handlers=[_TqdmHandler()])
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as e:  # argparse: usage errors (2), --help and --version (0)
            return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_USAGE)
        if getattr(args, "device", "cpu") != "cpu":  # before any work: a missing CuPy or GPU named at once
            from minitransfer.backend import check_device

            check_device(args.device)
        return int(args.func(args) or 0)
    except UsageError as e:
        return _error(e, EXIT_USAGE)
    except (MiniTransferError, OSError) as e:
        return _error(e, EXIT_FAILURE)
    except KeyboardInterrupt as e:  # the Trainer's names the checkpoint it saved first
        return _error(str(e) or "interrupted", EXIT_INTERRUPTED)


def _error(message: object, status: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
