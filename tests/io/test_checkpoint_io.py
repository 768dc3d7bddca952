"""minitransfer.io.checkpoint: the model-directory boundary (config.json + weights), against transformers."""
import json

import numpy as np
import pytest

from minitransfer.errors import CheckpointError
from minitransfer.io import (
    find_weights_file,
    load_config,
    load_safetensors,
    load_state_dict,
    parse_size,
    save_checkpoint,
    save_safetensors,
)

TINY_BERT = {
    "vocab_size": 99,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 37,
    "max_position_embeddings": 64,
}


def write_config(folder, config=None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config or {"model_type": "bert"}))
    return folder


# --- load_config ---------------------------------------------------------------------------------------

def test_load_config(tmp_path):
    write_config(tmp_path, {"model_type": "bert", "hidden_size": 32})
    assert load_config(tmp_path) == {"model_type": "bert", "hidden_size": 32}


def test_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match=r"model directory .*nowhere does not exist"):
        load_config(tmp_path / "nowhere")


def test_not_a_directory(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"model\.safetensors is a file, not a model directory"):
        load_config(tmp_path / "model.safetensors")


def test_missing_config_lists_directory(tmp_path):
    (tmp_path / "vocab.txt").write_text("[PAD]\n")
    with pytest.raises(CheckpointError, match=r"has no config\.json \(it contains: vocab\.txt\)"):
        load_config(tmp_path)


@pytest.mark.parametrize("text", ['{"model_type": "bert",}', "", "[1, 2]"])
def test_invalid_config_json(tmp_path, text):
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(CheckpointError, match=r"config\.json (is not valid JSON \(line \d+, column \d+|holds a JSON)"):
        load_config(tmp_path)


# --- find_weights_file -------------------------------------------------------------------------------

def test_no_weights_file_lists_directory(tmp_path):
    write_config(tmp_path)
    (tmp_path / "tf_model.h5").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"has no weights file \(it contains: config\.json, tf_model\.h5\); "
                                              r"expected one of model\.safetensors"):
        find_weights_file(tmp_path)


def test_weights_file_preference(tmp_path):
    write_config(tmp_path)
    for name in ["pytorch_model.bin.index.json", "pytorch_model.bin", "model.safetensors.index.json",
                 "model.safetensors"]:
        (tmp_path / name).write_bytes(b"")
        assert find_weights_file(tmp_path) == tmp_path / name


# --- load_state_dict -----------------------------------------------------------------------------------

def test_load_state_dict_upcasts_floats_and_keeps_ints(tmp_path):
    write_config(tmp_path)
    save_safetensors(
        {"w16": np.array([1.5, -2.0], np.float16), "w64": np.array([0.25]), "ids": np.arange(3)},
        tmp_path / "model.safetensors",
    )
    state = load_state_dict(tmp_path)
    assert state["w16"].dtype == np.float32 and state["w64"].dtype == np.float32
    np.testing.assert_array_equal(state["w16"], [1.5, -2.0])
    assert state["ids"].dtype == np.int64


def test_load_state_dict_from_pytorch_bin_with_bf16(tmp_path):
    torch = pytest.importorskip("torch")
    write_config(tmp_path)
    values = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    torch.save({"bf": values.bfloat16(), "h": values.half(), "ids": torch.arange(4)}, tmp_path / "pytorch_model.bin")
    state = load_state_dict(tmp_path)
    np.testing.assert_array_equal(state["bf"], values.bfloat16().float().numpy())
    np.testing.assert_array_equal(state["h"], values.half().float().numpy())
    assert state["bf"].dtype == state["h"].dtype == np.float32 and state["ids"].dtype == np.int64


def test_sharded_pytorch_bin(tmp_path):
    torch = pytest.importorskip("torch")
    write_config(tmp_path)
    shards = {"pytorch_model-00001-of-00002.bin": {"a": torch.ones(2)},
              "pytorch_model-00002-of-00002.bin": {"b": torch.zeros(3, 1), "c": torch.arange(2)}}
    for name, part in shards.items():
        torch.save(part, tmp_path / name)
    weight_map = {key: name for name, part in shards.items() for key in part}
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    state = load_state_dict(tmp_path)
    assert sorted(state) == ["a", "b", "c"] and state["b"].shape == (3, 1)


def test_sharded_safetensors_from_transformers(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = transformers.BertModel(transformers.BertConfig(**TINY_BERT))
    model.save_pretrained(tmp_path, max_shard_size="20KB")
    assert find_weights_file(tmp_path).name == "model.safetensors.index.json"
    state = load_state_dict(tmp_path)
    expected = model.state_dict()
    assert sorted(state) == sorted(expected)
    for name, tensor in expected.items():
        np.testing.assert_array_equal(state[name], tensor.numpy(), err_msg=name)


def test_shard_index_naming_a_missing_shard(tmp_path):
    write_config(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "gone.safetensors"}}))
    with pytest.raises(CheckpointError, match=r"lists shard gone\.safetensors, which is missing"):
        load_state_dict(tmp_path)


def test_shard_index_cannot_point_outside_the_directory(tmp_path):
    write_config(tmp_path / "model")
    save_safetensors({"a": np.zeros(1, np.float32)}, tmp_path / "outside.safetensors")
    (tmp_path / "model" / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "../outside.safetensors"}})
    )
    with pytest.raises(CheckpointError, match=r"not a plain file name"):
        load_state_dict(tmp_path / "model")


# --- save_checkpoint -----------------------------------------------------------------------------------

def test_save_checkpoint_round_trip(tmp_path):
    state = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "ids": np.arange(3)}
    save_checkpoint(tmp_path / "out" / "model", state, {"model_type": "bert", "hidden_size": 3})
    folder = tmp_path / "out" / "model"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    assert load_config(folder) == {"model_type": "bert", "hidden_size": 3}
    loaded = load_state_dict(folder)
    np.testing.assert_array_equal(loaded["w"], state["w"])
    np.testing.assert_array_equal(loaded["ids"], state["ids"])


def test_save_checkpoint_errors(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(CheckpointError, match=r"it is a file"):
        save_checkpoint(tmp_path / "file", {}, {})
    with pytest.raises(CheckpointError, match=r"not JSON-serialisable"):
        save_checkpoint(tmp_path / "dir", {}, {"bad": object()})


def test_saved_checkpoint_loads_in_transformers(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    source = transformers.BertModel(transformers.BertConfig(**TINY_BERT))
    state = {name: tensor.numpy() for name, tensor in source.state_dict().items()}
    save_checkpoint(tmp_path, state, source.config.to_dict())

    loaded, info = transformers.BertModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    for name, tensor in loaded.state_dict().items():
        np.testing.assert_array_equal(tensor.numpy(), state[name], err_msg=name)


# --- sharded save -------------------------------------------------------------------------------------

@pytest.mark.parametrize("size, expected", [
    (1234, 1234), ("200MB", 200 * 10**6), ("2GB", 2 * 10**9), ("500KB", 500_000), ("5gb", 5 * 10**9),
    ("1.5GB", 1_500_000_000), ("1GiB", 2**30), ("64MiB", 64 * 2**20), (" 20 KB ", 20_000), ("10B", 10),
])
def test_parse_size(size, expected):
    assert parse_size(size) == expected


@pytest.mark.parametrize("size", ["5XB", "GB", "", "-1MB", 0, -5, 2.5, True, None, "5 GB extra"])
def test_parse_size_rejects(size):
    with pytest.raises(CheckpointError, match=r"max_shard_size=.* is not a size.*'200MB'"):
        parse_size(size)


def shard_test_state():
    rng = np.random.default_rng(0)
    # 4000, 400, 4000, 12000 (bigger than the limit below: a shard of its own), 400 bytes, and an int buffer (40).
    return {"a": rng.standard_normal(1000).astype(np.float32), "b": rng.standard_normal((10, 10)).astype(np.float32),
            "c": rng.standard_normal(1000).astype(np.float32), "big": rng.standard_normal(3000).astype(np.float32),
            "d": rng.standard_normal(100).astype(np.float32), "ids": np.arange(5)}


def test_sharded_save_round_trip(tmp_path):
    state = shard_test_state()
    save_checkpoint(tmp_path, state, {"model_type": "bert"}, max_shard_size="5KB")
    shards = [f"model-0000{i}-of-00003.safetensors" for i in range(1, 4)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", *shards, "model.safetensors.index.json"]
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert index["metadata"] == {"total_size": sum(a.nbytes for a in state.values())}
    # In order, a new shard when the next tensor would pass 5000 bytes; the 12000-byte tensor goes alone into
    # the next shard while the open one ("c", ...) keeps filling: huggingface_hub's split, exactly.
    assert index["weight_map"] == {"a": shards[0], "b": shards[0], "big": shards[1], "c": shards[2],
                                   "d": shards[2], "ids": shards[2]}
    assert sorted(load_safetensors(tmp_path / shards[2])) == ["c", "d", "ids"]
    assert find_weights_file(tmp_path).name == "model.safetensors.index.json"
    loaded = load_state_dict(tmp_path)
    assert sorted(loaded) == sorted(state)
    for name, array in state.items():
        np.testing.assert_array_equal(loaded[name], array, err_msg=name)
        assert loaded[name].dtype == array.dtype


@pytest.mark.parametrize("max_shard_size", [500, 5000, 9000, 20_000, 10**6])
def test_shards_split_as_huggingface_hub_splits(tmp_path, max_shard_size):
    hub = pytest.importorskip("huggingface_hub")
    state = shard_test_state()
    theirs = hub.split_state_dict_into_shards_factory(
        state, get_storage_size=lambda a: a.nbytes, filename_pattern="model{suffix}.safetensors",
        max_shard_size=max_shard_size,
    )
    save_checkpoint(tmp_path, state, {"model_type": "bert"}, max_shard_size=max_shard_size)
    if theirs.is_sharded:
        index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
        assert index["weight_map"] == theirs.tensor_to_filename
    else:
        assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]


def test_resaving_removes_the_other_layout(tmp_path):
    state = shard_test_state()
    (tmp_path / "notes.txt").write_text("kept")
    save_checkpoint(tmp_path, state, {"model_type": "bert"})  # 5GB default: one file
    assert (tmp_path / "model.safetensors").is_file() and not (tmp_path / "model.safetensors.index.json").exists()
    save_checkpoint(tmp_path, state, {"model_type": "bert"}, max_shard_size=5000)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "model.safetensors" not in names and len([n for n in names if n.startswith("model-")]) == 3
    save_checkpoint(tmp_path, state, {"model_type": "bert"}, max_shard_size=20_000)  # 2 shards now
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
        "model.safetensors.index.json", "notes.txt"]
    save_checkpoint(tmp_path, state, {"model_type": "bert"}, max_shard_size="1MB")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors", "notes.txt"]
    np.testing.assert_array_equal(load_state_dict(tmp_path)["big"], state["big"])


def test_sharded_save_pretrained_loads_in_transformers(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import minitransfer as mt
    from minitransfer.models import AutoModel

    torch.manual_seed(0)
    source = transformers.BertModel(transformers.BertConfig(**TINY_BERT)).eval()
    source.save_pretrained(tmp_path / "source")
    ours = AutoModel.from_pretrained(tmp_path / "source")
    ours.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    index = json.loads((tmp_path / "sharded" / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 3
    assert not (tmp_path / "sharded" / "model.safetensors").exists()

    reloaded = AutoModel.from_pretrained(tmp_path / "sharded")
    for name, array in ours.state_dict().items():
        np.testing.assert_array_equal(reloaded.state_dict()[name], array, err_msg=name)
    theirs, info = transformers.AutoModel.from_pretrained(tmp_path / "sharded", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    ids = np.random.default_rng(0).integers(0, TINY_BERT["vocab_size"], (2, 9))
    with torch.no_grad():
        expected = theirs.eval()(input_ids=torch.tensor(ids)).last_hidden_state.numpy()
        original = source(input_ids=torch.tensor(ids)).last_hidden_state.numpy()
    with mt.no_grad():
        got = reloaded(input_ids=ids, attention_mask=np.ones_like(ids)).last_hidden_state.numpy()
    np.testing.assert_array_equal(expected, original)  # transformers read our shards back bit for bit
    np.testing.assert_allclose(got, expected, atol=1e-4)  # float32 parity (see tests/models/test_parity.py)


def test_save_pretrained_rejects_pickles_and_bad_sizes(tmp_path):
    from minitransfer.models import BertModel
    from minitransfer.models.config import ModelConfig

    model = BertModel(ModelConfig("bert", **TINY_BERT))
    with pytest.raises(CheckpointError, match="safetensors only"):
        model.save_pretrained(tmp_path, safe_serialization=False)
    with pytest.raises(CheckpointError, match="is not a size"):
        model.save_pretrained(tmp_path, max_shard_size="lots")
    assert list(tmp_path.iterdir()) == []
