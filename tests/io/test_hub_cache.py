"""Hub ids resolved from a Hugging Face cache already on disk (never downloaded), in huggingface_hub's layout:
<root>/models--{org}--{name}/refs/{revision} -> snapshots/{hash}/ whose files are symlinks into blobs/."""
import hashlib
import os
import shutil

import numpy as np
import pytest

import minitransfer as mt
from minitransfer.errors import CheckpointError
from minitransfer.io.checkpoint import load_config
from minitransfer.io.hub import hf_cache_dir, resolve_model_path
from minitransfer.models import AutoConfig, AutoModel, BertModel
from minitransfer.models.config import ModelConfig
from minitransfer.tokenization import AutoTokenizer

TINY = dict(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=24,
            max_position_embeddings=32)
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world"] + [f"w{i}" for i in range(33)]
COMMIT_A, COMMIT_B = "a" * 40, "b" * 40


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Two tiny random BERT checkpoints with a WordPiece vocab, as a Hub repo holds them: {"a": dir, "b": dir}."""
    out = {}
    for seed, name in enumerate("ab"):
        mt.manual_seed(seed)
        folder = tmp_path_factory.mktemp(f"source-{name}")
        BertModel(ModelConfig("bert", **TINY)).save_pretrained(folder)
        (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
        out[name] = folder
    return out


@pytest.fixture
def env(tmp_path, monkeypatch):
    """No Hugging Face variables, a fresh HOME and minitransfer cache, and an empty working directory."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MINITRANSFER_HOME", str(tmp_path / "minitransfer"))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return tmp_path


def add_to_hf_cache(root, repo_id, source, commit, refs=("main",)):
    """Lay `source`'s files out as huggingface_hub caches them; returns the snapshot folder."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for file in sorted(source.iterdir()):
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    for ref in refs:
        (repo / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return snapshot


def assert_same_weights(model, source):
    expected = BertModel.from_pretrained(source).state_dict()
    got = model.state_dict()
    assert sorted(got) == sorted(expected)
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


def test_hub_id_from_the_default_cache(env, sources):
    root = env / "home" / ".cache" / "huggingface" / "hub"
    assert hf_cache_dir() == (root, "the default location")
    snapshot = add_to_hf_cache(root, "bert-base-uncased", sources["a"], COMMIT_A)
    assert (snapshot / "model.safetensors").is_symlink()
    assert resolve_model_path("bert-base-uncased") == snapshot
    model = AutoModel.from_pretrained("bert-base-uncased")
    assert_same_weights(model, sources["a"])
    assert AutoConfig.from_pretrained("bert-base-uncased").hidden_size == TINY["hidden_size"]
    assert AutoTokenizer.from_pretrained("bert-base-uncased").encode("hello world") == [2, 5, 6, 3]


@pytest.mark.parametrize("chooser", ["HF_HOME", "HF_HUB_CACHE", "cache_dir"])
def test_cache_root_order(env, sources, monkeypatch, chooser):
    """cache_dir= beats $HF_HUB_CACHE, which beats $HF_HOME/hub, which beats ~/.cache/huggingface/hub."""
    roots = {"default": env / "home" / ".cache" / "huggingface" / "hub", "HF_HOME": env / "hf-home" / "hub",
             "HF_HUB_CACHE": env / "hub-cache", "cache_dir": env / "explicit"}
    snapshots = {key: add_to_hf_cache(root, "org/tiny-bert", sources["a"], c * 40)
                 for (key, root), c in zip(roots.items(), "0123")}
    order = ["HF_HOME", "HF_HUB_CACHE", "cache_dir"]
    active = order[: order.index(chooser) + 1]  # the chooser and every lower-priority source are all set
    if "HF_HOME" in active:
        monkeypatch.setenv("HF_HOME", str(env / "hf-home"))
    if "HF_HUB_CACHE" in active:
        monkeypatch.setenv("HF_HUB_CACHE", str(roots["HF_HUB_CACHE"]))
    cache_dir = roots["cache_dir"] if chooser == "cache_dir" else None
    assert resolve_model_path("org/tiny-bert", cache_dir=cache_dir) == snapshots[chooser]
    model = AutoModel.from_pretrained("org/tiny-bert", cache_dir=cache_dir)
    assert_same_weights(model, sources["a"])
    tok = AutoTokenizer.from_pretrained("org/tiny-bert", cache_dir=cache_dir)
    assert tok.name_or_path == "org/tiny-bert" and tok.vocab_size == len(VOCAB)


def test_revision_by_ref_name_and_by_hash(env, sources):
    root = env / "hub"
    snap_a = add_to_hf_cache(root, "org/tiny-bert", sources["a"], COMMIT_A, refs=("main",))
    snap_b = add_to_hf_cache(root, "org/tiny-bert", sources["b"], COMMIT_B, refs=("v1", "refs/pr/1"))
    assert resolve_model_path("org/tiny-bert", cache_dir=root) == snap_a
    assert resolve_model_path("org/tiny-bert", cache_dir=root, revision="main") == snap_a
    assert resolve_model_path("org/tiny-bert", cache_dir=root, revision="v1") == snap_b
    assert resolve_model_path("org/tiny-bert", cache_dir=root, revision="refs/pr/1") == snap_b
    assert resolve_model_path("org/tiny-bert", cache_dir=root, revision=COMMIT_B) == snap_b
    assert_same_weights(AutoModel.from_pretrained("org/tiny-bert", cache_dir=root, revision="v1"), sources["b"])
    assert_same_weights(BertModel.from_pretrained("org/tiny-bert", cache_dir=root, revision=COMMIT_A), sources["a"])
    AutoTokenizer.from_pretrained("org/tiny-bert", cache_dir=root, revision=COMMIT_B)
    with pytest.raises(CheckpointError, match="no such ref") as err:
        resolve_model_path("org/tiny-bert", cache_dir=root, revision="v2")
    message = str(err.value)
    assert "refs there: main, refs/pr/1, v1" in message and f"snapshots there: {COMMIT_A}, {COMMIT_B}" in message
    with pytest.raises(CheckpointError, match="not a ref name"):
        resolve_model_path("org/tiny-bert", cache_dir=root, revision="../../elsewhere")


def test_not_found_names_every_path_searched(env, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(env / "hf-home"))
    repo = env / "hf-home" / "hub" / "models--org--missing"
    loaders = (resolve_model_path, AutoModel.from_pretrained, AutoTokenizer.from_pretrained, AutoConfig.from_pretrained)
    for load in loaders:
        with pytest.raises(CheckpointError, match="cannot find model 'org/missing'") as err:
            load("org/missing")
        message = str(err.value)
        assert "org/missing: no such local folder" in message
        assert f"{repo}: not there" in message and "$HF_HOME/hub" in message
        assert "never downloads" in message and "pass a local folder" in message
    # Not a hub id: a path that is not there (nothing else to look at).
    with pytest.raises(CheckpointError, match=r"no model directory at .*nowhere.*nor a hub id.*never downloads"):
        resolve_model_path(env / "nowhere")
    # The repo is there but not the revision: the ref and the snapshot paths are both named.
    repo.mkdir(parents=True)
    with pytest.raises(CheckpointError) as err:
        resolve_model_path("org/missing", revision="v3")
    assert str(repo / "refs" / "v3") in str(err.value) and str(repo / "snapshots" / "v3") in str(err.value)
    # A ref pointing at a snapshot that is gone.
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT_A)
    with pytest.raises(CheckpointError, match=rf"points at '{COMMIT_A}', but .* is not there"):
        resolve_model_path("org/missing")


def test_local_folder_wins_over_the_cache(env, sources, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(env / "hub"))
    add_to_hf_cache(env / "hub", "org/tiny-bert", sources["a"], COMMIT_A)
    shutil.copytree(sources["b"], env / "cwd" / "org" / "tiny-bert")
    assert resolve_model_path("org/tiny-bert").resolve() == (env / "cwd" / "org" / "tiny-bert").resolve()
    assert_same_weights(AutoModel.from_pretrained("org/tiny-bert", revision="main"), sources["b"])


def fake_fetched_minilm(env):
    folder = env / "minitransfer" / "minilm"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"")
    return folder


def test_minilm_hub_id_and_minitransfer_cache(env, sources, monkeypatch):
    name = "sentence-transformers/all-MiniLM-L6-v2"
    monkeypatch.setenv("HF_HUB_CACHE", str(env / "hub"))
    with pytest.raises(CheckpointError, match=r"not in the local cache.*minitransfer fetch minilm") as err:
        resolve_model_path(name)
    assert str(env / "hub" / "models--sentence-transformers--all-MiniLM-L6-v2") in str(err.value)
    snapshot = add_to_hf_cache(env / "hub", name, sources["a"], COMMIT_A, refs=("main", "v1"))
    assert resolve_model_path(name) == snapshot  # not fetched by minitransfer: the Hugging Face cache has it
    fetched = fake_fetched_minilm(env)
    assert resolve_model_path(name) == fetched  # minitransfer's own copy first, as before
    assert resolve_model_path("minilm") == fetched
    assert resolve_model_path(name, cache_dir=env / "hub") == snapshot  # an explicit cache is looked in first
    assert resolve_model_path(name, revision="v1") == snapshot  # a revision only a Hugging Face cache has
    assert resolve_model_path(name, cache_dir=env / "elsewhere") == fetched  # that cache lacks it: own copy
    with pytest.raises(CheckpointError, match="at revision 'v2'") as err:
        resolve_model_path(name, revision="v2")
    assert "minitransfer's copy, which has no revision 'v2'" in str(err.value)


def test_download_keywords(env, sources):
    root = env / "hub"
    add_to_hf_cache(root, "org/tiny-bert", sources["a"], COMMIT_A)
    harmless = dict(cache_dir=root, local_files_only=False, token="hf_x", proxies={"https": "p:1"},
                    trust_remote_code=True, resume_download=False, force_download=False)
    assert_same_weights(AutoModel.from_pretrained("org/tiny-bert", **harmless), sources["a"])
    AutoTokenizer.from_pretrained("org/tiny-bert", **harmless)
    AutoConfig.from_pretrained("org/tiny-bert", **harmless)
    for load in (AutoModel.from_pretrained, AutoTokenizer.from_pretrained, AutoConfig.from_pretrained):
        with pytest.raises(CheckpointError, match="force_download=True: minitransfer never downloads"):
            load("org/tiny-bert", cache_dir=root, force_download=True)
        with pytest.raises(CheckpointError, match="local_files_only='yes'"):
            load("org/tiny-bert", cache_dir=root, local_files_only="yes")


def test_missing_blob_is_named(env, sources):
    snapshot = add_to_hf_cache(env / "hub", "org/tiny-bert", sources["a"], COMMIT_A)
    os.unlink(os.path.realpath(snapshot / "config.json"))
    with pytest.raises(CheckpointError, match=r"config\.json is a link to .*blobs.*, which is missing"):
        load_config(resolve_model_path("org/tiny-bert", cache_dir=env / "hub"))
