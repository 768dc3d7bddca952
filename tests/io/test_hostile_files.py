"""Hostile weights files: refused with a CheckpointError naming the problem, before they cost memory.

Each file is crafted by hand (torch.save output with its pickle or sizes patched, pickles written with pickle's own
machinery, zips written byte by byte so their headers can lie) and loaded in a child process that reports its peak
RSS growth over a baseline taken after the imports: a 1 GiB zip bomb or a 1.5 GB declared storage must not cost
more than MAX_GROWTH_MB. The child caps its address space a few GiB above the baseline, so a regression fails the
test instead of exhausting the machine.
"""
import collections
import io
import json
import pickle
import pickletools
import re
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

import minitransfer
from minitransfer.errors import CheckpointError
from minitransfer.io import load_safetensors, load_state_dict
from minitransfer.io.torch_pickle import load_torch_bin

MAX_GROWTH_MB = 100  # peak RSS a hostile file may add over the child's baseline
GiB = 1 << 30

CHILD = r"""
import json, resource, sys

def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(field)

from minitransfer.errors import CheckpointError
from minitransfer.io import load_safetensors, load_torch_bin

baseline = status("VmHWM")
limit = status("VmSize") + 4 * 2**30  # a safety net only: RSS growth is what is asserted
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
path = sys.argv[1]
result, state = {"error": None}, None
try:
    state = (load_safetensors if path.endswith(".safetensors") else load_torch_bin)(path)
    result["loaded"] = {name: [list(a.shape), str(a.dtype), a.ravel()[:8].tolist()] for name, a in state.items()}
except CheckpointError as e:
    result["error"] = str(e)
state = None
result["growth_mb"] = (status("VmHWM") - baseline) / 2**20
print(json.dumps(result))
"""


def load_in_child(path: Path) -> dict:
    """Load ``path`` in a fresh interpreter: {"error": message or None, "loaded": ..., "growth_mb": peak growth}."""
    root = Path(minitransfer.__file__).resolve().parents[1]  # the package under test, wherever it lives
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, cwd=root,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
                          check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{path.name} ({path.stat().st_size:,} bytes): peak RSS +{result['growth_mb']:.1f} MB")  # shown with -s
    return result


def assert_refused(path: Path, pattern: str) -> dict:
    result = load_in_child(path)
    assert result["error"] is not None, f"loaded without error: {str(result.get('loaded'))[:300]}"
    assert str(path) in result["error"]
    assert re.search(pattern, result["error"]), result["error"]
    assert re.search(r"corrupt|truncated|not a", result["error"]), result["error"]
    assert re.search(r"download it again|re-save|save it again|pass a pytorch_model", result["error"]), result["error"]
    assert result["growth_mb"] < MAX_GROWTH_MB, f"peak RSS grew by {result['growth_mb']:.0f} MB"
    return result


# --- crafting files ------------------------------------------------------------------------------------

class Storage:
    """Pickled as torch's persistent id ("storage", torch.FloatStorage, key, "cpu", numel[, view])."""

    def __init__(self, key: str, numel: int, legacy: bool = False):
        self.key, self.numel, self.legacy = key, numel, legacy


class Tensor:
    """Pickled as torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())."""

    def __init__(self, storage: Storage, size, stride=None, offset: int = 0):
        self.storage, self.size, self.offset = storage, tuple(size), offset
        self.stride = tuple(stride) if stride is not None else tuple(
            int(np.prod(self.size[i + 1:])) for i in range(len(self.size)))

    def __reduce__(self):
        import torch

        return torch._utils._rebuild_tensor_v2, (self.storage, self.offset, self.size, self.stride, False,
                                                 collections.OrderedDict())


class StatePickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            import torch

            fields = ("storage", torch.FloatStorage, obj.key, "cpu", obj.numel)
            return fields + (None,) if obj.legacy else fields
        return None


def state_pickle(tensors: dict) -> bytes:
    """A state-dict pickle as torch.save writes it (protocol 2), with whatever sizes the test declares."""
    buffer = io.BytesIO()
    StatePickler(buffer, protocol=2).dump(collections.OrderedDict(tensors))
    return buffer.getvalue()


def zip_entry(name: str, data: bytes | None = None, *, deflate: bool = False, raw: bytes | None = None,
              crc: int | None = None, size: int | None = None) -> tuple:
    """(name, method, raw bytes, crc, declared uncompressed size); give data, or raw with crc and size."""
    if data is not None:
        raw = zlib.compress(data, 9, -15) if deflate else data
        crc = zlib.crc32(data) if crc is None else crc
        size = len(data) if size is None else size
    return name, zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED, raw, crc, size


def write_zip(path: Path, entries: list[tuple]) -> Path:
    """A zip written byte by byte, so that its declared sizes and CRCs are whatever the entries say."""
    with open(path, "wb") as f:
        central = []
        for name, method, raw, crc, size in entries:
            encoded = name.encode()
            offset = f.tell()
            f.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, len(raw), size,
                                len(encoded), 0) + encoded)
            f.write(raw)
            central.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc, len(raw),
                                       size, len(encoded), 0, 0, 0, 0, 0, offset) + encoded)
        start = f.tell()
        f.write(b"".join(central))
        f.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(central), len(central), f.tell() - start,
                            start, 0))
    return path


def torch_zip_entries(tmp_path: Path, state: dict) -> list[tuple[str, bytes]]:
    """The entries of a real torch.save zip of ``state`` (folder "archive/")."""
    torch = pytest.importorskip("torch")
    path = tmp_path / "archive.bin"
    torch.save(state, path)
    with zipfile.ZipFile(path) as zf:
        return [(name, zf.read(name)) for name in zf.namelist()]


def patched_torch_zip(tmp_path: Path, pickled: bytes, storages: dict[str, tuple] | None = None,
                      name: str = "pytorch_model.bin") -> Path:
    """torch.save({"w": zeros(4)}) with data.pkl replaced by ``pickled`` and, when given, its storage entries by
    ``storages`` ({key: bytes stored as they are, or a zip_entry tuple whose name is ignored})."""
    torch = pytest.importorskip("torch")
    entries = []
    for entry, data in torch_zip_entries(tmp_path, {"w": torch.zeros(4)}):
        if entry.endswith("/data.pkl"):
            entries.append(zip_entry(entry, pickled))
        elif "/data/" in entry and storages is not None:
            continue
        else:
            entries.append(zip_entry(entry, data))
    for key, entry in (storages or {}).items():
        entries.append((f"archive/data/{key}", *entry[1:]) if isinstance(entry, tuple) else
                       zip_entry(f"archive/data/{key}", entry))
    return write_zip(tmp_path / name, entries)


def split_legacy(data: bytes) -> tuple[list[bytes], bytes]:
    """The five pickles of a legacy torch.save file, and the storage bytes after them."""
    stream, pickles = io.BytesIO(data), []
    for _ in range(5):
        start = stream.tell()
        for _op in pickletools.genops(stream):
            pass
        pickles.append(data[start: stream.tell()])
    return pickles, data[stream.tell():]


@pytest.fixture(scope="module")
def bomb() -> tuple[bytes, int, int]:
    """(raw deflate, crc, size) of a 1 GiB pickle -- BINBYTES8 of zeros -- built a MiB at a time (~1 MB)."""
    payload_head = b"\x80\x04\x8e" + struct.pack("<Q", GiB)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts, crc = [compressor.compress(payload_head)], zlib.crc32(payload_head)
    zeros = bytes(1 << 20)
    for _ in range(GiB >> 20):
        parts.append(compressor.compress(zeros))
        crc = zlib.crc32(zeros, crc)
    parts += [compressor.compress(b"."), compressor.flush()]
    crc = zlib.crc32(b".", crc)
    raw = b"".join(parts)
    assert len(raw) < 2 << 20
    return raw, crc, len(payload_head) + GiB + 1


BOMB_HEAD = b"\x80\x04\x8e" + struct.pack("<Q", GiB) + bytes(5)  # its first 16 bytes


# --- torch.save files: declared sizes ---------------------------------------------------------------------

def test_zip_storage_declaring_more_than_its_entry_holds(tmp_path):
    numel = 375_000_000  # 1.5 GB of float32 in a 16-byte entry
    path = patched_torch_zip(tmp_path, state_pickle({"w": Tensor(Storage("0", numel), [numel])}))
    assert path.stat().st_size < 2000
    assert_refused(path, r"storage '0' declares 1,500,000,000 bytes but its zip entry archive/data/0 holds 16")


def test_legacy_storage_declaring_more_than_the_file_holds(tmp_path):
    torch = pytest.importorskip("torch")
    original = tmp_path / "original.bin"
    torch.save({"w": torch.zeros(4)}, original, _use_new_zipfile_serialization=False)
    pickles, storage = split_legacy(original.read_bytes())
    (key,) = pickle.loads(pickles[4])  # the storage key list: a plain list of str
    numel = 375_000_000
    pickles[3] = state_pickle({"w": Tensor(Storage(key, numel, legacy=True), [numel])})
    # The element count before the storage's bytes agrees with the pickle: only the file's size tells the lie.
    path = tmp_path / "pytorch_model.bin"
    path.write_bytes(b"".join(pickles) + struct.pack("<q", numel) + storage[8:])
    assert path.stat().st_size < 1000
    assert_refused(path, rf"storage '{key}' declares 1,500,000,000 bytes but the file holds {path.stat().st_size}")


def test_zero_stride_view_far_larger_than_the_file(tmp_path):
    # One float viewed as a 20000 x 20000 matrix (stride 0): 1.6 GB of copies from a 4-byte storage.
    pickled = state_pickle({"w": Tensor(Storage("0", 1), [20_000, 20_000], [0, 0])})
    path = patched_torch_zip(tmp_path, pickled, {"0": bytes(4)})
    assert_refused(path, rf"its tensors \(1\) would take 1,600,000,000 bytes, more than the [\d,]+ a "
                         rf"{path.stat().st_size:,}-byte file may expand to")


def test_thousands_of_names_for_one_storage(tmp_path):
    numel = 1 << 18  # a 1 MiB storage, named 1,500 times: 1.5 GiB of copies
    storage = Storage("0", numel)
    pickled = state_pickle({f"w{i}": Tensor(storage, [numel]) for i in range(1500)})
    path = patched_torch_zip(tmp_path, pickled, {"0": np.arange(numel, dtype="<f4").tobytes()})
    assert_refused(path, r"its tensors \(1,500\) would take 1,572,864,000 bytes")


# --- torch.save files: compressed entries ----------------------------------------------------------------

def test_zip_storage_deflate_bomb_is_refused_before_inflating(tmp_path, bomb):
    raw, crc, size = bomb  # ~1 MB expanding to 1 GiB, sizes declared honestly
    numel = GiB // 4
    path = patched_torch_zip(tmp_path, state_pickle({"w": Tensor(Storage("0", numel), [numel])}),
                             {"0": zip_entry("", raw=raw, crc=crc, size=size, deflate=True)})
    assert path.stat().st_size < 2 << 20
    assert_refused(path, rf"its tensors \(1\) would take 1,073,741,824 bytes, more than the [\d,]+ a "
                         rf"{path.stat().st_size:,}-byte file")


def test_zip_entry_expanding_past_its_declared_size(tmp_path, bomb):
    raw, _, _ = bomb  # declared as 4,096 bytes (with the CRC of those), inflating to 1 GiB
    pickled = state_pickle({"w": Tensor(Storage("0", 1024), [1024])})
    head = BOMB_HEAD + bytes(4096 - len(BOMB_HEAD))
    path = patched_torch_zip(tmp_path, pickled,
                             {"0": zip_entry("", raw=raw, crc=zlib.crc32(head), size=4096, deflate=True)})
    assert_refused(path, r"zip entry archive/data/0 expands past its declared size of 4,096 bytes")


def test_compressed_storage_is_inflated_only_as_far_as_its_tensors_reach(tmp_path, bomb):
    raw, crc, size = bomb  # an honest 1 GiB entry of which the state dict uses 16 bytes
    path = patched_torch_zip(tmp_path, state_pickle({"w": Tensor(Storage("0", 4), [4])}),
                             {"0": zip_entry("", raw=raw, crc=crc, size=size, deflate=True)})
    result = load_in_child(path)
    assert result["error"] is None, result["error"]
    expected = np.frombuffer(BOMB_HEAD, dtype="<f4")
    assert result["loaded"] == {"w": [[4], "float32", expected.tolist()]}
    assert result["growth_mb"] < MAX_GROWTH_MB


def test_zip_pickle_deflate_bomb(tmp_path, bomb):
    raw, crc, size = bomb  # data.pkl itself: a valid pickle of one 1 GiB bytes object
    torch = pytest.importorskip("torch")
    entries = [(name, *zip_entry(name, raw=raw, crc=crc, size=size, deflate=True)[1:])
               if name.endswith("/data.pkl") else zip_entry(name, data)
               for name, data in torch_zip_entries(tmp_path, {"w": torch.zeros(4)})]
    path = write_zip(tmp_path / "pytorch_model.bin", entries)
    assert_refused(path, rf"zip entry archive/data\.pkl declares {size:,} bytes, more than 4 times the")


# --- pickles that allocate ------------------------------------------------------------------------------

MEMO_BOMB = b"\x80\x02N" + b"r" + struct.pack("<I", 1 << 26) + b"."  # LONG_BINPUT 2**26: a 1 GiB memo table


@pytest.mark.parametrize("container", ["legacy", "zip"])
def test_pickle_naming_a_huge_memo_slot(tmp_path, container):
    if container == "legacy":
        path = tmp_path / "pytorch_model.bin"
        path.write_bytes(MEMO_BOMB)
    else:
        path = patched_torch_zip(tmp_path, MEMO_BOMB)
    assert_refused(path, r"stores memo slot 67,108,864 after only 2 opcodes")


def test_pickle_item_longer_than_the_file(tmp_path):
    path = tmp_path / "pytorch_model.bin"
    path.write_bytes(b"\x80\x04\x8e" + struct.pack("<Q", 1 << 40) + b"tiny.")  # BINBYTES8 of 1 TiB
    assert_refused(path, r"declares a 1,099,511,627,776-byte item with only 5 bytes left")


def binunicode(text: str) -> bytes:
    return b"X" + struct.pack("<I", len(text.encode())) + text.encode()


def memoized_dict(items: int) -> bytes:
    """OrderedDict in memo slot 0, then a dict of ``items`` int -> None in slot 1 (~6 bytes an item)."""
    return (b"\x80\x02ccollections\nOrderedDict\nq\x00}q\x01("
            + b"".join(b"J" + struct.pack("<i", i) + b"N" for i in range(items)) + b"u")


def copies_by_ordered_dict() -> bytes:
    # 2,000 x OrderedDict(slot 1): each 6-byte call copies 20,000 items (~2.9 GB for 150 KB).
    return memoized_dict(20_000) + b"](" + b"h\x00h\x01\x85R" * 2000 + b"e."


def copies_by_build() -> bytes:
    # 2,000 x BUILD(OrderedDict(), slot 1): each copies the 20,000-item state into a fresh __dict__.
    return memoized_dict(20_000) + b"](" + b"h\x00)Rh\x01b" * 2000 + b"e."


def copies_by_codecs_encode() -> bytes:
    # One 1 MB str in slot 1, encoded 1,000 times by 8-byte calls: 1 GB of bytes objects.
    return (b"\x80\x02c_codecs\nencode\nq\x00" + binunicode("a" * 1_000_000) + b"q\x01" + binunicode("latin1")
            + b"q\x02](" + b"h\x00h\x01h\x02\x86R" * 1000 + b"e.")


def copies_by_tensor_size() -> bytes:
    # A state dict of 1,000 tensors whose size and stride are one memoized 100,000-item list: 1.6 GB of tuples.
    head = (b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01ctorch._utils\n_rebuild_tensor_v2\nq\x02"
            b"]q\x03(" + b"K\x01" * 100_000 + b"e(" + binunicode("storage") + b"ctorch\nFloatStorage\n"
            + binunicode("0") + binunicode("cpu") + b"K\x04tq\x04(")
    items = b"".join(binunicode(f"w{i}") + b"h\x02(h\x04QK\x00h\x03h\x03tR" for i in range(1000))
    return head + items + b"u."


def empty_set_flood() -> bytes:
    return b"\x80\x04(" + b"\x8f" * 1_500_000 + b"l."  # 1.5 MB: 330 MB of empty sets


@pytest.mark.parametrize("build, container, pattern", [
    (copies_by_ordered_dict, "legacy", r"builds an OrderedDict from arguments"),
    (copies_by_build, "legacy", r"is not a PyTorch checkpoint"),  # BUILD on a state dict is dropped: no copies
    (copies_by_codecs_encode, "legacy", r"encodes more bytes than it holds"),
    (copies_by_tensor_size, "zip", r"tensor size is \[1, 1, 1, 1, 1, 1, \.\.\.\], not a tuple of at most 64"),
    (empty_set_flood, "legacy", r"its pickle would build more than [\d,]+ bytes of objects"),
], ids=["OrderedDict-copies", "BUILD-copies", "codecs-encode-copies", "tensor-size-copies", "empty-sets"])
def test_small_pickle_building_huge_objects(tmp_path, build, container, pattern):
    pickled = build()
    if container == "legacy":
        path = tmp_path / "pytorch_model.bin"
        path.write_bytes(pickled)
    else:
        path = patched_torch_zip(tmp_path, pickled)
    assert path.stat().st_size < 2_000_000
    assert_refused(path, pattern)


def test_build_cannot_rewrite_a_checked_tensor(tmp_path):
    # BUILD would write straight into a frozen dataclass's __dict__, after its size was checked.
    pickled = (b"\x80\x02ccollections\nOrderedDict\n)R" + binunicode("w")
               + b"ctorch._utils\n_rebuild_tensor_v2\n((" + binunicode("storage") + b"ctorch\nFloatStorage\n"
               + binunicode("0") + binunicode("cpu") + b"K\x04tQK\x00K\x04\x85K\x01\x85tR}"
               + binunicode("size") + b"J\x00\xe1\xf5\x05\x85sbs.")
    path = patched_torch_zip(tmp_path, pickled)
    with pytest.raises(CheckpointError, match=r"its pickle sets the state of a TensorRef"):
        load_torch_bin(path)


# --- safetensors ----------------------------------------------------------------------------------------

def safetensors_file(path: Path, header: dict, data: bytes, header_len: int | None = None) -> Path:
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded) if header_len is None else header_len) + encoded + data)
    return path


def test_safetensors_header_length_past_the_file(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", 1 << 40) + b"{" + b" " * 290 + b"}")
    assert path.stat().st_size == 300
    assert_refused(path, r"safetensors header of 1,099,511,627,776 bytes in a 300-byte file")


def test_safetensors_header_over_the_100mb_cap(tmp_path):
    path = tmp_path / "model.safetensors"
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", 150_000_000) + b"{}")
        f.truncate(200_000_000)  # sparse: no disk, and no reason to read 150 MB of header
    assert_refused(path, r"header claims 150,000,000 bytes, more than the 100,000,000")


def test_safetensors_offsets_past_the_end(tmp_path):
    header = {"w": {"dtype": "F32", "shape": [1_000_000_000], "data_offsets": [0, 4_000_000_000]}}
    path = safetensors_file(tmp_path / "model.safetensors", header, bytes(16))
    assert_refused(path, r"tensor 'w' has data_offsets \[0, 4000000000\] past the end of the data section")


def test_safetensors_overlapping_offsets(tmp_path):
    numel = 1 << 18  # 1 MiB of data, claimed by 1,500 tensors: 1.5 GiB if each were read
    header = {f"w{i}": {"dtype": "F32", "shape": [numel], "data_offsets": [0, 4 * numel]} for i in range(1500)}
    path = safetensors_file(tmp_path / "model.safetensors", header, bytes(4 * numel))
    assert_refused(path, r"tensors 'w\d+' and 'w\d+' overlap \(data_offsets \[0, 1048576\] and \[0, 1048576\]\)")


def test_safetensors_partly_overlapping_offsets(tmp_path):
    header = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
              "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}
    path = safetensors_file(tmp_path / "model.safetensors", header, bytes(12))
    with pytest.raises(CheckpointError, match=r"tensors 'a' and 'b' overlap"):
        load_safetensors(path)


def test_safetensors_shape_inconsistent_with_its_byte_range(tmp_path):
    header = {"w": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 16]}}
    path = safetensors_file(tmp_path / "model.safetensors", header, bytes(16))
    assert_refused(path, r"tensor 'w' \(F32, shape \[1000, 1000\]\) needs 4000000 bytes, its offsets \[0, 16\] span 16")


# --- legitimate files still load exactly ----------------------------------------------------------------

def tiny_bert(transformers):
    import torch

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=37, max_position_embeddings=64)
    return transformers.BertForMaskedLM(config)


def test_save_pretrained_output_loads_exactly(tmp_path):
    # transformers 5 writes model.safetensors whatever safe_serialization says; torch.save files are tested below.
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from safetensors.torch import load_file

    tiny_bert(transformers).save_pretrained(tmp_path)
    expected = load_file(tmp_path / "model.safetensors")
    loaded = load_state_dict(tmp_path)
    assert sorted(loaded) == sorted(expected)
    for name, tensor in expected.items():
        np.testing.assert_array_equal(loaded[name], tensor.numpy(), err_msg=name)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_torch_save_of_a_real_state_dict_loads_exactly(tmp_path, legacy):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    state = tiny_bert(transformers).state_dict()  # tied decoder/embeddings: one storage, two names
    path = tmp_path / "pytorch_model.bin"
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    loaded = load_torch_bin(path)
    assert list(loaded) == list(state)
    for name, tensor in state.items():
        np.testing.assert_array_equal(loaded[name], tensor.numpy(), err_msg=name)


def test_deflated_torch_checkpoint_loads_exactly(tmp_path):
    # torch.save stores entries uncompressed; one re-zipped with deflate is read too (inflated with a bound).
    torch = pytest.importorskip("torch")
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(6, 4, generator=gen)
    state = {"w": base, "w_t": base.t(), "half": torch.randn(5, generator=gen).half(), "ids": torch.arange(7),
             "empty": torch.empty(0, 3)}
    path = write_zip(tmp_path / "pytorch_model.bin",
                     [zip_entry(name, data, deflate=True) for name, data in torch_zip_entries(tmp_path, state)])
    with zipfile.ZipFile(path) as zf:
        assert {info.compress_type for info in zf.infolist()} == {zipfile.ZIP_DEFLATED}
    loaded = load_torch_bin(path)
    assert list(loaded) == list(state)
    for name, tensor in state.items():
        np.testing.assert_array_equal(loaded[name], tensor.numpy(), err_msg=name)


def test_legitimate_file_peak_memory_is_near_its_size(tmp_path):
    torch = pytest.importorskip("torch")
    state = {f"w{i}": torch.randn(256, 1024) for i in range(8)}  # 8 MiB
    path = tmp_path / "pytorch_model.bin"
    torch.save(state, path)
    result = load_in_child(path)
    assert result["error"] is None and len(result["loaded"]) == 8
    assert result["growth_mb"] < 8 * 3 + 10
