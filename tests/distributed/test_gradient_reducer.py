"""GradientReducer in one process: free with one rank; with a stand-in communicator of 2 identical ranks, the
buckets' layout, the order they start in, what overlaps backward, no_sync, and the unused-parameter case."""
import numpy as np
import pytest

from minitransfer import Tensor, ops
from minitransfer.autograd import _hooked_leaves
from minitransfer.distributed import (
    GradientReducer,
    SingleProcess,
    broadcast_parameters,
    check_identical,
    parameters_checksum,
)
from minitransfer.errors import TrainingError
from minitransfer.nn import Parameter


class TwinRanks:
    """A communicator of 2 ranks whose other rank holds the same values: an allreduce doubles the buffer.
    `events` logs ("start", bucket size) and ("wait", bucket size) in the order they happen."""

    size, rank = 2, 0

    def __init__(self):
        self.events = []

    def iallreduce(self, array, op="sum"):
        self.events.append(("start", array.size))
        events = self.events

        class Handle:
            def test(self):
                return False

            def wait(self):
                events.append(("wait", array.size))
                array[...] *= 2

        return Handle()


def mlp(sizes=((4, 8), (8, 8), (8, 2)), seed=0):
    rng = np.random.default_rng(seed)
    return [Parameter(rng.standard_normal(s).astype(np.float32)) for s in sizes]


def forward(params, x):
    h = Tensor(x)
    for w in params[:-1]:
        h = ops.tanh(h @ w)
    return (h @ params[-1]).sum()


def plain_grads(params, x):
    for p in params:
        p.grad = None
    forward(params, x).backward()
    return [None if p.grad is None else p.grad.numpy().copy() for p in params]


def test_one_process_registers_nothing_and_leaves_gradients_alone():
    params = mlp()
    x = np.ones((3, 4), np.float32)
    expected = plain_grads(params, x)
    reducer = GradientReducer(params, SingleProcess())
    assert reducer.buckets == [] and not any(p in _hooked_leaves for p in params)
    forward(params, x).backward()
    reducer.finish()
    for p, g in zip(params, expected):
        np.testing.assert_array_equal(p.grad.numpy(), 2 * g)  # accumulated as usual (no zero_grad), untouched


def test_buckets_follow_reverse_parameter_order_and_start_during_backward():
    params = mlp(((4, 8), (8, 8), (8, 8), (8, 2)))
    frozen = params[1]
    frozen.requires_grad = False
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    expected = plain_grads(params, x)
    comm = TwinRanks()
    reducer = GradientReducer(params, comm, bucket_bytes=64 * 4)  # 64 floats: one 8x8 weight per bucket
    assert [[p.shape for p in b.params] for b in reducer.buckets] == [[(8, 2)], [(8, 8)], [(4, 8)]]  # no frozen
    for p in params:
        p.grad = None
    forward(params, x).backward()
    assert comm.events == [("start", 16), ("start", 64), ("start", 32)]  # all started before finish()
    assert reducer.overlapped_buckets == 3
    reducer.finish()
    assert frozen.grad is None
    for p, g in zip(params, expected):
        if p.requires_grad:
            np.testing.assert_array_equal(p.grad.numpy(), g)  # (g + g) / 2 == g exactly


def test_a_parameter_unused_on_this_rank_gets_the_average_and_holds_back_only_its_bucket():
    params = mlp()
    unused = Parameter(np.ones(5, np.float32))  # first in order, so last bucket; on its own
    comm = TwinRanks()
    reducer = GradientReducer([unused, *params], comm, bucket_bytes=1)  # one parameter per bucket
    forward(params, np.ones((2, 4), np.float32)).backward()
    assert [e for e, _ in comm.events] == ["start"] * 3  # the unused parameter's bucket is still waiting
    reducer.finish()
    assert comm.events[3] == ("start", 5)
    np.testing.assert_array_equal(unused.grad.numpy(), np.zeros(5))  # zeros from here, averaged


def test_a_bucket_that_is_ready_waits_for_the_buckets_before_it():
    """Every rank must issue its collectives in the same order: bucket order, not readiness order."""
    a, b = Parameter(np.ones(2, np.float32)), Parameter(np.ones(3, np.float32))
    comm = TwinRanks()
    reducer = GradientReducer([a, b], comm, bucket_bytes=1)  # buckets: [b], [a]
    (a * 2.0).sum().backward()  # only a's gradient: bucket [a] is ready, but [b] comes first
    assert comm.events == []
    reducer.finish()
    assert comm.events[:2] == [("start", 3), ("start", 2)]
    np.testing.assert_array_equal(a.grad.numpy(), [2.0, 2.0])


def test_no_sync_accumulates_without_communication_and_the_last_micro_batch_averages_the_sum():
    params = mlp()
    x1, x2 = (np.random.default_rng(s).standard_normal((2, 4)).astype(np.float32) for s in (1, 2))
    g1, g2 = plain_grads(params, x1), plain_grads(params, x2)
    comm = TwinRanks()
    reducer = GradientReducer(params, comm, bucket_bytes=1)
    for p in params:
        p.grad = None
    with reducer.no_sync():
        forward(params, x1).backward()
        reducer.finish()  # a no-op inside no_sync
    assert comm.events == []
    forward(params, x2).backward()
    reducer.finish()
    for p, a, b in zip(params, g1, g2):
        np.testing.assert_allclose(p.grad.numpy(), a + b, rtol=1e-6)
    # The next step starts afresh (finish() reset the buckets): the same again.
    comm.events.clear()
    for p in params:
        p.grad = None
    forward(params, x2).backward()
    reducer.finish()
    assert len(comm.events) == 6
    for p, b in zip(params, g2):
        np.testing.assert_array_equal(p.grad.numpy(), b)
    reducer.remove()
    assert not any(p in _hooked_leaves for p in params)


def test_checksums_and_the_identity_check_in_one_process():
    params = mlp()
    assert parameters_checksum(params) == pytest.approx(sum(float(p.data.sum()) for p in params), rel=1e-6)
    check_identical(params, SingleProcess())
    broadcast_parameters(params, SingleProcess())

    class Disagreeing:  # what allgather would bring back if rank 1's first weight differed
        size = 2

        def allgather_object(self, obj):
            hashes, total = obj
            return [obj, ([hashes[0] + 1, *hashes[1:]], total + 1.0)]

    with pytest.raises(TrainingError, match="first at parameter '0.weight'"):
        check_identical([(f"{i}.weight", p) for i, p in enumerate(params)], Disagreeing())
