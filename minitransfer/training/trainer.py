"""Trainer: the one training loop every task uses (classification, QA, masked LM).

It runs epochs (or max_steps) of shuffled batches with dynamic padding, AdamW with warmup/decay and
gradient clipping, gradient accumulation, evaluation each epoch, a tqdm bar with loss and lr, a JSON-lines
metric log, the best model saved in the Hugging Face layout, and a resumable last checkpoint (weights,
optimizer, schedule, step, RNG state) from which a resumed run continues the same loss curve.

Output directory layout:
    OUT/config.json, model.safetensors, tokenizer files, training_args.json   the best (or final) model
    OUT/metrics.jsonl                                                         one JSON object per log/eval
    OUT/last-checkpoint/                                                      what `resume` needs
"""
from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from minitransfer import backend
from minitransfer import random as mt_random
from minitransfer.autograd import no_grad
from minitransfer.errors import CheckpointError, InputError
from minitransfer.io.safetensors_io import load_safetensors
from minitransfer.optim import AdamW, clip_grad_norm_, get_scheduler, param_groups_for_weight_decay
from minitransfer.tasks.batching import (
    epoch_order,
    example_lengths,
    length_grouped_order,
    make_batches,
    pad_collate,
    token_budget_batches,
)
from minitransfer.training.arguments import TrainingArguments

EvaluateFn = Callable[["Trainer"], dict]


class Trainer:
    """Train `model` (a PreTrainedModel whose forward returns `loss` when given labels) on `train_dataset`.

    compute_metrics(predictions: dict[str, np.ndarray], labels: np.ndarray | None) -> dict: turns the
    concatenated eval outputs into metrics (e.g. accuracy). evaluate_fn(trainer) -> dict replaces the
    whole evaluation (QA needs post-processing over windows).
    """

    def __init__(self, model, args: TrainingArguments, train_dataset=None, eval_dataset=None, tokenizer=None,
                 compute_metrics: Callable | None = None, evaluate_fn: EvaluateFn | None = None,
                 data_collator: Callable | None = None, label_key: str = "labels"):
        self.model, self.args = model, args
        self.train_dataset, self.eval_dataset = train_dataset, eval_dataset
        self.tokenizer = tokenizer
        self.compute_metrics, self.evaluate_fn = compute_metrics, evaluate_fn
        pad_id = tokenizer.pad_token_id if tokenizer is not None else 0
        self.collate = data_collator or (lambda features: pad_collate(features, pad_id))
        self.label_key = label_key
        self.output_dir = Path(args.output_dir)
        self.global_step = 0
        self.history: list[dict] = []
        self.best_metric: float | None = None
        self.optimizer = self.scheduler = None

    # ---- setup ----
    def steps_per_epoch(self, epoch: int = 0) -> int:
        if self.args.max_tokens_per_batch:  # the number of batches depends on the epoch's order
            return len(self._epoch_steps(epoch))
        batches = math.ceil(len(self.train_dataset) / self.args.per_device_train_batch_size)
        return max(batches // self.args.gradient_accumulation_steps, 1)

    def total_steps(self) -> int:
        if self.args.max_steps > 0:
            return self.args.max_steps
        epochs = self.args.num_train_epochs
        if not self.args.max_tokens_per_batch:
            return math.ceil(self.steps_per_epoch() * epochs)
        whole = int(epochs)
        total = sum(self.steps_per_epoch(e) for e in range(whole))
        return total + math.ceil(self.steps_per_epoch(whole) * (epochs - whole)) if epochs > whole else total

    def create_optimizer(self) -> None:
        a = self.args
        groups = param_groups_for_weight_decay(self.model, a.weight_decay)
        if not any(g["params"] for g in groups):
            raise InputError("every parameter is frozen: there is nothing to train")
        self.optimizer = AdamW(groups, lr=a.learning_rate, betas=(a.adam_beta1, a.adam_beta2), eps=a.adam_epsilon)
        total = self.total_steps()
        warmup = a.warmup_steps if a.warmup_steps > 0 else int(math.ceil(a.warmup_ratio * total))
        self.scheduler = get_scheduler(a.lr_scheduler_type, self.optimizer, warmup, total)

    # ---- training ----
    def train(self, resume: bool = False) -> dict:
        """Run training; resume=True continues from OUT/last-checkpoint. Returns the final metrics."""
        a = self.args
        if self.train_dataset is None or len(self.train_dataset) == 0:
            raise InputError("the training set is empty: check the file and --max-train-examples")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        mt_random.manual_seed(a.seed)
        set_padding_free(self.model, a.padding_free)
        self.create_optimizer()
        epoch, skip_steps = 0, 0
        if resume:
            epoch, skip_steps = self._load_checkpoint(self.output_dir / "last-checkpoint")
        else:
            (self.output_dir / "metrics.jsonl").unlink(missing_ok=True)
        a.save(self.output_dir)
        total = self.total_steps()
        bar = _progress(total, self.global_step, a.progress_bar)
        self.model.train()
        running, started = [], time.perf_counter()
        try:
            while self.global_step < total:
                micro_batches = self._epoch_steps(epoch)
                for step_in_epoch in range(skip_steps, len(micro_batches)):
                    loss = self._accumulate(micro_batches[step_in_epoch])
                    self._optimizer_step()
                    self.global_step += 1
                    self._position = (epoch, step_in_epoch + 1)
                    running.append(loss)
                    lr = self.scheduler.get_last_lr()[0]
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
                    self.history.append({"step": self.global_step, "loss": loss})
                    fraction = epoch + (step_in_epoch + 1) / len(micro_batches)
                    if self.global_step % a.logging_steps == 0 or self.global_step == total:
                        self.log({"step": self.global_step, "epoch": round(fraction, 4),
                                  "loss": float(np.mean(running)), "lr": lr})
                        running = []
                    if a.eval_steps and self.global_step % a.eval_steps == 0:
                        self._evaluate_and_save(fraction)
                    if self.global_step >= total:
                        break
                if self._position[1] == len(micro_batches):
                    epoch, skip_steps = epoch + 1, 0
                    self._position = (epoch, 0)
                just_evaluated = a.eval_steps and self.global_step % a.eval_steps == 0
                if a.eval_every_epoch and not just_evaluated:
                    self._evaluate_and_save(self._position[0] + self._position[1] / len(micro_batches))
                else:
                    self.save_checkpoint()
        except KeyboardInterrupt:
            bar.close()
            self.save_checkpoint()
            print(f"\ninterrupted at step {self.global_step}: state saved to {self.output_dir / 'last-checkpoint'}; "
                  "rerun with --resume to continue")
            raise
        bar.close()
        final = {"train_runtime_s": round(time.perf_counter() - started, 2), "global_step": self.global_step}
        if self.best_metric is None or not a.save_best:  # nothing evaluated, or keep the final model
            self.save_model(self.output_dir)
        evals = [h for h in self._read_log() if h.get("eval")]
        if evals:
            final.update({k: v for k, v in evals[-1].items() if k not in ("step", "epoch", "eval")})
            final["best_" + a.metric_for_best_model] = self.best_metric
        self.log({"step": self.global_step, "train_done": True, **final})
        if a.plot:
            from minitransfer.training.plot import plot_metrics  # noqa: PLC0415 (matplotlib is optional)

            plot_metrics(self.output_dir / "metrics.jsonl", self.output_dir / "curves.png")
        return final

    _lengths: np.ndarray | None = None  # training examples' token counts, for group_by_length
    _position: tuple[int, int] = (0, 0)  # (epoch, optimizer steps done in it): where a resumed run restarts

    def _epoch_steps(self, epoch: int) -> list[list[np.ndarray]]:
        """The epoch's shuffled batches grouped into optimizer steps of gradient_accumulation_steps batches.

        A trailing group shorter than gradient_accumulation_steps is dropped (unless it is the only one).
        """
        size, accum = self.args.per_device_train_batch_size, self.args.gradient_accumulation_steps
        if (self.args.group_by_length or self.args.max_tokens_per_batch) and self._lengths is None:
            self._lengths = example_lengths(self.train_dataset)
        if self.args.group_by_length:
            order = length_grouped_order(self._lengths, size, self.args.seed, epoch)
        else:
            order = epoch_order(len(self.train_dataset), self.args.seed, epoch)
        if self.args.max_tokens_per_batch:
            batches = token_budget_batches(order, self._lengths, self.args.max_tokens_per_batch)
        else:
            batches = [order[i:i + size] for i in range(0, len(order), size)]
        steps = [batches[i:i + accum] for i in range(0, len(batches) - accum + 1, accum)]
        return steps or [batches]

    def _accumulate(self, micro_batches: list[np.ndarray]) -> float:
        """Forward and backward over `micro_batches`, gradients summed; returns the mean loss."""
        losses = []
        scale = 1.0 / len(micro_batches)
        for indices in micro_batches:
            batch = self._to_device(make_batches(self.train_dataset, indices, self.collate))
            out = self.model(**batch)
            if "loss" not in out:
                raise InputError("the model returned no loss: the training batches must include labels")
            (out.loss * scale if scale != 1.0 else out.loss).backward()
            losses.append(out.loss.item())
        return float(np.mean(losses))

    def _optimizer_step(self) -> None:
        params = [p for p in self.model.parameters() if p.requires_grad]
        if self.args.max_grad_norm and self.args.max_grad_norm > 0:
            clip_grad_norm_(params, self.args.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad()

    def _to_device(self, batch: dict) -> dict:
        device = self.model.device
        if device == "cpu":
            return batch
        return {k: backend.to_device(v, device) for k, v in batch.items()}

    # ---- evaluation ----
    def evaluate(self) -> dict:
        """Metrics on the eval set (eval mode, no graph)."""
        if self.evaluate_fn is not None:
            return self.evaluate_fn(self)
        if self.eval_dataset is None:
            return {}
        outputs, labels, loss = self.predict(self.eval_dataset)
        metrics = self.compute_metrics(outputs, labels) if self.compute_metrics else {}
        if loss is not None:
            metrics["eval_loss"] = loss
        return metrics

    def predict(self, dataset) -> tuple[dict[str, np.ndarray], np.ndarray | None, float | None]:
        """Run the model over `dataset` in order; returns (outputs by name, labels, mean loss)."""
        was_training = self.model.training
        self.model.eval()
        chunks: dict[str, list] = {}
        labels, losses, sizes = [], [], []
        bs = self.args.per_device_eval_batch_size
        with no_grad():
            for start in range(0, len(dataset), bs):
                indices = np.arange(start, min(start + bs, len(dataset)))
                batch = make_batches(dataset, indices, self.collate)
                out = self.model(**self._to_device(batch))
                for name, value in out.items():
                    if name != "loss" and hasattr(value, "numpy"):
                        chunks.setdefault(name, []).append(value.numpy())
                if "loss" in out:
                    losses.append(out.loss.item())
                    sizes.append(len(indices))
                if self.label_key in batch:
                    labels.append(batch[self.label_key])
        self.model.train(was_training)
        merged = {k: _concat_padded(v) for k, v in chunks.items()}
        label_array = _concat_padded(labels) if labels else None
        loss = float(np.average(losses, weights=sizes)) if losses else None
        return merged, label_array, loss

    def _evaluate_and_save(self, epoch: float) -> None:
        metrics = self.evaluate()
        if metrics:
            self.log({"step": self.global_step, "epoch": round(epoch, 4), "eval": True, **metrics})
            key = self.args.metric_for_best_model
            if key not in metrics:
                raise InputError(f"metric_for_best_model {key!r} is not among the eval metrics {sorted(metrics)}")
            value = metrics[key]
            better = self.best_metric is None or (value > self.best_metric if self.args.greater_is_better
                                                  else value < self.best_metric)
            if better:
                self.best_metric = value
                if self.args.save_best:
                    self.save_model(self.output_dir)
        self.save_checkpoint()

    # ---- saving and resuming ----
    def save_model(self, directory: Path) -> None:
        """The model in the Hugging Face layout, with its tokenizer and the training arguments."""
        self.model.save_pretrained(directory)
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(directory)
        self.args.save(directory)

    def save_checkpoint(self) -> None:
        """Everything a resumed run needs, written to a temp folder then renamed (never a half checkpoint)."""
        position = self._position
        final = self.output_dir / "last-checkpoint"
        tmp = self.output_dir / "last-checkpoint.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.save_pretrained(tmp)
        np.savez(tmp / "optimizer.npz", **self.optimizer.state_dict())
        state = {"global_step": self.global_step, "epoch": position[0], "batch_in_epoch": position[1],
                 "scheduler": self.scheduler.state_dict(), "best_metric": self.best_metric,
                 "rng": mt_random.numpy_rng().bit_generator.state, "history": self.history}
        (tmp / "trainer_state.json").write_text(json.dumps(state, default=_json_default))
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)

    def _load_checkpoint(self, directory: Path) -> tuple[int, int]:
        if not (directory / "trainer_state.json").exists():
            raise CheckpointError(f"cannot resume: {directory} has no trainer_state.json (was the run started "
                                  "with this output directory?)")
        state = json.loads((directory / "trainer_state.json").read_text())
        self.model.load_state_dict(load_safetensors(directory / "model.safetensors"), strict=False)
        if hasattr(self.model, "tie_weights"):
            self.model.tie_weights()
        with np.load(directory / "optimizer.npz") as saved:
            self.optimizer.load_state_dict(dict(saved))
        self.scheduler.load_state_dict(state["scheduler"])
        self.global_step, self.best_metric = state["global_step"], state["best_metric"]
        self.history = state.get("history", [])
        mt_random.numpy_rng().bit_generator.state = state["rng"]
        return state["epoch"], state["batch_in_epoch"]

    # ---- logging ----
    def log(self, record: dict) -> None:
        with open(self.output_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record, default=_json_default) + "\n")
        if record.get("eval") or record.get("train_done"):
            shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in record.items() if k != "eval"}
            print(("eval " if record.get("eval") else "done ") + json.dumps(shown, default=_json_default))

    def _read_log(self) -> list[dict]:
        path = self.output_dir / "metrics.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def set_padding_free(model, padding_free: bool) -> None:
    """Point every config in the model (a head and its body, or a wrapped model) at one padding_free setting."""
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "__dict__") and "model_type" in config.__dict__:
            config.padding_free = padding_free


def _progress(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm  # noqa: PLC0415

    return tqdm(total=total, initial=initial, disable=not enabled, desc="train", dynamic_ncols=True)


def _concat_padded(chunks: list[np.ndarray]) -> np.ndarray:
    """Concatenate batch outputs whose sequence axis differs (dynamic padding), padding with -100."""
    if chunks[0].ndim < 2 or len({c.shape[1] for c in chunks}) == 1:
        return np.concatenate(chunks)
    longest = max(c.shape[1] for c in chunks)
    padded = []
    for c in chunks:
        widths = [(0, 0), (0, longest - c.shape[1])] + [(0, 0)] * (c.ndim - 2)
        fill = -100 if c.dtype.kind in "iu" else -np.inf
        padded.append(np.pad(c, widths, constant_values=fill))
    return np.concatenate(padded)


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
