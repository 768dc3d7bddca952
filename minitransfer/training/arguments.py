"""TrainingArguments: every knob of a run, saved beside the model as training_args.json."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from minitransfer.errors import ConfigError


@dataclasses.dataclass
class TrainingArguments:
    """Defaults follow transformers' Trainer and the BERT fine-tuning recipe."""

    output_dir: str
    num_train_epochs: float = 3.0
    max_steps: int = -1  # > 0 overrides num_train_epochs
    per_device_train_batch_size: int = 32
    per_device_eval_batch_size: int = 64
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    warmup_ratio: float = 0.1
    warmup_steps: int = 0  # > 0 overrides warmup_ratio
    lr_scheduler_type: str = "linear"
    max_grad_norm: float = 1.0
    gradient_accumulation_steps: int = 1
    seed: int = 42
    group_by_length: bool = False  # batch examples of similar length together (less padding, faster)
    max_tokens_per_batch: int = 0  # > 0: batches of at most this many real tokens instead of a number of rows
    padding_free: bool = True  # the model computes real tokens only (nn/packing.py); False: the padded path
    logging_steps: int = 10
    eval_every_epoch: bool = True
    eval_steps: int = 0  # > 0: also evaluate every this many optimizer steps
    save_best: bool = True
    metric_for_best_model: str = "accuracy"
    greater_is_better: bool = True
    progress_bar: bool = True
    plot: bool = False

    def __post_init__(self):
        checks = [
            (self.per_device_train_batch_size > 0, "per_device_train_batch_size must be > 0"),
            (self.learning_rate > 0, "learning_rate must be > 0"),
            (self.gradient_accumulation_steps > 0, "gradient_accumulation_steps must be > 0"),
            (0 <= self.warmup_ratio <= 1, "warmup_ratio must lie in [0, 1]"),
            (self.num_train_epochs > 0 or self.max_steps > 0, "train for num_train_epochs > 0 or max_steps > 0"),
            (self.max_tokens_per_batch >= 0, "max_tokens_per_batch must be >= 0 (0: batches of a number of rows)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

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
