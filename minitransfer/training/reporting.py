"""What a run reports besides OUT/metrics.jsonl (which the Trainer always writes): the log as CSV, TensorBoard
scalars (report_to), the curves as a PNG (plot), and evaluation lines printed above the progress bar
(PrinterCallback: the CLI installs it; the Trainer itself prints nothing).
"""
from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

from minitransfer.errors import ConfigError
from minitransfer.training.callbacks import TrainerCallback
from minitransfer.training.plot import PlotCallback  # matplotlib is imported only when it draws
from minitransfer.training.trainer_utils import json_default


class PrinterCallback(TrainerCallback):
    """Prints each evaluation of a training run and its closing summary as one JSON line (`eval {...}`,
    `done {...}`) through tqdm.write, which keeps a running progress bar whole; rank 0 only."""

    training = False

    def on_train_begin(self, args, state, control, **kwargs):
        self.training = True

    def on_train_end(self, args, state, control, **kwargs):
        self.training = False

    def on_log(self, args, state, control, logs=None, **kwargs):
        done = "train_runtime" in logs
        if self.training and state.is_world_process_zero and (done or any(k.startswith("eval_") for k in logs)):
            from tqdm.auto import tqdm  # noqa: PLC0415

            shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in logs.items()}
            tqdm.write(("done " if done else "eval ") + json.dumps(shown, default=json_default))


class CSVLoggerCallback(TrainerCallback):
    """report_to="csv": OUTPUT_DIR/log_history.csv, one row per log entry, a column for every key seen so far
    (rewritten at each log, so the file is always whole)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        columns = ["step", "epoch"] + sorted({k for h in state.log_history for k in h} - {"step", "epoch"})
        path = Path(args.output_dir) / "log_history.csv"
        tmp = path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows(state.log_history)
        tmp.replace(path)


class TensorBoardCallback(TrainerCallback):
    """report_to="tensorboard": every numeric log value as a scalar in OUTPUT_DIR/runs, through tensorboardX (the
    torch-free writer)."""

    def __init__(self):
        try:
            from tensorboardX import SummaryWriter  # noqa: PLC0415 (optional)
        except ImportError as e:
            raise ConfigError("report_to='tensorboard' needs tensorboardX: pip install tensorboardX") from e
        self._writer_class, self.writer = SummaryWriter, None

    def on_train_begin(self, args, state, control, **kwargs):
        self.writer = self._writer_class(logdir=str(Path(args.output_dir) / "runs"))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.writer is None:
            return
        for key, value in (logs or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in ("step", "epoch"):
                self.writer.add_scalar(key, value, state.global_step)
        self.writer.flush()

    def on_train_end(self, args, state, control, **kwargs):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def reporting_callbacks(args) -> list[TrainerCallback]:
    """The callbacks args asks for: report_to "none", "csv", "tensorboard", or "all" (csv, and tensorboard if
    installed); and the curves' PNG when args.plot."""
    wanted = set(args.report_to) - {"none"}
    if "all" in wanted:
        wanted = {"csv"} | ({"tensorboard"} if importlib.util.find_spec("tensorboardX") else set())
    return ([CSVLoggerCallback()] if "csv" in wanted else []) + (
        [TensorBoardCallback()] if "tensorboard" in wanted else []) + ([PlotCallback()] if args.plot else [])
