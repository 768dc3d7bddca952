"""Trainer callbacks with transformers' names: TrainerState, TrainerControl, TrainerCallback, EarlyStoppingCallback.

A callback sees every event of a run (on_train_begin, on_step_end, on_log, on_evaluate, on_save, on_train_end,
...) with (args, state, control, **info) and steers it through `control` (should_stop, should_save, ...).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from minitransfer.errors import ConfigError
from minitransfer.training.trainer_utils import json_default


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
        Path(path).write_text(json.dumps(dataclasses.asdict(self), indent=2, default=json_default) + "\n")

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
