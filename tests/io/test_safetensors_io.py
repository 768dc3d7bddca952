"""minitransfer.io.safetensors_io: our reader and writer against the safetensors library and torch."""
import json
import struct

import numpy as np
import pytest

from minitransfer.errors import CheckpointError
from minitransfer.io.safetensors_io import load_safetensors, save_safetensors


def sample_state() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((5, 3)).astype(np.float32)
    return {
        "weight": weight,
        "weight_t": weight.T,  # non-contiguous
        "tied": weight,  # the same buffer under a second name
        "row": weight[1],  # a view into it
        "half": rng.standard_normal(4).astype(np.float16),
        "ids": np.arange(6, dtype=np.int64).reshape(2, 3),
        "mask": np.array([True, False]),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }


def test_round_trip(tmp_path):
    state = sample_state()
    path = tmp_path / "model.safetensors"
    save_safetensors(state, path, metadata={"step": "7"})
    loaded = load_safetensors(path)
    assert sorted(loaded) == sorted(state)
    for name, array in state.items():
        assert loaded[name].dtype == array.dtype and loaded[name].shape == array.shape, name
        np.testing.assert_array_equal(loaded[name], array, err_msg=name)
        assert loaded[name].flags.writeable
    header_len = struct.unpack("<Q", path.read_bytes()[:8])[0]
    metadata = json.loads(path.read_bytes()[8: 8 + header_len])["__metadata__"]
    assert metadata == {"format": "pt", "step": "7"}
    assert not (tmp_path / "model.safetensors.tmp").exists()


def test_saved_file_loads_in_safetensors_torch(tmp_path):
    pytest.importorskip("torch")
    from safetensors.torch import load_file

    state = sample_state()
    save_safetensors(state, tmp_path / "model.safetensors")
    loaded = load_file(tmp_path / "model.safetensors")
    assert sorted(loaded) == sorted(state)
    for name, array in state.items():
        np.testing.assert_array_equal(loaded[name].numpy(), array, err_msg=name)


def test_reads_bfloat16_as_float32(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    values = torch.randn(4, 6, generator=torch.Generator().manual_seed(0)).bfloat16()
    save_file({"w": values, "f16": values.half()}, tmp_path / "model.safetensors")
    loaded = load_safetensors(tmp_path / "model.safetensors")
    assert loaded["w"].dtype == np.float32
    np.testing.assert_array_equal(loaded["w"], values.float().numpy())  # exact: bf16 -> fp32 is lossless
    assert loaded["f16"].dtype == np.float16


def test_truncated_file(tmp_path):
    path = tmp_path / "model.safetensors"
    save_safetensors({"w": np.ones((8, 8), dtype=np.float32)}, path)
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    with pytest.raises(CheckpointError, match=r"model\.safetensors is truncated \(header says 256 bytes of tensor "
                                              r"data, file has 246\)"):
        load_safetensors(path)


@pytest.mark.parametrize(
    "content",
    [b"", b"\x05\x00", struct.pack("<Q", 10**6) + b"{}", struct.pack("<Q", 4) + b"{{{{",
     struct.pack("<Q", 2) + b"[]"],
    ids=["empty", "short", "header-past-end", "bad-json", "not-an-object"],
)
def test_not_a_safetensors_file(tmp_path, content):
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"model\.safetensors"):
        load_safetensors(path)


def test_header_with_inconsistent_offsets(tmp_path):
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 8]}}).encode()
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(16))
    with pytest.raises(CheckpointError, match=r"tensor 'w' \(F32, shape \[2, 2\]\) needs 16 bytes"):
        load_safetensors(path)


def test_unsupported_dtype_on_save(tmp_path):
    with pytest.raises(CheckpointError, match=r"tensor 'names' has dtype <U1"):
        save_safetensors({"names": np.array(["a"])}, tmp_path / "model.safetensors")


def test_save_into_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match=r"does not exist"):
        save_safetensors({"w": np.zeros(1, np.float32)}, tmp_path / "nope" / "model.safetensors")
