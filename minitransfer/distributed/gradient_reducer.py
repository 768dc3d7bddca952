"""Data-parallel gradient averaging: fused buckets, each reduced while backward is still running.

Every rank computes gradients on its own slice of the batch; before the optimizer step all ranks must hold the
same average. Parameters are grouped into buckets of about `bucket_bytes` in the REVERSE order of the model's
parameters, since backward produces the last layers' gradients first (PyTorch DDP's buckets, 25 MB). When
every gradient of a bucket is final (`Tensor.register_grad_ready_hook`), they are copied into the bucket's flat
buffer (Horovod's fusion buffer: one message instead of dozens) and its non-blocking allreduce starts at once,
so communication overlaps the rest of backward. `finish()` waits, divides by the number of ranks and hands
each parameter its averaged gradient. One training step, on every rank:

    reducer = GradientReducer(model.parameters(), comm)       # once, after the model is on its device
    for micro_batch in micro_batches[:-1]:
        with reducer.no_sync():                               # accumulation: no communication
            model(**micro_batch).loss.backward()
    model(**micro_batches[-1]).loss.backward()                # buckets start as their gradients are final
    reducer.finish()                                          # now p.grad is the average over ranks
    clip_grad_norm_(...); optimizer.step(); optimizer.zero_grad()

Buckets start strictly in bucket order (a bucket that is ready waits for the ones before it), so every rank
issues the same collectives in the same order even when its graph differs (an unused parameter on one rank).
Frozen parameters (requires_grad=False) are never communicated. With one process the reducer registers no
hooks and `finish()` returns at once. After `finish()` each `.grad` is a view into its bucket's buffer (DDP's
`gradient_as_bucket_view`): no copy back, and valid until the next step's reduction.
MPICH moves a non-blocking collective forward only inside MPI calls, so each grad-ready event also tests the
reductions in flight; MPIR_CVAR_ASYNC_PROGRESS=1 gives MPICH a progress thread instead.

Row-sparse parameters (`row_sparse=`, a word embedding): a batch touches a few hundred of its rows, and its
gradient is final only at the very end of backward (the embedding is the first layer), so a dense allreduce of
it cannot overlap anything. Instead `finish(rows=...)` allgathers each rank's touched rows and their gradients
and sums them in rank order on every rank (the same order everywhere: the replicas stay bit-identical). The
caller names the rows (the batch's token ids); a row outside them must have a zero gradient — true for an
embedding that is not tied to an output layer.
"""
from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterable, Iterator

import numpy as np

from minitransfer import backend
from minitransfer.autograd import Tensor
from minitransfer.errors import TrainingError


class _Bucket:
    __slots__ = ("params", "offsets", "numel", "buffer", "ready", "handle")

    def __init__(self):
        self.params: list[Tensor] = []
        self.offsets: list[int] = []
        self.numel = 0
        self.buffer = None  # allocated at first use, on the parameters' device
        self.ready: set[int] = set()
        self.handle = None

    def add(self, p: Tensor) -> None:
        self.params.append(p)
        self.offsets.append(self.numel)
        self.numel += p.size

    def views(self) -> Iterator[tuple[Tensor, object]]:
        """(parameter, its slice of the buffer shaped like it)."""
        for p, offset in zip(self.params, self.offsets):
            yield p, self.buffer[offset: offset + p.size].reshape(p.shape)


class GradientReducer:
    """Averages the gradients of `parameters` over the ranks of `communicator`, bucket by bucket during
    backward. Only parameters with requires_grad are kept; a parameter listed twice counts once."""

    def __init__(self, parameters: Iterable[Tensor], communicator, bucket_bytes: int = 25 * 2**20,
                 row_sparse: Iterable[Tensor] = ()):
        self.communicator = communicator
        self.row_sparse = [p for p in row_sparse if p.requires_grad]
        sparse = {id(p) for p in self.row_sparse}
        self.parameters = list({id(p): p for p in parameters if p.requires_grad and id(p) not in sparse}.values())
        self.bucket_bytes = int(bucket_bytes)
        self.buckets: list[_Bucket] = []
        self.overlapped_buckets = 0  # of the last step: buckets whose reduction started during backward
        self._bucket_of: dict[int, _Bucket] = {}
        self._hooks: list = []
        self._sync = True
        self._next = 0  # the first bucket not yet started
        if communicator.size == 1:
            return
        for p in reversed(self.parameters):
            last = self.buckets[-1] if self.buckets else None
            fits = last is not None and (last.numel + p.size) * p.dtype.itemsize <= self.bucket_bytes
            if not (fits and last.params[0].dtype == p.dtype and last.params[0].device == p.device):
                last = _Bucket()
                self.buckets.append(last)
            last.add(p)
            self._bucket_of[id(p)] = last
            self._hooks.append(p.register_grad_ready_hook(self._grad_ready))

    # ---- during backward ----
    def _grad_ready(self, p: Tensor) -> None:
        if not self._sync:
            return
        self._bucket_of[id(p)].ready.add(id(p))
        started = self._start_ready_buckets()
        self.overlapped_buckets += started
        for bucket in self.buckets[: self._next - started]:  # let MPI move the earlier reductions on
            if bucket.handle is not None:
                bucket.handle.test()

    def _start_ready_buckets(self, all_of_them: bool = False) -> int:
        started = 0
        while self._next < len(self.buckets):
            bucket = self.buckets[self._next]
            if not all_of_them and len(bucket.ready) < len(bucket.params):
                break
            self._start(bucket)
            self._next += 1
            started += 1
        return started

    def _start(self, bucket: _Bucket) -> None:
        first = bucket.params[0].data
        xp = backend.get_array_module(first)
        if bucket.buffer is None or backend.get_array_module(bucket.buffer) is not xp:
            bucket.buffer = xp.empty(bucket.numel, dtype=first.dtype)
        for p, view in bucket.views():
            if p.grad is None:  # unused on this rank: contributes zeros, still gets the average
                view.fill(0)
            else:
                view[...] = p.grad.data
        bucket.handle = self.communicator.iallreduce(bucket.buffer)

    # ---- after backward ----
    def finish(self, rows: dict | None = None) -> None:
        """Wait for every bucket (starting those backward did not complete), divide by the number of ranks and
        set each parameter's `.grad` to the average. Does nothing with one process or inside `no_sync()`.

        rows: {id(parameter): this rank's touched row indices} for each row-sparse parameter."""
        if not self._sync or self.communicator.size == 1:
            return
        self._start_ready_buckets(all_of_them=True)
        size = self.communicator.size
        for p in self.row_sparse:
            self._average_rows(p, (rows or {}).get(id(p)))
        for bucket in self.buckets:
            bucket.handle.wait()
            bucket.buffer /= size
            for p, view in bucket.views():
                if p.grad is None:
                    p.grad = Tensor(view)
                else:
                    p.grad.data = view
        overlapped = self.overlapped_buckets
        self.reset()
        self.overlapped_buckets = overlapped

    def _average_rows(self, p: Tensor, rows) -> None:
        if rows is None:
            raise TrainingError(f"finish() needs the touched rows of the row-sparse parameter of shape {p.shape}")
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        grad = p.grad.data if p.grad is not None else None
        values = backend.to_numpy(grad[rows]) if grad is not None else np.zeros((len(rows), *p.shape[1:]), p.dtype)
        everyone = self.communicator.allgather_object((rows, values))
        union = np.unique(np.concatenate([r for r, _ in everyone]))
        total = np.zeros((len(union), *p.shape[1:]), dtype=values.dtype)
        for their_rows, their_values in everyone:  # rank order on every rank: identical sums
            total[np.searchsorted(union, their_rows)] += their_values
        total /= self.communicator.size
        xp = backend.get_array_module(p.data)
        if grad is None:
            grad = xp.zeros(p.shape, dtype=p.dtype)
            p.grad = Tensor(grad)
        grad[xp.asarray(union)] = xp.asarray(total)  # every other row is zero on every rank

    def reset(self) -> None:
        """Forget this step's progress (`finish()` does it; call it after a step abandoned mid-way)."""
        for bucket in self.buckets:
            bucket.ready.clear()
            bucket.handle = None
        self._next = 0
        self.overlapped_buckets = 0

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Backward inside accumulates gradients locally, with no communication (all micro-batches but the
        last of a gradient-accumulation step, as DDP's no_sync)."""
        previous, self._sync = self._sync, False
        try:
            yield
        finally:
            self._sync = previous

    def remove(self) -> None:
        """Unregister the hooks: backward no longer triggers any communication."""
        for handle in self._hooks:
            handle.remove()
        self._hooks.clear()

    def __repr__(self) -> str:
        return (f"GradientReducer({len(self.parameters)} parameters, {len(self.buckets)} buckets, "
                f"ranks={self.communicator.size})")


def broadcast_parameters(parameters: Iterable[Tensor], communicator, root: int = 0) -> None:
    """Give every rank root's values of `parameters` (frozen ones too), in place: call once before training."""
    if communicator.size == 1:
        return
    for p in {id(p): p for p in parameters}.values():
        if not p.data.flags.c_contiguous:
            p.data = backend.get_array_module(p.data).ascontiguousarray(p.data)
        communicator.broadcast(p.data, root=root)


def _named(parameters) -> list[tuple[str, Tensor]]:
    items = list(parameters)
    return [item if isinstance(item, tuple) else (str(i), item) for i, item in enumerate(items)]


def parameters_checksum(parameters: Iterable[Tensor] | Iterable[tuple[str, Tensor]]) -> float:
    """The sum of every parameter's values in float64: a number to print and compare across ranks."""
    return float(sum(float(backend.get_array_module(p.data).sum(p.data, dtype=np.float64))
                     for _, p in _named(parameters)))


def check_identical(parameters: Iterable[Tensor] | Iterable[tuple[str, Tensor]], communicator) -> None:
    """Raise TrainingError on every rank when the ranks' weights are not bit for bit the same (a debug check:
    each rank hashes its parameters, CRC-32 per parameter, and the hashes are gathered). Accepts
    `model.parameters()` or `model.named_parameters()` (the error then names the first parameter that differs)."""
    named = _named(parameters)
    hashes = [zlib.crc32(np.ascontiguousarray(backend.to_numpy(p.data)).view(np.uint8)) for _, p in named]
    every = communicator.allgather_object((hashes, parameters_checksum(named)))
    sums = ", ".join(f"rank {r}: {s!r}" for r, (_, s) in enumerate(every))
    if len({len(h) for h, _ in every}) > 1:
        counts = ", ".join(f"rank {r}: {len(h)}" for r, (h, _) in enumerate(every))
        raise TrainingError(f"the ranks hold different numbers of parameters ({counts})")
    differ = [i for i in range(len(named)) if len({h[i] for h, _ in every}) > 1]
    if differ:
        raise TrainingError(f"the ranks' weights differ, first at parameter {named[differ[0]][0]!r} "
                            f"({len(differ)} of {len(named)} differ; checksums {sums})")
