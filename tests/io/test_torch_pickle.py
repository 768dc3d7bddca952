"""minitransfer.io.torch_pickle: torch.save files read without torch, and without running pickle code."""
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from minitransfer.errors import CheckpointError
from minitransfer.io.torch_pickle import load_torch_bin

FORMATS = [pytest.param(False, id="zip"), pytest.param(True, id="legacy")]


def save(torch, state, path, legacy):
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    return path


def reference(tensor) -> np.ndarray:
    """torch's own values, as load_torch_bin promises them (bf16 widened to float32)."""
    import torch

    tensor = tensor.detach()
    return tensor.float().numpy() if tensor.dtype == torch.bfloat16 else tensor.numpy()


def assert_same(loaded: dict, state: dict):
    assert list(loaded) == list(state)
    for name, tensor in state.items():
        expected = reference(tensor)
        got = loaded[name]
        assert got.dtype == expected.dtype, name
        assert got.shape == expected.shape, name
        np.testing.assert_array_equal(got, expected, err_msg=name)
        assert got.flags.c_contiguous and got.flags.writeable, name


@pytest.mark.parametrize("legacy", FORMATS)
def test_dtypes_views_and_parameters(tmp_path, legacy):
    torch = pytest.importorskip("torch")
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(6, 4, generator=gen)
    state = {
        "float32": torch.randn(3, 5, generator=gen),
        "float16": torch.randn(2, 3, generator=gen).half(),
        "bfloat16": torch.randn(7, generator=gen).bfloat16(),
        "int64": torch.arange(-3, 9).reshape(3, 4),
        "bool": torch.tensor([True, False, True]),
        "transposed": base.t(),  # non-contiguous view: strides (1, 4)
        "strided_slice": torch.arange(30.0)[3:27:4],  # storage_offset 3, stride 4
        "scalar": torch.tensor(2.5),
        "empty": torch.empty(0, 4),
        "parameter": torch.nn.Parameter(torch.randn(4, generator=gen)),
    }
    loaded = load_torch_bin(save(torch, state, tmp_path / "pytorch_model.bin", legacy))
    assert_same(loaded, state)
    assert loaded["bfloat16"].dtype == np.float32 and loaded["float16"].dtype == np.float16


@pytest.mark.parametrize("legacy", FORMATS)
def test_tied_bert_weights_match_torch_exactly(tmp_path, legacy):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=37, max_position_embeddings=64,
    )
    state = transformers.BertForMaskedLM(config).state_dict()
    decoder, embeddings = "cls.predictions.decoder.weight", "bert.embeddings.word_embeddings.weight"
    assert state[decoder].data_ptr() == state[embeddings].data_ptr()  # the case under test: one storage

    loaded = load_torch_bin(save(torch, state, tmp_path / "pytorch_model.bin", legacy))
    assert_same(loaded, state)
    # Independent arrays: writing one tied weight must not change the other behind the caller's back.
    loaded[decoder][0, 0] += 1.0
    assert loaded[decoder][0, 0] != loaded[embeddings][0, 0]


def test_tensors_sharing_one_storage_at_different_offsets(tmp_path):
    torch = pytest.importorskip("torch")
    flat = torch.arange(24.0)
    state = {"all": flat, "head": flat[:6].view(2, 3), "tail_t": flat[12:].view(3, 4).t()}
    assert_same(load_torch_bin(save(torch, state, tmp_path / "w.bin", False)), state)


def test_uint16_goes_through_untyped_storage(tmp_path):
    torch = pytest.importorskip("torch")
    state = {"u16": torch.tensor([1, 2, 60000]).to(torch.uint16)}  # pickled with _rebuild_tensor_v3
    loaded = load_torch_bin(save(torch, state, tmp_path / "w.bin", False))
    np.testing.assert_array_equal(loaded["u16"], np.array([1, 2, 60000], dtype=np.uint16))


def test_zip_archive_folder_name_does_not_matter(tmp_path):
    torch = pytest.importorskip("torch")
    state = {"w": torch.randn(3, 2)}
    # torch names the folder inside the zip after the file; renaming the file must not matter.
    renamed = save(torch, state, tmp_path / "archive_name_xyz.bin", False).rename(tmp_path / "pytorch_model.bin")
    with zipfile.ZipFile(renamed) as zf:
        assert zf.namelist()[0].startswith("archive_name_xyz/")
    assert_same(load_torch_bin(renamed), state)


class Pwned:
    """Unpickling this would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "pytorch_model.bin"
    path.write_bytes(pickle.dumps({"weight": Pwned(marker)}, protocol=2))
    with pytest.raises(CheckpointError, match=r"refusing to load .*pytorch_model\.bin: it references .*os\.system"):
        load_torch_bin(path)
    assert not marker.exists()


def test_malicious_pickle_inside_a_zip_checkpoint_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    marker = tmp_path / "pwned"
    path = tmp_path / "pytorch_model.bin"
    torch.save({"weight": torch.zeros(2), "evil": Pwned(marker)}, path)
    with pytest.raises(CheckpointError, match=r"os\.system"):
        load_torch_bin(path)
    assert not marker.exists()


def test_pickled_module_class_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "pytorch_model.bin"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(CheckpointError, match=r"torch\.nn\..*state_dict"):
        load_torch_bin(path)


@pytest.mark.parametrize("legacy", FORMATS)
@pytest.mark.parametrize("keep", [0.3, 0.9])
def test_truncated_file(tmp_path, legacy, keep):
    torch = pytest.importorskip("torch")
    path = save(torch, {"w": torch.randn(64, 64)}, tmp_path / "pytorch_model.bin", legacy)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin is (truncated|corrupt)"):
        load_torch_bin(path)


@pytest.mark.parametrize("content", [b"", b"hello, not a checkpoint", b"\x80\x02K\x05."])
def test_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "pytorch_model.bin"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin .*not a PyTorch checkpoint"):
        load_torch_bin(path)


def test_training_checkpoint_with_non_tensor_entries(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "pytorch_model.bin"
    torch.save({"model": {"w": torch.zeros(1)}, "epoch": 3}, path)
    with pytest.raises(CheckpointError, match=r"entry 'model' is a dict, not a tensor"):
        load_torch_bin(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"does not exist"):
        load_torch_bin(tmp_path / "pytorch_model.bin")


def test_loads_without_torch(tmp_path):
    torch = pytest.importorskip("torch")
    path = save(torch, {"w": torch.arange(6.0).reshape(2, 3)}, tmp_path / "pytorch_model.bin", False)
    # A fresh interpreter in which `import torch` fails: the loader must not need it.
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from minitransfer.io import load_torch_bin\n"
        f"print(load_torch_bin({str(path)!r})['w'].sum())\n"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "15.0"
