"""The Trainer's evaluate() and predict(), and the loop under them: eval mode, no graph, each rank its contiguous
share of the data, the outputs gathered back in the dataset's order (one array, or a tuple, as transformers)."""
from __future__ import annotations

import time

import numpy as np

from minitransfer.autograd import no_grad
from minitransfer.data.batching import batch_to_device
from minitransfer.distributed import get_communicator
from minitransfer.errors import InputError
from minitransfer.training.trainer_utils import EvalPrediction, PredictionOutput


class Evaluation:
    """The Trainer's evaluation methods (transformers' names); they read its model, args, datasets and metrics."""

    def evaluate(self, eval_dataset=None, ignore_keys: list[str] | None = None,
                 metric_key_prefix: str = "eval") -> dict:
        """Metrics on the eval set (eval mode, no graph), keys prefixed `eval_`, plus runtime and epoch; logged."""
        started = time.perf_counter()
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if self.evaluate_fn is not None:
            metrics, count = dict(self.evaluate_fn(self)), None
        else:
            if dataset is None:
                raise InputError("evaluate() needs an eval_dataset (given to the Trainer or to evaluate)")
            metrics, count = self._prediction_loop(dataset, ignore_keys).metrics, len(dataset)
        metrics = _prefixed(metrics, metric_key_prefix)
        runtime = time.perf_counter() - started
        metrics[f"{metric_key_prefix}_runtime"] = round(runtime, 4)
        if count:
            metrics[f"{metric_key_prefix}_samples_per_second"] = round(count / max(runtime, 1e-9), 3)
        metrics["epoch"] = round(self.state.epoch, 4)  # as transformers' log() adds it to the returned dict
        self.log(metrics)
        self.control = self.callback_handler.call("on_evaluate", self.args, self.state, self.control, metrics=metrics)
        return metrics

    def predict(self, test_dataset, ignore_keys: list[str] | None = None,
                metric_key_prefix: str = "test") -> PredictionOutput:
        """PredictionOutput(predictions, label_ids, metrics) over `test_dataset`, in order."""
        output = self._prediction_loop(test_dataset, ignore_keys)
        metrics = _prefixed(output.metrics, metric_key_prefix)
        self.control = self.callback_handler.call("on_predict", self.args, self.state, self.control, metrics=metrics)
        return PredictionOutput(output.predictions, output.label_ids, metrics)

    def _prediction_loop(self, dataset, ignore_keys=None) -> PredictionOutput:
        was_training = self.model.training
        self.model.eval()
        chunks: dict[str, list] = {}
        labels: dict[str, list] = {}
        losses, sizes = [], []
        bs = self.args.per_device_eval_batch_size
        comm = self.comm or get_communicator()
        shard = np.array_split(np.arange(len(dataset)), comm.size)[comm.rank]  # each rank its contiguous share
        with no_grad():
            for start in range(0, len(shard), bs):
                indices = shard[start:start + bs]
                batch = self._features(dataset, indices)
                out = self.model(**batch_to_device(batch, self.model.device))
                for name, value in out.items():
                    if name != "loss" and hasattr(value, "numpy") and name not in (ignore_keys or ()):
                        chunks.setdefault(name, []).append(value.numpy())
                if out.get("loss") is not None:
                    losses.append(out["loss"].item())
                    sizes.append(len(indices))
                for name in self.args.label_names or _default_label_names(batch):
                    labels.setdefault(name, []).append(np.asarray(batch[name]))
        self.model.train(was_training)
        if comm.size > 1:  # gathered in rank order: the dataset's order, on every rank
            parts = comm.allgather_object((chunks, labels, losses, sizes))
            chunks = {k: [c for part in parts for c in part[0].get(k, [])] for k in parts[0][0]}
            labels = {k: [c for part in parts for c in part[1].get(k, [])] for k in parts[0][1]}
            losses = [x for part in parts for x in part[2]]
            sizes = [x for part in parts for x in part[3]]
        predictions = _single([_concat_padded(v) for v in chunks.values()])
        label_ids = _single([_concat_padded(v) for v in labels.values()]) if labels else None
        metrics = {}
        if self.compute_metrics is not None and label_ids is not None:
            metrics.update(self.compute_metrics(EvalPrediction(predictions, label_ids)))
        if losses:
            metrics["loss"] = float(np.average(losses, weights=sizes))
        return PredictionOutput(predictions, label_ids, metrics)


def _default_label_names(batch: dict) -> list[str]:
    if "start_positions" in batch:
        return ["start_positions", "end_positions"]
    return ["labels"] if "labels" in batch else []


def _prefixed(metrics: dict, prefix: str) -> dict:
    """Metric names as evaluate() returns them: "eval_accuracy" (epoch keeps its name)."""
    return {(k if k.startswith(f"{prefix}_") or k == "epoch" else f"{prefix}_{k}"): v for k, v in metrics.items()}


def _single(arrays: list):
    """One array as itself, several as a tuple (transformers' predictions / label_ids)."""
    if not arrays:
        return None
    return arrays[0] if len(arrays) == 1 else tuple(arrays)


def _concat_padded(chunks: list[np.ndarray]) -> np.ndarray:
    """Concatenate batch outputs whose sequence axis differs (dynamic padding), padding with -100 (or -inf)."""
    if chunks[0].ndim < 2 or len({c.shape[1] for c in chunks}) == 1:
        return np.concatenate(chunks)
    longest = max(c.shape[1] for c in chunks)
    padded = []
    for c in chunks:
        widths = [(0, 0), (0, longest - c.shape[1])] + [(0, 0)] * (c.ndim - 2)
        fill = -100 if c.dtype.kind in "iu" else -np.inf
        padded.append(np.pad(c, widths, constant_values=fill))
    return np.concatenate(padded)
