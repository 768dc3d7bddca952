"""Conventions every `minitransfer` command keeps: help text and defaults on each flag, --version, and exit
status 2 for usage errors, 1 for failures while running, 130 on Ctrl-C, each error one line on stderr."""
import argparse
import logging
import subprocess
import sys

import pytest

import minitransfer
from minitransfer.cli import HelpFormatter, _TqdmHandler, build_parser, classification_commands, main


def all_parsers():
    """(command words, parser) for the top parser and every subparser, recursively."""
    found = []

    def walk(parser, words):
        found.append((words, parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, words + [name])

    walk(build_parser(), [])
    return found


PARSERS = all_parsers()
IDS = [" ".join(words) or "minitransfer" for words, _ in PARSERS]


def shown_default(action: argparse.Action) -> bool:
    """Whether --help should print this flag's default: a value to show, not None or an on/off switch."""
    return bool(action.option_strings) and action.default not in (None, argparse.SUPPRESS) and not isinstance(
        action.default, bool)


def flat(text: str) -> str:
    return " ".join(text.split())


def test_the_walk_finds_every_command():
    assert len(PARSERS) > 15
    assert {"train classification", "train mlm", "train qa", "predict", "distill", "eval-squad"} <= set(IDS)


@pytest.mark.parametrize("words,parser", PARSERS, ids=IDS)
def test_every_argument_has_help_and_every_parser_shows_defaults(words, parser):
    assert parser.formatter_class is HelpFormatter  # subparsers do not inherit it: each add_parser passes it
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help.strip(), f"minitransfer {' '.join(words)}: {name} has no help text"


@pytest.mark.parametrize("words,parser", PARSERS, ids=IDS)
def test_help_shows_each_non_trivial_default(words, parser, capsys):
    assert main(words + ["--help"]) == 0
    shown = flat(capsys.readouterr().out)
    assert "(default: None)" not in shown and "(default: False)" not in shown and "(default: True)" not in shown
    for action in parser._actions:
        if shown_default(action):
            assert f"(default: {action.default})" in shown, f"{action.option_strings} hides its default"


def test_train_classification_help_shows_lr_and_batch_size(capsys):
    assert main(["train", "classification", "--help"]) == 0
    shown = flat(capsys.readouterr().out)
    assert "(default: 5e-05)" in shown and "--batch-size BATCH_SIZE training examples per batch (default: 32)" in shown


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"minitransfer {minitransfer.__version__}\n"


def test_version_of_the_installed_command():
    result = subprocess.run([sys.executable, "-m", "minitransfer", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == f"minitransfer {minitransfer.__version__}"


def assert_one_error_line(err: str, message: str) -> None:
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err and "Traceback" not in err


@pytest.mark.parametrize("argv,message", [
    (["train", "classification", "--train", "x", "--out", "y", "--bogus"], "unrecognized arguments: --bogus"),
    (["train", "classification", "--model", "x"], "the following arguments are required: --train, --out"),
    (["predict", "x", "y", "--max-length", "many"], "invalid int value: 'many'"),
    (["no-such-command"], "invalid choice: 'no-such-command'"),
])
def test_argparse_errors_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: ") and message in err.splitlines()[-1] and "Traceback" not in err
    assert ": error: " in err.splitlines()[-1]


def test_unknown_recipe_is_a_usage_error(capsys):
    assert main(["compare", "--train", "x", "--eval", "y", "--out", "z", "--recipes", "full,half"]) == 2
    assert_one_error_line(capsys.readouterr().err, "unknown recipe 'half'")


def test_missing_data_file_is_a_failure(tiny_model, tmp_path, capsys):
    assert main(["train", "classification", "--model", str(tiny_model), "--train", str(tmp_path / "no.tsv"),
                 "--out", str(tmp_path / "run"), "--no-progress"]) == 1
    assert_one_error_line(capsys.readouterr().err, "no.tsv")
    assert main(["eval-squad", str(tmp_path / "predictions.json"), str(tmp_path / "data.json")]) == 1
    assert_one_error_line(capsys.readouterr().err, "predictions.json")


def test_missing_model_directory_is_a_failure(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "missing"), "some text"]) == 1
    assert_one_error_line(capsys.readouterr().err, "no model directory at")


@pytest.mark.parametrize("raised,code,message", [
    (KeyboardInterrupt(), 130, "error: interrupted"),
    (PermissionError(13, "Permission denied", "/out/x"), 1, "Permission denied: '/out/x'"),
])
def test_interrupt_and_os_errors(raised, code, message, monkeypatch, capsys):
    def command(args):
        raise raised

    monkeypatch.setattr(classification_commands, "evaluate", command)
    assert main(["eval", "DIR", "--data", "F"]) == code
    assert_one_error_line(capsys.readouterr().err, message)


def test_log_records_go_through_tqdm_write(monkeypatch):
    """The CLI's logging handler writes with tqdm.write, which clears and redraws a running progress bar."""
    from tqdm.auto import tqdm

    written = []
    monkeypatch.setattr(tqdm, "write", lambda text, file=None, **kwargs: written.append((text, file)))
    handler = _TqdmHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.emit(logging.makeLogRecord({"msg": "3 of 10 questions have no prediction", "levelno": logging.WARNING}))
    assert written == [("3 of 10 questions have no prediction", sys.stderr)]
