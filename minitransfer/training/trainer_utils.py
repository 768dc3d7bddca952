"""What the Trainer hands back, with transformers' names (EvalPrediction, TrainOutput, PredictionOutput), and
the few helpers recipes share around it."""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np


class EvalPrediction:
    """The argument of compute_metrics: `logits, labels = eval_pred` unpacks it, as in transformers.

    predictions: the model's outputs but the loss (one array, or a tuple of them, e.g. QA's start and end logits);
    label_ids: the labels (one array, or a tuple for several label names); inputs: the input ids when asked.
    """

    def __init__(self, predictions, label_ids, inputs=None):
        self.predictions, self.label_ids, self.inputs = predictions, label_ids, inputs

    def __iter__(self):
        return iter((self.predictions, self.label_ids) if self.inputs is None else
                    (self.predictions, self.label_ids, self.inputs))

    def __getitem__(self, index):
        return tuple(self)[index]

    def __len__(self) -> int:
        return 2 if self.inputs is None else 3


class TrainOutput(NamedTuple):
    global_step: int
    training_loss: float
    metrics: dict[str, Any]


class PredictionOutput(NamedTuple):
    predictions: np.ndarray | tuple
    label_ids: np.ndarray | tuple | None
    metrics: dict[str, float] | None


def run_summary(trainer, output: TrainOutput) -> dict:
    """What a CLI recipe prints after training: the last evaluation's metrics (without the "eval_" prefix but for
    eval_loss), the best value of metric_for_best_model, the training time and the step count."""
    evals = [h for h in trainer.state.log_history if any(k.startswith("eval_") for k in h)]
    summary = {"train_runtime_s": output.metrics["train_runtime"], "global_step": output.global_step,
               "train_loss": output.training_loss}
    if evals:
        summary.update(unprefixed(evals[-1]))
        if trainer.args.metric_for_best_model is not None:
            summary["best_" + trainer.args.metric_for_best_model.removeprefix("eval_")] = trainer.state.best_metric
    return summary


def unprefixed(metrics: dict) -> dict:
    """evaluate()'s metrics named as the task computes them (accuracy, f1, ...); eval_loss keeps its name."""
    return {(key if key == "eval_loss" else key[len("eval_"):]): value for key, value in metrics.items()
            if key.startswith("eval_") and key not in ("eval_runtime", "eval_samples_per_second")}


def without_evaluation(args):
    """The same arguments for a run with nothing to evaluate on: no evaluation, so no best model to end on."""
    import dataclasses

    if args.eval_strategy == "no" and not args.load_best_model_at_end:
        return args
    return dataclasses.replace(args, eval_strategy="no", load_best_model_at_end=False)


def json_default(value):
    """json.dumps' default= for NumPy scalars and arrays (metrics, states and schedules hold them)."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
