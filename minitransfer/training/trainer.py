"""Trainer: the one training loop every task uses, with transformers' names and behaviour.

    trainer = Trainer(model, args, data_collator, train_dataset, eval_dataset, processing_class,
                      compute_metrics=..., callbacks=[EarlyStoppingCallback(2)])
    trainer.train()          # TrainOutput(global_step, training_loss, metrics)
    trainer.evaluate()       # {"eval_loss": ..., "eval_accuracy": ..., "epoch": ...}
    trainer.predict(data)    # PredictionOutput(predictions, label_ids, metrics)
    trainer.save_model(dir)

It runs epochs (or max_steps) of shuffled batches (dynamic padding; the models compute real tokens only), AdamW
with warmup/decay and gradient clipping, gradient accumulation, logging / evaluation / checkpoints by "steps" or
"epoch", callbacks, and a checkpoint-N/ folder per save (weights, tokenizer, optimizer moments, schedule, RNG,
trainer_state.json) from which train(resume_from_checkpoint=True) continues the same loss curve. What minitransfer
adds: the epoch order is a function of (seed, epoch), so a resumed run replays it exactly; Ctrl-C saves a
checkpoint first; every log line also goes to OUTPUT_DIR/metrics.jsonl.

Datasets: anything with __len__ and __getitem__(i) -> dict (a list of dicts, a datasets.Dataset, our
ArrayDataset); `label`/`label_ids` become `labels`, and columns the model's forward does not take (`sentence`,
`idx`) are dropped (remove_unused_columns).
"""
from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import re
import shutil
import signal
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from minitransfer import backend
from minitransfer import random as mt_random
from minitransfer.autograd import no_grad
from minitransfer.distributed import GradientReducer, broadcast_parameters, check_identical, get_communicator
from minitransfer.errors import CheckpointError, ConfigError, InputError, TrainingError
from minitransfer.io.safetensors_io import load_safetensors
from minitransfer.models.inputs import FLATTENED_KEYS
from minitransfer.optim import AdamW, clip_grad_norm_, get_scheduler, param_groups_for_weight_decay
from minitransfer.tasks.batching import (
    epoch_order,
    example_lengths,
    length_grouped_order,
    pad_collate,
    token_budget_batches,
)
from minitransfer.training.arguments import TrainingArguments
from minitransfer.training.callbacks import CallbackHandler, TrainerControl, TrainerState, reporting_callbacks
from minitransfer.training.run_guard import (
    OutputDirLock,
    dataset_fingerprint,
    resume_differences,
    verify_manifest,
    write_manifest,
)
from minitransfer.training.trainer_utils import EvalPrediction, PredictionOutput, TrainOutput

CHECKPOINT_PREFIX = "checkpoint"
LABEL_RENAMES = {"label": "labels", "label_ids": "labels"}


class Trainer:
    """Train `model` (its forward returns `loss` when given labels) on `train_dataset`; transformers' signature.

    compute_metrics(EvalPrediction) -> dict: `logits, labels = eval_pred`; keys come back "eval_"-prefixed.
    evaluate_fn(trainer) -> dict (minitransfer's own): replaces the prediction loop where evaluation is more than
    logits vs labels (QA post-processing over windows, masked-LM perplexity); its keys are prefixed the same way.
    """

    def __init__(self, model=None, args: TrainingArguments | None = None, data_collator: Callable | None = None,
                 train_dataset=None, eval_dataset=None, processing_class=None, model_init: Callable | None = None,
                 compute_loss_func: Callable | None = None, compute_metrics: Callable | None = None,
                 callbacks: list | None = None, optimizers=(None, None), *, tokenizer=None,
                 evaluate_fn: Callable[[Trainer], dict] | None = None):
        if model is None:
            if model_init is None:
                raise ConfigError("Trainer needs a model (or model_init, a function returning one)")
            model = model_init()
        self.model, self.args = model, args or TrainingArguments()
        self.train_dataset, self.eval_dataset = train_dataset, eval_dataset
        self.processing_class = processing_class if processing_class is not None else tokenizer
        pad_id = getattr(self.processing_class, "pad_token_id", 0) or 0
        self.data_collator = data_collator or (lambda features: pad_collate(features, pad_id))
        self.compute_loss_func, self.compute_metrics, self.evaluate_fn = compute_loss_func, compute_metrics, evaluate_fn
        self.optimizer, self.lr_scheduler = optimizers
        self.callback_handler = CallbackHandler(list(callbacks or []) + reporting_callbacks(self.args.report_to))
        self.state, self.control = TrainerState(), TrainerControl()
        self.output_dir = Path(self.args.output_dir)
        self._accepted = _forward_arguments(model)
        self._lengths: np.ndarray | None = None  # training examples' token counts (group_by_length, token budget)
        self._training = False
        self.control = self.callback_handler.call("on_init_end", self.args, self.state, self.control)

    @property
    def tokenizer(self):  # transformers' older name for processing_class
        return self.processing_class

    def add_callback(self, callback) -> None:
        self.callback_handler.add_callback(callback)

    def pop_callback(self, callback):
        return self.callback_handler.pop_callback(callback)

    def remove_callback(self, callback) -> None:
        self.callback_handler.remove_callback(callback)

    # ---- batches ----
    def _features(self, dataset, indices) -> dict:
        """The collated batch of `indices`: labels renamed, columns the model does not take dropped."""
        if hasattr(dataset, "batch"):  # ArrayDataset: whole arrays at once
            return self._keep_model_inputs(dataset.batch(np.asarray(indices)))
        return self.data_collator([self._keep_model_inputs(dict(dataset[int(i)])) for i in indices])

    def _keep_model_inputs(self, features: dict) -> dict:
        features = {LABEL_RENAMES.get(k, k): v for k, v in features.items()}
        if not self.args.remove_unused_columns or self._accepted is None:
            return features
        return {k: v for k, v in features.items() if k in self._accepted}

    def _label_names(self, batch: dict) -> list[str]:
        if self.args.label_names:
            return list(self.args.label_names)
        if "start_positions" in batch:
            return ["start_positions", "end_positions"]
        return ["labels"] if "labels" in batch else []

    def _epoch_steps(self, epoch: int) -> list[list[np.ndarray]]:
        """The epoch's shuffled batches grouped into optimizer steps of gradient_accumulation_steps batches.

        A trailing group shorter than gradient_accumulation_steps is dropped (unless it is the only one).
        """
        a = self.args
        # A global batch: per_device_train_batch_size rows for each rank, which takes its own slice of it.
        size, accum = a.per_device_train_batch_size * self._world_size(), a.gradient_accumulation_steps
        if (a.group_by_length or a.max_tokens_per_batch) and self._lengths is None:
            self._lengths = example_lengths(self.train_dataset)
        if a.group_by_length:
            order = length_grouped_order(self._lengths, size, a.seed, epoch)
        else:
            order = epoch_order(len(self.train_dataset), a.seed, epoch)
        if a.max_tokens_per_batch:
            batches = token_budget_batches(order, self._lengths, a.max_tokens_per_batch * self._world_size())
        else:
            batches = [order[i:i + size] for i in range(0, len(order), size)]
        steps = [batches[i:i + accum] for i in range(0, len(batches) - accum + 1, accum)]
        return steps or [batches]

    def steps_per_epoch(self, epoch: int = 0) -> int:
        if self.args.max_tokens_per_batch:  # the number of batches depends on the epoch's order
            return len(self._epoch_steps(epoch))
        batches = math.ceil(len(self.train_dataset) / (self.args.per_device_train_batch_size * self._world_size()))
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

    # ---- setup ----
    def create_optimizer_and_scheduler(self, num_training_steps: int) -> None:
        a = self.args
        if self.optimizer is None:
            groups = param_groups_for_weight_decay(self.model, a.weight_decay)
            if not any(g["params"] for g in groups):
                raise InputError("every parameter is frozen: there is nothing to train")
            self.optimizer = AdamW(groups, lr=a.learning_rate, betas=(a.adam_beta1, a.adam_beta2), eps=a.adam_epsilon)
        if self.lr_scheduler is None:
            self.lr_scheduler = get_scheduler(a.lr_scheduler_type, self.optimizer, self._warmup(num_training_steps),
                                              num_training_steps)

    def _warmup(self, total: int) -> int:
        a = self.args
        if a.warmup_steps >= 1:
            return int(a.warmup_steps)
        ratio = a.warmup_steps if a.warmup_steps > 0 else a.warmup_ratio
        return int(math.ceil(ratio * total))

    def _every(self, value: float, total: int) -> int:
        """logging/eval/save steps: a count, or a fraction of the total steps when below 1 (transformers)."""
        return max(1, int(math.ceil(value * total))) if value < 1 else int(value)

    # ---- training ----
    def train(self, resume_from_checkpoint: str | bool | None = None, *, resume: bool = False) -> TrainOutput:
        """Run training; resume_from_checkpoint=True continues from the latest OUTPUT_DIR/checkpoint-N (a path: from
        that checkpoint). Returns TrainOutput(global_step, training_loss, metrics)."""
        if self.train_dataset is None or len(self.train_dataset) == 0:
            raise InputError("the training set is empty: check the file and --max-train-examples")
        resume_from_checkpoint = resume if resume_from_checkpoint is None else resume_from_checkpoint
        if self.output_dir.exists() and not self.output_dir.is_dir():
            raise InputError(f"output_dir {self.output_dir} is a file: give a folder (it is created if missing)")
        checkpoint = self._checkpoint_to_resume(resume_from_checkpoint)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.comm = get_communicator()
        lock = OutputDirLock(self.output_dir).acquire() if self.is_world_process_zero() else None
        try:
            return self._train(checkpoint)
        finally:
            if lock is not None:
                lock.release()
            if self.reducer is not None:
                self.reducer.remove()
                self.reducer = None
            self._training = False

    # ---- ranks (data parallelism; one process: rank 0 of 1) ----
    comm = None
    reducer: GradientReducer | None = None
    _check_replicas = 0  # every this many steps, check that all ranks hold the same weights (0: never)
    _sparse_embedding = None  # the word embedding, averaged by its touched rows (GradientReducer row_sparse)

    def _world_size(self) -> int:
        return self.comm.size if self.comm is not None else get_communicator().size

    def is_world_process_zero(self) -> bool:
        """Whether this process writes files and prints (transformers' name): rank 0, or the only process."""
        return (self.comm or get_communicator()).rank == 0

    def _start_ranks(self) -> None:
        """Every rank holds rank 0's weights and the same data and settings; gradients will be averaged."""
        comm = self.comm
        if comm.size == 1:
            return
        mine = {"examples": len(self.train_dataset), "data": self.state.data_fingerprint,
                "parameters": [(n, tuple(p.shape)) for n, p in self.model.named_parameters()],
                "args": {k: v for k, v in self.args.to_dict().items() if k not in ("output_dir",)}}
        everyone = comm.allgather_object(mine)
        for rank, theirs in enumerate(everyone):
            for key in mine:
                if theirs[key] != everyone[0][key]:
                    raise ConfigError(f"rank {rank} differs from rank 0 in its {key} (model, data and settings must "
                                      "be the same on every rank): start every rank with the same command")
        broadcast_parameters(self.model.parameters(), comm)
        self._check_replicas = int(os.environ.get("MINITRANSFER_CHECK_REPLICAS", "0") or 0)
        self._sparse_embedding = _row_sparse_embedding(self.model)
        self.reducer = GradientReducer([p for p in self.model.parameters() if p.requires_grad], comm,
                                       row_sparse=[self._sparse_embedding] if self._sparse_embedding else [])

    def _train(self, checkpoint: Path | None) -> TrainOutput:
        a = self.args
        if a.use_cpu and self.model.device != "cpu":
            raise ConfigError(f"use_cpu=True but the model is on {self.model.device}: move it with model.to('cpu')")
        mt_random.manual_seed(a.seed)
        _set_padding_free(self.model, a.padding_free)
        total = self.total_steps()
        self.create_optimizer_and_scheduler(total)
        self.state = TrainerState(max_steps=total, num_train_epochs=a.num_train_epochs,
                                  data_fingerprint=dataset_fingerprint(self.train_dataset),
                                  world_size=self.comm.size, is_world_process_zero=self.is_world_process_zero())
        if checkpoint is not None:
            self._load_checkpoint(checkpoint)
        elif self.is_world_process_zero():
            (self.output_dir / "metrics.jsonl").unlink(missing_ok=True)
            if a.overwrite_output_dir:  # a new run: the old run's checkpoints must not be taken for this one's
                for old in self._checkpoints():
                    shutil.rmtree(old, ignore_errors=True)
        self._start_ranks()
        if self.is_world_process_zero():
            a.save(self.output_dir)
        self._every_steps = {name: self._every(getattr(a, f"{name}_steps"), total) for name in ("logging", "eval",
                                                                                               "save")}
        self.control = self.callback_handler.call("on_train_begin", a, self.state, self.control)
        self._training = True
        self._bar = _progress(total, self.state.global_step, not a.disable_tqdm and self.is_world_process_zero())
        self._running, self._losses, started = [], [], time.perf_counter()
        self.model.train()
        try:
            if self.state.epoch_end_pending:  # interrupted inside the epoch's closing evaluation: do it now
                self._end_epoch()
            while self.state.global_step < total and not self.control.should_training_stop:
                epoch = self.state.epoch_index
                steps = self._epoch_steps(epoch)
                if self.state.steps_in_epoch >= len(steps):  # a checkpoint of the epoch's end: the next one starts
                    self.state.epoch_index, self.state.steps_in_epoch = epoch + 1, 0
                    continue
                self.control = self.callback_handler.call("on_epoch_begin", a, self.state, self.control)
                for index in range(self.state.steps_in_epoch, len(steps)):
                    self._training_step(steps[index], epoch, index, len(steps))
                    if self.control.should_training_stop or self.control.should_epoch_stop \
                            or self.state.global_step >= total:
                        break
                self.state.epoch_end_pending = True
                self._end_epoch()
        except KeyboardInterrupt:
            self._bar.close()
            path = self._save_checkpoint(None)
            if self.is_world_process_zero():
                print(f"\ninterrupted at step {self.state.global_step}: state saved to {path}; "
                      "resume with resume_from_checkpoint=True (the CLI: --resume)")
            raise
        self._bar.close()
        if a.load_best_model_at_end and self.state.best_model_checkpoint:
            self._load_weights(Path(self.state.best_model_checkpoint))
        runtime = time.perf_counter() - started
        training_loss = float(np.mean(self._losses)) if self._losses else 0.0
        metrics = {"train_runtime": round(runtime, 4), "train_samples_per_second": round(
                   len(self.train_dataset) * a.num_train_epochs / max(runtime, 1e-9), 3),
                   "train_steps_per_second": round(len(self._losses) / max(runtime, 1e-9), 3),
                   "train_loss": training_loss, "epoch": self.state.epoch}
        self.log(dict(metrics))
        self.control = self.callback_handler.call("on_train_end", a, self.state, self.control)
        if a.plot:
            from minitransfer.training.plot import plot_metrics  # noqa: PLC0415 (matplotlib is optional)

            plot_metrics(self.output_dir / "metrics.jsonl", self.output_dir / "curves.png")
        return TrainOutput(self.state.global_step, training_loss, metrics)

    def _training_step(self, micro_batches, epoch: int, index: int, steps_in_epoch: int) -> None:
        """One optimizer step, then what the strategies ask for at its end (log, evaluate, save)."""
        a, every = self.args, self._every_steps
        self.control = self.callback_handler.call("on_step_begin", a, self.state, self.control)
        loss = self._accumulate(micro_batches)
        with _interrupts_deferred():  # Ctrl-C never lands between the weights' update and the step's bookkeeping
            grad_norm = self._optimizer_step()
            self.state.global_step += 1
            self.state.epoch_index, self.state.steps_in_epoch = epoch, index + 1
            self.state.epoch = epoch + (index + 1) / steps_in_epoch
            self.state.rng_state = mt_random.numpy_rng().bit_generator.state  # at the step boundary
        if self.reducer is not None and self._check_replicas and self.state.global_step % self._check_replicas == 0:
            check_identical(self.model.named_parameters(), self.comm)  # MINITRANSFER_CHECK_REPLICAS=N (debug)
        self._running.append(loss)
        self._losses.append(loss)
        lr = self.lr_scheduler.get_last_lr()[0]
        self._bar.update(1)
        self._bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
        self.control = self.callback_handler.call("on_step_end", a, self.state, self.control)
        step = self.state.global_step
        if (a.logging_strategy == "steps" and (step % every["logging"] == 0 or step == self.state.max_steps
                                               or (step == 1 and a.logging_first_step))) or self.control.should_log:
            self.log({"loss": float(np.mean(self._running)), "grad_norm": grad_norm, "learning_rate": lr})
            self._running = []
        metrics = None
        if (a.eval_strategy == "steps" and step % every["eval"] == 0) or self.control.should_evaluate:
            metrics = self.evaluate()
        if (a.save_strategy == "steps" and step % every["save"] == 0) or self.control.should_save:
            self._save_checkpoint(metrics)
        self.control.should_log = self.control.should_evaluate = self.control.should_save = False

    def _end_epoch(self) -> None:
        """An epoch's close: the epoch strategies' log, evaluation and checkpoint; then the next epoch's position."""
        a = self.args
        finished = self.state.steps_in_epoch >= len(self._epoch_steps(self.state.epoch_index))
        self.control.should_epoch_stop = False
        self.control = self.callback_handler.call("on_epoch_end", a, self.state, self.control)
        if a.logging_strategy == "epoch" and self._running:
            self.log({"loss": float(np.mean(self._running)), "learning_rate": self.lr_scheduler.get_last_lr()[0]})
            self._running = []
        metrics = self.evaluate() if a.eval_strategy == "epoch" else None
        self.state.epoch_end_pending = False
        if finished:
            self.state.epoch_index, self.state.steps_in_epoch = self.state.epoch_index + 1, 0
        if a.save_strategy == "epoch":
            self._save_checkpoint(metrics)

    def compute_loss(self, model, inputs: dict):
        """The loss of one batch: the model's own, or compute_loss_func(outputs, labels) when given."""
        if self.compute_loss_func is not None:
            labels = inputs.pop("labels", None)
            outputs = model(**inputs)
            return self.compute_loss_func(outputs, labels)
        outputs = model(**inputs)
        if outputs.get("loss") is None:
            raise InputError("the model returned no loss: the training batches must include labels "
                             f"(the batch has {sorted(inputs)})")
        return outputs["loss"]

    def _accumulate(self, micro_batches: list[np.ndarray]) -> float:
        """Forward and backward over this rank's slice of each of `micro_batches` (global batches), gradients summed
        and, across ranks, averaged; returns the mean loss over every rank's examples.

        Each rank's loss is weighted by its share of the global batch, so N ranks x batch b take exactly the step
        one process takes on batch N * b (an uneven last batch included)."""
        comm, world = self.comm, self.comm.size
        total, count, token_ids = 0.0, 0, []
        for i, indices in enumerate(micro_batches):
            mine = np.array_split(indices, world)[comm.rank] if world > 1 else indices
            syncing = self.reducer is None or i == len(micro_batches) - 1
            with contextlib.nullcontext() if syncing else self.reducer.no_sync():
                if len(mine) == 0:  # an uneven tail left this rank nothing: it still joins the averaging
                    continue
                batch = self._features(self.train_dataset, mine)
                if self._sparse_embedding is not None:
                    token_ids.append(np.asarray(backend.to_numpy(batch["input_ids"])).ravel())
                loss = self.compute_loss(self.model, self._to_device(batch))
                value = loss.item()
                if world == 1 and not math.isfinite(value):
                    self.optimizer.zero_grad()
                    raise self._diverged(f"the loss is {value}")
                weight = len(mine) * world / len(indices) / len(micro_batches)
                (loss * weight if weight != 1.0 else loss).backward()
                total, count = total + value * len(mine), count + len(mine)
        if self.reducer is not None:
            rows = {}
            if self._sparse_embedding is not None:
                ids = np.concatenate(token_ids) if token_ids else np.zeros(0, dtype=np.int64)
                rows[id(self._sparse_embedding)] = ids
            self.reducer.finish(rows)
        if world > 1:
            sums = np.array([total, count], dtype=np.float64)
            comm.allreduce(sums)
            total, count = float(sums[0]), int(sums[1])
            if not math.isfinite(total):  # every rank sees it: all stop together
                self.optimizer.zero_grad()
                raise self._diverged(f"the loss is {total / max(count, 1)}")
        return total / max(count, 1)

    def _diverged(self, what: str) -> TrainingError:
        lr = self.lr_scheduler.get_last_lr()[0]
        kept = (f"the last checkpoint is {self._checkpoints()[-1]}" if self._checkpoints() else "no checkpoint was "
                "written yet")
        return TrainingError(f"training diverged at step {self.state.global_step + 1}: {what} (learning rate "
                             f"{lr:.3g}); the step was not applied and {kept}. Lower the learning rate (--lr), add "
                             "warmup (--warmup) or keep gradient clipping on (--max-grad-norm)")

    def _optimizer_step(self) -> float | None:
        params = [p for p in self.model.parameters() if p.requires_grad]
        clip = self.args.max_grad_norm if self.args.max_grad_norm and self.args.max_grad_norm > 0 else math.inf
        norm = float(clip_grad_norm_(params, clip))  # with no clipping: the norm alone, to catch inf / nan
        if not math.isfinite(norm):
            self.optimizer.zero_grad()
            raise self._diverged(f"the gradient norm is {norm}")
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad()
        return norm if clip != math.inf else None

    def _to_device(self, batch: dict) -> dict:
        device = self.model.device
        if device == "cpu":
            return batch
        return {k: backend.to_device(v, device) for k, v in batch.items()}

    # ---- evaluation and prediction ----
    def evaluate(self, eval_dataset=None, ignore_keys: list[str] | None = None,
                 metric_key_prefix: str = "eval") -> dict:
        """Metrics on the eval set (eval mode, no graph), keys prefixed `eval_`, plus runtime and epoch; logged."""
        started = time.perf_counter()
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if self.evaluate_fn is not None:
            metrics = dict(self.evaluate_fn(self))
            count = None
        else:
            if dataset is None:
                raise InputError("evaluate() needs an eval_dataset (given to the Trainer or to evaluate)")
            output = self._prediction_loop(dataset, ignore_keys)
            metrics, count = output.metrics, len(dataset)
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
                names = self._label_names(batch)
                out = self.model(**self._to_device(batch))
                for name, value in out.items():
                    if name != "loss" and hasattr(value, "numpy") and name not in (ignore_keys or ()):
                        chunks.setdefault(name, []).append(value.numpy())
                if out.get("loss") is not None:
                    losses.append(out["loss"].item())
                    sizes.append(len(indices))
                for name in names:
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

    # ---- saving and resuming ----
    def save_model(self, output_dir: str | Path | None = None) -> None:
        """The model in the Hugging Face layout, with its tokenizer and the training arguments."""
        if not self.is_world_process_zero():
            return
        directory = Path(output_dir or self.args.output_dir)
        self.model.save_pretrained(directory)
        if self.processing_class is not None and hasattr(self.processing_class, "save_pretrained"):
            self.processing_class.save_pretrained(directory)
        self.args.save(directory)

    def _save_checkpoint(self, metrics: dict | None) -> Path:
        """OUTPUT_DIR/checkpoint-N: written to a temp folder, then renamed (never a half checkpoint)."""
        a = self.args
        key = a.best_metric_key
        if metrics is not None and key is not None:
            if key not in metrics:
                raise InputError(f"metric_for_best_model {a.metric_for_best_model!r} is not among the eval metrics "
                                 f"{sorted(metrics)}")
            value = metrics[key]
            best = self.state.best_metric
            if best is None or (value > best if a.greater_is_better else value < best):
                self.state.best_metric = value
                self.state.best_model_checkpoint = str(self._checkpoint_path())
        final = self._checkpoint_path()
        if not self.is_world_process_zero():  # rank 0 writes; every rank tracked the best metric above
            self.control = self.callback_handler.call("on_save", a, self.state, self.control)
            return final
        bad = [n for n, p in self.model.named_parameters() if not np.isfinite(backend.to_numpy(p.data)).all()]
        if bad:
            raise TrainingError(f"the weights hold inf or nan ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''})"
                                f" at step {self.state.global_step}: no checkpoint is written from them. Lower the "
                                "learning rate (--lr)")
        tmp = final.with_name(final.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        with _interrupts_deferred():  # a Ctrl-C waits for the checkpoint; a kill leaves only the .tmp folder
            self.save_model(tmp)
            np.savez(tmp / "optimizer.npz", **self.optimizer.state_dict())
            (tmp / "scheduler.json").write_text(json.dumps(self.lr_scheduler.state_dict(), default=_json_default))
            self.state.save_to_json(tmp / "trainer_state.json")
            write_manifest(tmp)
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
        self._rotate_checkpoints()
        self.control = self.callback_handler.call("on_save", a, self.state, self.control)
        return final

    def _checkpoint_path(self) -> Path:
        return self.output_dir / f"{CHECKPOINT_PREFIX}-{self.state.global_step}"

    def _checkpoints(self) -> list[Path]:
        """checkpoint-N folders of the output directory, oldest first."""
        found = [p for p in self.output_dir.glob(f"{CHECKPOINT_PREFIX}-*")
                 if p.is_dir() and re.fullmatch(rf"{CHECKPOINT_PREFIX}-\d+", p.name)]
        return sorted(found, key=lambda p: int(p.name.split("-")[1]))

    def _rotate_checkpoints(self) -> None:
        """Keep the newest save_total_limit checkpoints; the best one counts as the newest, so it is never deleted
        (with a limit of 1 and load_best_model_at_end, the best and the latest both stay, as in transformers)."""
        limit = self.args.save_total_limit
        if limit is None:
            return
        checkpoints = self._checkpoints()
        best = Path(self.state.best_model_checkpoint) if self.state.best_model_checkpoint else None
        if best in checkpoints:
            checkpoints.remove(best)
            checkpoints.append(best)
            if limit == 1 and self.args.load_best_model_at_end and best != self._checkpoints()[-1]:
                limit = 2
        for old in checkpoints[:-limit]:
            shutil.rmtree(old, ignore_errors=True)

    def _checkpoint_to_resume(self, resume) -> Path | None:
        if resume is None or resume is False:
            return None
        if resume is True:
            checkpoints = self._checkpoints()
            if not checkpoints:
                raise CheckpointError(f"cannot resume: {self.output_dir} has no checkpoint-N folder (was the run "
                                      "started with this output directory?)")
            return checkpoints[-1]
        path = Path(resume)
        if not (path / "trainer_state.json").is_file():
            raise CheckpointError(f"cannot resume from {path}: it has no trainer_state.json (pass a checkpoint-N "
                                  "folder, or True for the latest one in output_dir)")
        return path

    def _load_weights(self, directory: Path) -> None:
        self.model.load_state_dict(load_safetensors(directory / "model.safetensors"), strict=False)
        if hasattr(self.model, "tie_weights"):
            self.model.tie_weights()

    def _load_checkpoint(self, directory: Path) -> None:
        """Resume from `directory` after checking it is whole (its manifest) and belongs to this very run."""
        verify_manifest(directory)
        try:
            saved_state = TrainerState.load_from_json(directory / "trainer_state.json")
            saved_args = json.loads((directory / "training_args.json").read_text())
            current = self.args.to_dict()
            for values, world in ((saved_args, saved_state.world_size), (current, self.comm.size)):
                values["global_train_batch_size"] = (values["per_device_train_batch_size"] * world
                                                     * values["gradient_accumulation_steps"])
            changes = resume_differences(saved_args, current, saved_state.data_fingerprint,
                                         self.state.data_fingerprint)
            if changes:
                raise TrainingError(f"cannot resume from {directory}: this run differs from the one that wrote it ("
                                    + "; ".join(changes) + "). Resume with the original settings and data, or start a "
                                    "new run in another output folder")
            self._load_weights(directory)
            with np.load(directory / "optimizer.npz") as saved:
                self.optimizer.load_state_dict(dict(saved))
            self.lr_scheduler.load_state_dict(json.loads((directory / "scheduler.json").read_text()))
            if saved_state.rng_state is None:
                raise KeyError("rng_state")
            mt_random.numpy_rng().bit_generator.state = saved_state.rng_state
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:
            raise CheckpointError(f"cannot resume from {directory}: {type(e).__name__}: {e}. The checkpoint is "
                                  "incomplete or from another version: resume from an earlier checkpoint-N") from e
        saved_state.max_steps, saved_state.num_train_epochs = self.state.max_steps, self.state.num_train_epochs
        saved_state.world_size, saved_state.is_world_process_zero = self.comm.size, self.is_world_process_zero()
        self.state = saved_state

    # ---- logging ----
    def log(self, logs: dict) -> None:
        """One log entry: into state.log_history and OUTPUT_DIR/metrics.jsonl, and to the callbacks' on_log."""
        entry = {**logs, "epoch": round(self.state.epoch, 4), "step": self.state.global_step}
        self.state.log_history.append(entry)
        if self._training and self.is_world_process_zero():  # evaluate() / predict() outside train(): no file
            with open(self.output_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(entry, default=_json_default) + "\n")
        if self._training and self.is_world_process_zero() and (any(k.startswith("eval_") for k in logs)
                                                                 or "train_runtime" in logs):
            shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in entry.items()}
            _write_line(("eval " if "train_runtime" not in logs else "done ") + json.dumps(shown,
                                                                                          default=_json_default))
        self.control = self.callback_handler.call("on_log", self.args, self.state, self.control, logs=entry)


@contextlib.contextmanager
def _interrupts_deferred():
    """Hold a Ctrl-C (SIGINT) until the block is done, then raise it: a step or a checkpoint is never cut in half.
    Only the main thread receives signals; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def _row_sparse_embedding(model):
    """The word-embedding weight when its gradient lives only on the rows of the batch's token ids: it is trained,
    not tied to another parameter (an MLM decoder's gradient covers the whole vocabulary) and read by input_ids."""
    inner = model._inner() if hasattr(model, "_inner") else model  # a wrapper (MaskedLMLoss, distillation)
    if getattr(inner, "tied_weights", None):
        return None
    body = getattr(inner, getattr(inner, "base_model_prefix", ""), None) or inner
    if not hasattr(body, "get_input_embeddings"):
        return None
    weight = body.get_input_embeddings().weight
    return weight if weight.requires_grad else None


def _forward_arguments(model) -> set[str] | None:
    """The keyword names the model's forward takes (None: it takes any); flattened-batch keys when it has **kwargs."""
    try:
        parameters = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return None
    names = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if any(p.kind == p.VAR_KEYWORD for p in parameters):
        names |= set(FLATTENED_KEYS) | {"position_ids"}
    return names


def _prefixed(metrics: dict, prefix: str) -> dict:
    return {(k if k.startswith(f"{prefix}_") or k == "epoch" else f"{prefix}_{k}"): v for k, v in metrics.items()}


def _single(arrays: list):
    """One array as itself, several as a tuple (transformers' predictions / label_ids)."""
    if not arrays:
        return None
    return arrays[0] if len(arrays) == 1 else tuple(arrays)


def _set_padding_free(model, padding_free: bool) -> None:
    """Point every config in the model (a head and its body, or a wrapped model) at one padding_free setting."""
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "__dict__") and "model_type" in config.__dict__:
            config.padding_free = padding_free


set_padding_free = _set_padding_free


def _progress(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm  # noqa: PLC0415

    return tqdm(total=total, initial=initial, disable=not enabled, desc="train", dynamic_ncols=True)


def _write_line(text: str) -> None:
    """A line that does not break a running tqdm bar."""
    from tqdm.auto import tqdm  # noqa: PLC0415

    tqdm.write(text)


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
