"""The NCCL path of MPICommunicator on CuPy arrays; skipped cleanly without CuPy, a CUDA device or MPI.

Last run on a GPU: never (no GPU machine was lent to this project's sessions)."""
import pytest

from tests.distributed.mpi_run import HAVE_MPI, check, mpiexec

cupy = pytest.importorskip("cupy")
try:
    _devices = cupy.cuda.runtime.getDeviceCount()
except Exception:  # noqa: BLE001 -- CuPy without a driver raises CUDARuntimeError and friends
    _devices = 0
pytestmark = pytest.mark.skipif(_devices == 0 or not HAVE_MPI, reason="needs a CUDA device, mpi4py and an mpiexec")


def test_collectives_on_cupy_arrays_go_over_nccl():
    ranks = min(2, _devices)  # NCCL wants one GPU per rank
    assert check(mpiexec("nccl_collectives.py", ranks=ranks)).count("nccl ok") == ranks
