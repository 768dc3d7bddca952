"""Run by test_nccl.py under `mpiexec -n N` (N = GPUs, at most 2): collectives on CuPy arrays go over NCCL."""
import cupy as cp
import numpy as np

from minitransfer.distributed import get_communicator

comm = get_communicator()
cp.cuda.Device(comm.local_rank).use()
n, rank = comm.size, comm.rank
a = cp.full(1000, rank + 1.0, cp.float32)
comm.allreduce(a)
assert float(a[0]) == n * (n + 1) / 2 and comm._nccl is not None
b = cp.arange(10, dtype=cp.float64) * (rank + 1)
handle = comm.iallreduce(b)
handle.wait()
np.testing.assert_array_equal(cp.asnumpy(b), np.arange(10) * n * (n + 1) / 2)
c = cp.arange(4, dtype=cp.int64) + rank
comm.broadcast(c, root=n - 1)
np.testing.assert_array_equal(cp.asnumpy(c), np.arange(4) + n - 1)
print(f"rank {rank}: nccl ok", flush=True)
