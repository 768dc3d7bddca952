"""Trainer: the one training loop every task uses, with transformers' names and behaviour.

    trainer = Trainer(model, args, data_collator, train_dataset, eval_dataset, processing_class,
                      compute_metrics=..., callbacks=[EarlyStoppingCallback(2)])
    trainer.train()          # TrainOutput(global_step, training_loss, metrics)
    trainer.evaluate()       # {"eval_loss": ..., "eval_accuracy": ..., "epoch": ...}
    trainer.predict(data)    # PredictionOutput(predictions, label_ids, metrics)
    trainer.save_model(dir)

It runs epochs (or max_steps) of shuffled batches (dynamic padding; the models compute real tokens only), AdamW
with warmup/decay and gradient clipping, gradient accumulation, logging / evaluation / checkpoints by "steps" or
"epoch", callbacks, and a checkpoint-N/ folder per save from which train(resume_from_checkpoint=True) continues the
same loss curve. What minitransfer adds: the epoch order is a function of (seed, epoch), so a resumed run replays it
exactly; Ctrl-C saves a checkpoint first; every log entry also goes to OUTPUT_DIR/metrics.jsonl. The loop is here;
beside it: batches.py, evaluation.py, checkpoints.py, data_parallel.py, reporting.py, run_guard.py.

Datasets: anything with __len__ and __getitem__(i) -> dict (a list of dicts, a datasets.Dataset, our
ArrayDataset); `label`/`label_ids` become `labels`, and columns the model's forward does not take (`sentence`,
`idx`) are dropped (remove_unused_columns).
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from minitransfer import backend, seeding
from minitransfer.data.batching import batch_to_device, pad_collate
from minitransfer.distributed import GradientReducer, check_identical, get_communicator
from minitransfer.errors import ConfigError, InputError, TrainingError
from minitransfer.optim import AdamW, clip_grad_norm_, get_scheduler, param_groups_for_weight_decay
from minitransfer.training.arguments import TrainingArguments
from minitransfer.training.batches import Batching, forward_arguments
from minitransfer.training.callbacks import CallbackHandler, TrainerControl, TrainerState
from minitransfer.training.checkpoints import Checkpointing, checkpoint_to_resume, list_checkpoints, load_weights
from minitransfer.training.data_parallel import start_ranks
from minitransfer.training.evaluation import Evaluation
from minitransfer.training.mixed_precision import forward_precision, grad_scaler
from minitransfer.training.reporting import reporting_callbacks
from minitransfer.training.run_guard import OutputDirLock, dataset_fingerprint, interrupts_deferred
from minitransfer.training.trainer_utils import TrainOutput, json_default

logger = logging.getLogger(__name__)


class Trainer(Batching, Evaluation, Checkpointing):
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
        if self.args.device is not None:  # the batches follow the model (batch_to_device)
            model.to(backend.check_device(self.args.device))
        self.train_dataset, self.eval_dataset = train_dataset, eval_dataset
        self.processing_class = processing_class if processing_class is not None else tokenizer
        pad_id = getattr(self.processing_class, "pad_token_id", 0) or 0
        self.data_collator = data_collator or (lambda features: pad_collate(features, pad_id))
        self.compute_loss_func, self.compute_metrics, self.evaluate_fn = compute_loss_func, compute_metrics, evaluate_fn
        self.optimizer, self.lr_scheduler = optimizers
        self.callback_handler = CallbackHandler(list(callbacks or []) + reporting_callbacks(self.args))
        self.state, self.control = TrainerState(), TrainerControl()
        self.output_dir = Path(self.args.output_dir)
        self._accepted = forward_arguments(model)
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

    # ---- setup ----
    def create_optimizer_and_scheduler(self, num_training_steps: int) -> None:
        a = self.args
        if self.optimizer is None:
            groups = param_groups_for_weight_decay(self.model, a.weight_decay)
            if not any(g["params"] for g in groups):
                raise InputError("every parameter is frozen: there is nothing to train")
            self.optimizer = AdamW(groups, lr=a.learning_rate, betas=(a.adam_beta1, a.adam_beta2), eps=a.adam_epsilon)
        if self.lr_scheduler is None:
            # warmup_steps >= 1: a count; below 1 (or warmup_ratio): a fraction of the steps
            ratio = a.warmup_steps if a.warmup_steps > 0 else a.warmup_ratio
            warmup = int(a.warmup_steps) if a.warmup_steps >= 1 else int(math.ceil(ratio * num_training_steps))
            self.lr_scheduler = get_scheduler(a.lr_scheduler_type, self.optimizer, warmup, num_training_steps)

    # ---- ranks (data parallelism, data_parallel.py; one process: rank 0 of 1) ----
    comm = None
    reducer: GradientReducer | None = None
    _check_replicas = 0  # every this many steps, check that all ranks hold the same weights (0: never)
    _sparse_embedding = None  # the word embedding, averaged by its touched rows (GradientReducer row_sparse)

    def _world_size(self) -> int:
        return self.comm.size if self.comm is not None else get_communicator().size

    def is_world_process_zero(self) -> bool:
        """Whether this process writes files (transformers' name): rank 0, or the only process."""
        return (self.comm or get_communicator()).rank == 0

    # ---- training ----
    def train(self, resume_from_checkpoint: str | bool | None = None, *, resume: bool = False) -> TrainOutput:
        """Run training; resume_from_checkpoint=True continues from the latest OUTPUT_DIR/checkpoint-N (a path: from
        that checkpoint). Returns TrainOutput(global_step, training_loss, metrics)."""
        if self.train_dataset is None or len(self.train_dataset) == 0:
            raise InputError("the training set is empty: check the file and --max-train-examples")
        resume_from_checkpoint = resume if resume_from_checkpoint is None else resume_from_checkpoint
        if self.output_dir.exists() and not self.output_dir.is_dir():
            raise InputError(f"output_dir {self.output_dir} is a file: give a folder (it is created if missing)")
        checkpoint = checkpoint_to_resume(self.output_dir, resume_from_checkpoint)
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

    def _train(self, checkpoint: Path | None) -> TrainOutput:
        a = self.args
        if a.use_cpu and self.model.device != "cpu":
            raise ConfigError(f"use_cpu=True but the model is on {self.model.device}: move it with model.to('cpu')")
        seeding.manual_seed(a.seed)
        _set_padding_free(self.model, a.padding_free)
        total = self.total_steps()
        self.scaler = grad_scaler(a, self.model)
        self.create_optimizer_and_scheduler(total)
        self.state = TrainerState(max_steps=total, num_train_epochs=a.num_train_epochs,
                                  data_fingerprint=dataset_fingerprint(self.train_dataset),
                                  world_size=self.comm.size, is_world_process_zero=self.is_world_process_zero())
        if checkpoint is not None:
            self._load_checkpoint(checkpoint)
        elif self.is_world_process_zero():
            (self.output_dir / "metrics.jsonl").unlink(missing_ok=True)
            if a.overwrite_output_dir:  # a new run: the old run's checkpoints must not be taken for this one's
                for old in list_checkpoints(self.output_dir):
                    shutil.rmtree(old, ignore_errors=True)
        self.reducer, self._sparse_embedding, self._check_replicas = start_ranks(
            self.model, a, len(self.train_dataset), self.state.data_fingerprint, self.comm)
        if self.is_world_process_zero():
            a.save(self.output_dir)
        self._every_steps = {name: _every(getattr(a, f"{name}_steps"), total) for name in ("logging", "eval", "save")}
        self.control = self.callback_handler.call("on_train_begin", a, self.state, self.control)
        self._training = True
        self._running, self._losses, started = [], [], time.perf_counter()
        self.model.train()
        with _progress_bar(total, self.state.global_step, not a.disable_tqdm and self.is_world_process_zero()) as bar:
            try:
                self._run_epochs(total, bar)
            except KeyboardInterrupt:
                path = self._save_checkpoint(None)
                if not self.is_world_process_zero():
                    raise
                raise KeyboardInterrupt(f"interrupted at step {self.state.global_step}: state saved to {path}; resume "
                                        "with resume_from_checkpoint=True (the CLI: --resume)") from None
        if a.load_best_model_at_end and self.state.best_model_checkpoint:
            load_weights(self.model, Path(self.state.best_model_checkpoint))
        runtime = time.perf_counter() - started
        training_loss = float(np.mean(self._losses)) if self._losses else 0.0
        metrics = {"train_runtime": round(runtime, 4), "train_samples_per_second": round(
                   len(self.train_dataset) * a.num_train_epochs / max(runtime, 1e-9), 3),
                   "train_steps_per_second": round(len(self._losses) / max(runtime, 1e-9), 3),
                   "train_loss": training_loss, "epoch": self.state.epoch}
        self.log(dict(metrics))
        self.control = self.callback_handler.call("on_train_end", a, self.state, self.control)
        return TrainOutput(self.state.global_step, training_loss, metrics)

    def _run_epochs(self, total: int, bar) -> None:
        """Epochs from the state's position (a resumed run: mid-epoch) until total steps or a callback's stop."""
        if self.state.epoch_end_pending:  # interrupted inside the epoch's closing evaluation: do it now
            self._end_epoch()
        while self.state.global_step < total and not self.control.should_training_stop:
            epoch = self.state.epoch_index
            steps = self._epoch_steps(epoch)
            if self.state.steps_in_epoch >= len(steps):  # a checkpoint of the epoch's end: the next one starts
                self.state.epoch_index, self.state.steps_in_epoch = epoch + 1, 0
                continue
            self.control = self.callback_handler.call("on_epoch_begin", self.args, self.state, self.control)
            for index in range(self.state.steps_in_epoch, len(steps)):
                self._training_step(steps[index], epoch, index, len(steps), bar)
                if self.control.should_training_stop or self.control.should_epoch_stop \
                        or self.state.global_step >= total:
                    break
            self.state.epoch_end_pending = True
            self._end_epoch()

    def _training_step(self, micro_batches, epoch: int, index: int, steps_in_epoch: int, bar) -> None:
        """One optimizer step, then what the strategies ask for at its end (log, evaluate, save)."""
        a, every = self.args, self._every_steps
        self.control = self.callback_handler.call("on_step_begin", a, self.state, self.control)
        loss = self._accumulate(micro_batches)
        with interrupts_deferred():  # Ctrl-C never lands between the weights' update and the step's bookkeeping
            grad_norm = self._optimizer_step()
            self.state.global_step += 1
            self.state.epoch_index, self.state.steps_in_epoch = epoch, index + 1
            self.state.epoch = epoch + (index + 1) / steps_in_epoch
            self.state.rng_state = seeding.numpy_rng().bit_generator.state  # at the step boundary
        if self.reducer is not None and self._check_replicas and self.state.global_step % self._check_replicas == 0:
            check_identical(self.model.named_parameters(), self.comm)  # MINITRANSFER_CHECK_REPLICAS=N (debug)
        self._running.append(loss)
        self._losses.append(loss)
        lr = self.lr_scheduler.get_last_lr()[0]
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
        self.control = self.callback_handler.call("on_step_end", a, self.state, self.control)
        step = self.state.global_step
        if (a.logging_strategy == "steps" and (step % every["logging"] == 0 or step == self.state.max_steps
                                               or (step == 1 and a.logging_first_step))) or self.control.should_log:
            scale = {"loss_scale": self.scaler.get_scale()} if self.scaler.is_enabled() else {}
            self.log({"loss": float(np.mean(self._running)), "grad_norm": grad_norm, "learning_rate": lr, **scale})
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
                with forward_precision(self.args):
                    loss = self.compute_loss(self.model, batch_to_device(batch, self.model.device))
                value = loss.item()
                if world == 1 and not math.isfinite(value):
                    self.optimizer.zero_grad()
                    raise self._diverged(f"the loss is {value}")
                weight = len(mine) * world / len(indices) / len(micro_batches)
                self.scaler.scale(loss * weight if weight != 1.0 else loss).backward()
                total, count = total + value * len(mine), count + len(mine)
        if self.reducer is not None:
            ids = np.concatenate(token_ids) if token_ids else np.zeros(0, dtype=np.int64)
            self.reducer.finish({id(self._sparse_embedding): ids} if self._sparse_embedding is not None else {})
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
        checkpoints = list_checkpoints(self.output_dir)
        kept = f"the last checkpoint is {checkpoints[-1]}" if checkpoints else "no checkpoint was written yet"
        return TrainingError(f"training diverged at step {self.state.global_step + 1}: {what} (learning rate "
                             f"{lr:.3g}); the step was not applied and {kept}. Lower the learning rate (--lr), add "
                             "warmup (--warmup) or keep gradient clipping on (--max-grad-norm)")

    def _optimizer_step(self) -> float | None:
        params = [p for p in self.model.parameters() if p.requires_grad]
        clip = self.args.max_grad_norm if self.args.max_grad_norm and self.args.max_grad_norm > 0 else math.inf
        self.scaler.unscale_(self.optimizer)  # fp16: the true gradients, before the clip sees them
        norm = float(clip_grad_norm_(params, clip))  # with no clipping: the norm alone, to catch inf / nan
        if not math.isfinite(norm) and not self.scaler.is_enabled():
            self.optimizer.zero_grad()
            raise self._diverged(f"the gradient norm is {norm}")
        scale = self.scaler.get_scale()
        self.scaler.step(self.optimizer)  # fp16: skipped when a gradient overflowed
        self.scaler.update()
        if self.scaler.get_scale() < scale:
            logger.info("step %d: inf/nan in the float16 gradients at loss scale %g: step skipped, scale lowered to "
                        "%g", self.state.global_step + 1, scale, self.scaler.get_scale())
        else:  # a skipped step leaves the schedule where it was
            self.lr_scheduler.step()
        self.optimizer.zero_grad()
        return norm if clip != math.inf else None

    # ---- logging ----
    def log(self, logs: dict) -> None:
        """One log entry: into state.log_history and OUTPUT_DIR/metrics.jsonl, and to the callbacks' on_log."""
        entry = {**logs, "epoch": round(self.state.epoch, 4), "step": self.state.global_step}
        self.state.log_history.append(entry)
        if self._training and self.is_world_process_zero():  # evaluate() / predict() outside train(): no file
            with open(self.output_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(entry, default=json_default) + "\n")
        self.control = self.callback_handler.call("on_log", self.args, self.state, self.control, logs=entry)


def _every(value: float, total: int) -> int:
    """logging/eval/save steps: a count, or a fraction of the total steps when below 1 (transformers)."""
    return max(1, int(math.ceil(value * total))) if value < 1 else int(value)


def _set_padding_free(model, padding_free: bool) -> None:
    """Point every config in the model (a head and its body, or a wrapped model) at one padding_free setting."""
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "__dict__") and "model_type" in config.__dict__:
            config.padding_free = padding_free


def _progress_bar(total: int, initial: int, enabled: bool):
    """The steps' tqdm bar (loss, learning rate); as a context manager it closes however the loop ends."""
    from tqdm.auto import tqdm  # noqa: PLC0415

    return tqdm(total=total, initial=initial, disable=not enabled, desc="train", dynamic_ncols=True)
