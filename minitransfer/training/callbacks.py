"""Trainer callbacks with transformers' names: TrainerState, TrainerControl, TrainerCallback, EarlyStoppingCallback.

A callback sees every event of a run (on_train_begin, on_step_end, on_log, on_evaluate, on_save, on_train_end,
...) with (args, state, control, **info) and steers it through `control` (should_stop, should_save, ...).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path


@dataclasses.dataclass
class TrainerState:
    """Where a run is; saved in every checkpoint as trainer_state.json (transformers' keys)."""

    epoch: float = 0.0
    global_step: int = 0
    max_steps: int = 0
    num_train_epochs: float = 0.0
    log_history: list[dict] = dataclasses.field(default_factory=list)
    best_metric: float | None = None
    best_model_checkpoint: str | None = None
    is_world_process_zero: bool = True
    # minitransfer's own: where in the epoch's fixed order a resumed run goes on (the order is a function of seed
    # and epoch), and the random generator's state after the last completed step.
    epoch_index: int = 0
    steps_in_epoch: int = 0
    epoch_end_pending: bool = False  # the epoch's last step is done, its closing evaluation / checkpoint not yet
    rng_state: dict | None = None
    data_fingerprint: str | None = None  # sha256 of the training set: a resume must see the same data
    world_size: int = 1  # ranks the run trained on (a resume may use another number, same global batch)

    def save_to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(dataclasses.asdict(self), indent=2, default=_json_default) + "\n")

    @classmethod
    def load_from_json(cls, path: str | Path) -> TrainerState:
        values = json.loads(Path(path).read_text())
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclasses.dataclass
class TrainerControl:
    """What the loop does next; callbacks set these flags."""

    should_training_stop: bool = False
    should_epoch_stop: bool = False
    should_save: bool = False
    should_evaluate: bool = False
    should_log: bool = False

    @property
    def should_stop(self) -> bool:  # the short name the issue and many scripts use
        return self.should_training_stop

    @should_stop.setter
    def should_stop(self, value: bool) -> None:
        self.should_training_stop = value


class TrainerCallback:
    """Override any event; each gets (args, state, control, **kwargs) and may return a TrainerControl."""

    def on_init_end(self, args, state, control, **kwargs): ...
    def on_train_begin(self, args, state, control, **kwargs): ...
    def on_train_end(self, args, state, control, **kwargs): ...
    def on_epoch_begin(self, args, state, control, **kwargs): ...
    def on_epoch_end(self, args, state, control, **kwargs): ...
    def on_step_begin(self, args, state, control, **kwargs): ...
    def on_step_end(self, args, state, control, **kwargs): ...
    def on_evaluate(self, args, state, control, metrics=None, **kwargs): ...
    def on_predict(self, args, state, control, metrics=None, **kwargs): ...
    def on_save(self, args, state, control, **kwargs): ...
    def on_log(self, args, state, control, logs=None, **kwargs): ...


EVENTS = [name for name in vars(TrainerCallback) if name.startswith("on_")]


class CallbackHandler:
    """Calls every callback's handler for an event, in order; a returned TrainerControl replaces the current one."""

    def __init__(self, callbacks):
        self.callbacks = []
        for callback in callbacks or []:
            self.add_callback(callback)

    def add_callback(self, callback) -> None:
        self.callbacks.append(callback() if isinstance(callback, type) else callback)

    def pop_callback(self, callback):
        for existing in self.callbacks:
            if existing is callback or (isinstance(callback, type) and isinstance(existing, callback)):
                self.callbacks.remove(existing)
                return existing
        return None

    def remove_callback(self, callback) -> None:
        self.pop_callback(callback)

    def call(self, event: str, args, state, control, **kwargs) -> TrainerControl:
        for callback in self.callbacks:
            handler = getattr(callback, event, None)
            result = handler(args, state, control, **kwargs) if handler is not None else None
            if isinstance(result, TrainerControl):
                control = result
        return control


class EarlyStoppingCallback(TrainerCallback):
    """Stop when metric_for_best_model has not improved by more than early_stopping_threshold for
    early_stopping_patience evaluations in a row (transformers' EarlyStoppingCallback)."""

    def __init__(self, early_stopping_patience: int = 1, early_stopping_threshold: float = 0.0):
        self.early_stopping_patience = early_stopping_patience
        self.early_stopping_threshold = early_stopping_threshold
        self.early_stopping_patience_counter = 0

    def on_train_begin(self, args, state, control, **kwargs):
        if not args.load_best_model_at_end or args.metric_for_best_model is None:
            from minitransfer.errors import ConfigError

            raise ConfigError("EarlyStoppingCallback needs load_best_model_at_end=True and a metric_for_best_model "
                              "(it stops on the metric the best model is chosen by)")

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        value = (metrics or {}).get(args.best_metric_key)
        if value is None:
            return
        operator = (lambda a, b: a > b) if args.greater_is_better else (lambda a, b: a < b)
        improved = state.best_metric is None or (operator(value, state.best_metric)
                                                 and abs(value - state.best_metric) > self.early_stopping_threshold)
        self.early_stopping_patience_counter = 0 if improved else self.early_stopping_patience_counter + 1
        if self.early_stopping_patience_counter >= self.early_stopping_patience:
            control.should_training_stop = True


class CSVLoggerCallback(TrainerCallback):
    """report_to="csv": OUTPUT_DIR/log_history.csv, one row per log entry, a column for every key seen so far
    (rewritten at each log, so the file is always whole)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        import csv

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
            from minitransfer.errors import ConfigError

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


def reporting_callbacks(report_to: list[str]) -> list[TrainerCallback]:
    """The callbacks report_to asks for: "none", "csv", "tensorboard", or "all" (csv, and tensorboard if installed)."""
    import importlib.util

    wanted = set(report_to) - {"none"}
    if "all" in wanted:
        wanted = {"csv"} | ({"tensorboard"} if importlib.util.find_spec("tensorboardX") else set())
    return ([CSVLoggerCallback()] if "csv" in wanted else []) + (
        [TensorBoardCallback()] if "tensorboard" in wanted else [])


def _json_default(value):
    import numpy as np

    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
