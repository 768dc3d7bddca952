"""The Trainer's checkpoint-N folders: written whole, found, rotated, and read back on resume.

    OUT/checkpoint-N/   what save_model writes (model.safetensors, config.json, tokenizer, training_args.json),
                        optimizer.npz, scheduler.json, scaler.json (fp16), trainer_state.json (with the RNG
                        state), manifest.json
"""
from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np

from minitransfer import backend, seeding
from minitransfer.errors import CheckpointError, InputError, TrainingError
from minitransfer.io.safetensors_io import load_safetensors
from minitransfer.training.callbacks import TrainerState
from minitransfer.training.mixed_precision import SCALER_FILE
from minitransfer.training.run_guard import interrupts_deferred, resume_differences, verify_manifest, write_manifest
from minitransfer.training.trainer_utils import json_default

PREFIX = "checkpoint"


class Checkpointing:
    """The Trainer's saving and resuming methods; they read its model, args, optimizer, schedule and state."""

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
        final = self.output_dir / f"{PREFIX}-{self.state.global_step}"
        if metrics is not None and key is not None:
            if key not in metrics:
                raise InputError(f"metric_for_best_model {a.metric_for_best_model!r} is not among the eval metrics "
                                 f"{sorted(metrics)}")
            value, best = metrics[key], self.state.best_metric
            if best is None or (value > best if a.greater_is_better else value < best):
                self.state.best_metric, self.state.best_model_checkpoint = value, str(final)
        if self.is_world_process_zero():  # rank 0 writes; every rank tracked the best metric above
            bad = [n for n, p in self.model.named_parameters() if not np.isfinite(backend.to_numpy(p.data)).all()]
            if bad:
                raise TrainingError(f"the weights hold inf or nan ({', '.join(bad[:3])}"
                                    f"{', ...' if len(bad) > 3 else ''}) at step {self.state.global_step}: no "
                                    "checkpoint is written from them. Lower the learning rate (--lr)")
            tmp = final.with_name(final.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            with interrupts_deferred():  # a Ctrl-C waits for the checkpoint; a kill leaves only the .tmp folder
                self.save_model(tmp)
                np.savez(tmp / "optimizer.npz", **self.optimizer.state_dict())
                (tmp / "scheduler.json").write_text(json.dumps(self.lr_scheduler.state_dict(), default=json_default))
                if self.scaler.is_enabled():
                    (tmp / SCALER_FILE).write_text(json.dumps(self.scaler.state_dict()))
                self.state.save_to_json(tmp / "trainer_state.json")
                write_manifest(tmp)
                shutil.rmtree(final, ignore_errors=True)
                tmp.rename(final)
            self._rotate_checkpoints()
        self.control = self.callback_handler.call("on_save", a, self.state, self.control)
        return final

    def _rotate_checkpoints(self) -> None:
        """Keep the newest save_total_limit checkpoints; the best one counts as the newest, so it is never deleted
        (with a limit of 1 and load_best_model_at_end, the best and the latest both stay, as in transformers)."""
        limit = self.args.save_total_limit
        if limit is None:
            return
        checkpoints = list_checkpoints(self.output_dir)
        best = Path(self.state.best_model_checkpoint) if self.state.best_model_checkpoint else None
        if best in checkpoints:
            latest = checkpoints[-1]
            checkpoints.remove(best)
            checkpoints.append(best)
            if limit == 1 and self.args.load_best_model_at_end and best != latest:
                limit = 2
        for old in checkpoints[:-limit]:
            shutil.rmtree(old, ignore_errors=True)

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
            load_weights(self.model, directory)
            with np.load(directory / "optimizer.npz") as saved:
                self.optimizer.load_state_dict(dict(saved))
            self.lr_scheduler.load_state_dict(json.loads((directory / "scheduler.json").read_text()))
            if self.scaler.is_enabled():
                self.scaler.load_state_dict(json.loads((directory / SCALER_FILE).read_text()))
            if saved_state.rng_state is None:
                raise KeyError("rng_state")
            seeding.numpy_rng().bit_generator.state = saved_state.rng_state
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:
            raise CheckpointError(f"cannot resume from {directory}: {type(e).__name__}: {e}. The checkpoint is "
                                  "incomplete or from another version: resume from an earlier checkpoint-N") from e
        saved_state.max_steps, saved_state.num_train_epochs = self.state.max_steps, self.state.num_train_epochs
        saved_state.world_size, saved_state.is_world_process_zero = self.comm.size, self.is_world_process_zero()
        self.state = saved_state


def list_checkpoints(output_dir: Path) -> list[Path]:
    """checkpoint-N folders of the output directory, oldest first."""
    found = [p for p in output_dir.glob(f"{PREFIX}-*") if p.is_dir() and re.fullmatch(rf"{PREFIX}-\d+", p.name)]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def checkpoint_to_resume(output_dir: Path, resume: str | bool | None) -> Path | None:
    """resume_from_checkpoint as a folder: True for the latest checkpoint-N of output_dir, a path as given."""
    if resume is None or resume is False:
        return None
    if resume is True:
        checkpoints = list_checkpoints(output_dir)
        if not checkpoints:
            raise CheckpointError(f"cannot resume: {output_dir} has no checkpoint-N folder (was the run "
                                  "started with this output directory?)")
        return checkpoints[-1]
    path = Path(resume)
    if not (path / "trainer_state.json").is_file():
        raise CheckpointError(f"cannot resume from {path}: it has no trainer_state.json (pass a checkpoint-N "
                              "folder, or True for the latest one in output_dir)")
    return path


def load_weights(model, directory: Path) -> None:
    model.load_state_dict(load_safetensors(directory / "model.safetensors"), strict=False)
    if hasattr(model, "tie_weights"):
        model.tie_weights()
