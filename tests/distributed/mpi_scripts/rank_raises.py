"""Run by test_mpi.py under `mpiexec -n 2`: rank 1 raises while rank 0 waits in a collective."""
import numpy as np

from minitransfer.distributed import get_communicator

comm = get_communicator()
comm.barrier()
if comm.rank == 1:
    raise RuntimeError("rank 1 fails on purpose")
comm.allreduce(np.ones(4))  # rank 0 would wait here forever without the abort
print("unreachable", flush=True)
