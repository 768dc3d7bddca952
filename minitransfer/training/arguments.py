"""TrainingArguments: every knob of a run, with transformers' names and defaults, saved as training_args.json.

A transformers script's arguments work unchanged (eval_strategy, save_strategy, load_best_model_at_end, ...).
minitransfer's own additions are marked below; the CLI sets its recipe's values explicitly (lib/cli).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from minitransfer.errors import ConfigError

STRATEGIES = ("no", "steps", "epoch")
REPORTERS = ("none", "all", "csv", "tensorboard")


@dataclasses.dataclass
class TrainingArguments:
    """Defaults are transformers' (TrainingArguments of transformers 5)."""

    output_dir: str = "trainer_output"
    overwrite_output_dir: bool = False
    num_train_epochs: float = 3.0
    max_steps: int = -1  # > 0 overrides num_train_epochs
    per_device_train_batch_size: int = 8
    per_device_eval_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 5e-5
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    lr_scheduler_type: str = "linear"
    warmup_steps: float = 0  # >= 1: steps; in (0, 1): a fraction of the total steps (transformers 5)
    warmup_ratio: float = 0.0  # the older name of a fraction; used when warmup_steps is 0
    seed: int = 42
    logging_strategy: str = "steps"
    logging_steps: float = 500  # < 1: a fraction of the total steps
    logging_first_step: bool = False
    eval_strategy: str = "no"
    eval_steps: float | None = None  # None: logging_steps
    save_strategy: str = "steps"
    save_steps: float = 500
    save_total_limit: int | None = None  # keep this many checkpoint-N/ folders (the best one is always kept)
    load_best_model_at_end: bool = False
    metric_for_best_model: str | None = None  # None: "loss" when load_best_model_at_end
    greater_is_better: bool | None = None  # None: False for a loss, True for anything else
    report_to: str | list[str] = "none"
    disable_tqdm: bool = False
    remove_unused_columns: bool = True  # drop dataset columns the model's forward does not take (sentence, idx)
    label_names: list[str] | None = None
    use_cpu: bool = False  # the Trainer runs where the model is (or `device`), so a CPU model honours it as is
    group_by_length: bool = False  # transformers 4's name; train_sampling_strategy="group_by_length" in 5
    train_sampling_strategy: str = "random"
    fp16: bool = False  # float16 forward (mt.autocast) with float32 master weights and dynamic loss scaling
    bf16: bool = False  # refused: NumPy and CuPy have no bfloat16 dtype
    # minitransfer's own:
    max_tokens_per_batch: int = 0  # > 0: batches of at most this many real tokens instead of a number of rows
    padding_free: bool = True  # the model computes real tokens only (nn/packing.py); False: the padded path
    plot: bool = False  # write OUT/curves.png at the end (needs matplotlib)
    device: str | None = None  # "cpu", "cuda", "cuda:N": the Trainer moves the model there; None: where it is

    def __post_init__(self):
        if self.train_sampling_strategy == "group_by_length":
            self.group_by_length = True
        if isinstance(self.report_to, str):
            self.report_to = [self.report_to]
        if self.eval_steps is None:
            self.eval_steps = self.logging_steps
        checks = [
            (self.per_device_train_batch_size > 0, "per_device_train_batch_size must be > 0"),
            (self.per_device_eval_batch_size > 0, "per_device_eval_batch_size must be > 0"),
            (self.learning_rate > 0, "learning_rate must be > 0"),
            (self.gradient_accumulation_steps > 0, "gradient_accumulation_steps must be > 0"),
            (0 <= self.warmup_ratio <= 1, "warmup_ratio must lie in [0, 1]"),
            (self.warmup_steps >= 0, "warmup_steps must be >= 0 (a fraction of the steps when below 1)"),
            (self.num_train_epochs > 0 or self.max_steps > 0, "train for num_train_epochs > 0 or max_steps > 0"),
            (self.max_tokens_per_batch >= 0, "max_tokens_per_batch must be >= 0 (0: batches of a number of rows)"),
            (self.save_total_limit is None or self.save_total_limit >= 1, "save_total_limit must be None or >= 1"),
            (self.train_sampling_strategy in ("random", "group_by_length"),
             "train_sampling_strategy must be 'random' or 'group_by_length'"),
            (not self.bf16, "bf16: NumPy and CuPy have no bfloat16 dtype, so it cannot run here; fp16 is the "
                            "supported half type (fp16=True, the CLI's --fp16)"),
            (not (self.use_cpu and self.device not in (None, "cpu")), f"use_cpu=True with device={self.device!r}"),
        ]
        for name in ("logging_strategy", "eval_strategy", "save_strategy"):
            checks.append((getattr(self, name) in STRATEGIES,
                           f"{name}={getattr(self, name)!r}: use one of {', '.join(map(repr, STRATEGIES))}"))
        for name in ("logging_steps", "eval_steps", "save_steps"):
            checks.append((getattr(self, name) > 0, f"{name} must be > 0 (a fraction of the steps when below 1)"))
        unknown = [r for r in self.report_to if r not in REPORTERS]
        checks.append((not unknown, f"report_to {unknown}: minitransfer reports to {', '.join(REPORTERS)}"))
        if self.load_best_model_at_end:
            checks.append((self.eval_strategy != "no", "load_best_model_at_end needs evaluations: set eval_strategy"))
            checks.append((self.save_strategy == self.eval_strategy,
                           "load_best_model_at_end needs save_strategy == eval_strategy (a checkpoint at every "
                           f"evaluation); got save_strategy={self.save_strategy!r}, "
                           f"eval_strategy={self.eval_strategy!r}"))
            if self.eval_strategy == "steps":
                checks.append((self.save_steps % self.eval_steps == 0,
                               f"load_best_model_at_end needs save_steps ({self.save_steps}) to be a multiple of "
                               f"eval_steps ({self.eval_steps})"))
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if self.metric_for_best_model is None and self.load_best_model_at_end:
            self.metric_for_best_model = "loss"
        if self.greater_is_better is None and self.metric_for_best_model is not None:
            self.greater_is_better = not self.metric_for_best_model.endswith("loss")

    @property
    def best_metric_key(self) -> str | None:
        """metric_for_best_model as evaluate() names it (transformers prefixes "eval_")."""
        name = self.metric_for_best_model
        return None if name is None else (name if name.startswith("eval_") else f"eval_{name}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, directory: str | Path) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / "training_args.json").write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> TrainingArguments:
        values = json.loads((Path(directory) / "training_args.json").read_text())
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})
