"""What keeps a run's work safe: a lock on its output folder, checkpoint manifests, what must not change
between a run and its resume, and a Ctrl-C held until a step or a checkpoint is whole.

    lock = OutputDirLock(out).acquire()   # OUT/.lock holds our pid; another live holder is refused
    write_manifest(folder); verify_manifest(folder)   # names, sizes and sha256 of every file
    resume_differences(saved_args, args, saved_fingerprint, fingerprint)   # what changed, by name
    with interrupts_deferred(): ...       # a Ctrl-C inside is raised at the end of the block
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import threading
from pathlib import Path

import numpy as np

from minitransfer.errors import CheckpointError, TrainingError

MANIFEST = "manifest.json"
# The arguments that define the run's schedule and batches: a resume with any of them changed is not the same run.
# The batch counts as its global size (per rank x ranks x accumulation): a resume on another number of ranks with
# the same global batch walks the same batches.
RESUME_FIELDS = ("learning_rate", "global_train_batch_size", "num_train_epochs",
                 "max_steps", "seed", "warmup_steps", "warmup_ratio", "weight_decay", "lr_scheduler_type",
                 "group_by_length", "train_sampling_strategy", "max_tokens_per_batch", "adam_beta1", "adam_beta2",
                 "adam_epsilon", "max_grad_norm", "fp16")


class OutputDirLock:
    """OUT/.lock while a run writes OUT: a second run is refused naming the holder's pid; a lock left by a dead
    process is taken over."""

    def __init__(self, directory: str | Path):
        self.path = Path(directory) / ".lock"
        self.held = False

    def acquire(self) -> OutputDirLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = _read_pid(self.path)
                if holder is not None and holder != os.getpid() and _alive(holder):
                    raise TrainingError(f"{self.path.parent} is in use by another run (pid {holder}, lock "
                                        f"{self.path}): wait for it to finish, or give this run another --out"
                                        ) from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            self.held = True
            return self

    def release(self) -> None:
        if self.held and _read_pid(self.path) == os.getpid():
            self.path.unlink(missing_ok=True)
        self.held = False


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip() or "x")
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(folder: Path) -> None:
    """folder/manifest.json: every file's size and sha256, written last (a checkpoint without it is incomplete)."""
    files = {p.relative_to(folder).as_posix(): {"bytes": p.stat().st_size, "sha256": _sha256(p)}
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST}
    (folder / MANIFEST).write_text(json.dumps({"files": files}, indent=1) + "\n")


def verify_manifest(folder: Path) -> None:
    """Raise CheckpointError naming the first file that is missing, truncated or changed since it was written."""
    path = folder / MANIFEST
    try:
        files = json.loads(path.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"cannot resume from {folder}: its {MANIFEST} is missing or unreadable ({e}); the "
                              "checkpoint was not written to the end: resume from an earlier checkpoint-N") from e
    for name, entry in files.items():
        file = folder / name
        if not file.is_file():
            raise CheckpointError(f"cannot resume from {folder}: {name} is missing (the manifest lists it)")
        if file.stat().st_size != entry["bytes"] or _sha256(file) != entry["sha256"]:
            raise CheckpointError(f"cannot resume from {folder}: {name} is damaged ({file.stat().st_size:,} bytes, "
                                  f"the manifest says {entry['bytes']:,} with another sha256): resume from an earlier "
                                  "checkpoint-N, or start the run again")


def dataset_fingerprint(dataset) -> str:
    """sha256 over the training set's token ids and labels (arrays: their bytes; rows: their id lists)."""
    digest = hashlib.sha256(str(len(dataset)).encode())
    if hasattr(dataset, "arrays"):
        for key in sorted(dataset.arrays):
            array = np.ascontiguousarray(dataset.arrays[key])
            digest.update(key.encode() + str(array.shape).encode() + array.tobytes())
        return digest.hexdigest()
    for i in range(len(dataset)):
        row = dataset[i]
        for key in sorted(k for k in row if k in ("input_ids", "token_type_ids", "labels", "label")):
            digest.update(key.encode() + np.asarray(row[key]).astype(np.int64).tobytes())
    return digest.hexdigest()


def resume_differences(saved: dict, current: dict, saved_fingerprint: str | None, fingerprint: str) -> list[str]:
    """What differs between the run a checkpoint belongs to and this one: '<name>: <saved> -> <now>' lines."""
    changes = [f"{name}: {saved[name]!r} -> {current[name]!r}" for name in RESUME_FIELDS
               if name in saved and saved[name] != current.get(name)]
    if saved_fingerprint is not None and saved_fingerprint != fingerprint:
        changes.append("training data: another set of examples (its fingerprint differs)")
    return changes


@contextlib.contextmanager
def interrupts_deferred():
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
