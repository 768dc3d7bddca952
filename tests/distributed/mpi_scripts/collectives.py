"""Run by test_mpi.py under `mpiexec -n 2`: every collective of MPICommunicator on NumPy arrays."""
import numpy as np

from minitransfer.distributed import MPICommunicator, get_communicator

comm = get_communicator()
assert isinstance(comm, MPICommunicator) and comm.size == 2, comm
rank = comm.rank
assert (comm.local_rank, comm.local_size) == (rank, 2)

a = np.full(5, rank + 1.0, np.float32)
assert comm.allreduce(a) is a and (a == 3.0).all(), a
b = np.array([rank * 10], np.int64)
comm.allreduce(b, op="max")
assert b[0] == 10, b
c = np.arange(1000, dtype=np.float64) * (rank + 1)
handle = comm.iallreduce(c)
handle.wait()
np.testing.assert_array_equal(c, np.arange(1000) * 3.0)
d = np.arange(3.0) + rank
comm.broadcast(d, root=1)
np.testing.assert_array_equal(d, np.arange(3.0) + 1)
assert comm.broadcast_object({"from": rank}, root=0) == {"from": 0}
gathered = comm.gather_object(rank * 2, root=0)
assert gathered == ([0, 2] if rank == 0 else None), gathered
assert comm.allgather_object(f"r{rank}") == ["r0", "r1"]
try:
    comm.allreduce(np.ones((4, 4))[:, 0])
    raise AssertionError("a non-contiguous buffer was accepted")
except ValueError:
    pass
comm.barrier()
print(f"rank {rank}: collectives ok", flush=True)
