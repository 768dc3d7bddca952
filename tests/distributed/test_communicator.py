"""The communicator in one process: chosen from the environment, MPI never imported without mpiexec."""
import os
import sys

import numpy as np
import pytest

from minitransfer.distributed import communicator, find_mpiexec, get_communicator, launched_by_mpi
from minitransfer.distributed.communicator import SingleProcess
from minitransfer.errors import ConfigError


@pytest.fixture
def fresh(monkeypatch):
    """No cached communicator and no launcher variables; restored afterwards."""
    monkeypatch.setattr(communicator, "_communicator", None)
    for name in communicator.MPI_LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_one_process_gets_a_single_process_communicator_without_importing_mpi(fresh):
    fresh.setitem(sys.modules, "mpi4py", None)  # an import of mpi4py would now raise
    comm = get_communicator()
    assert isinstance(comm, SingleProcess) and get_communicator() is comm
    assert (comm.size, comm.rank, comm.local_rank, comm.local_size) == (1, 0, 0, 1)
    a = np.arange(4.0)
    assert comm.allreduce(a) is a and comm.broadcast(a) is a and comm.iallreduce(a).test()
    assert comm.gather_object("x") == ["x"] and comm.allgather_object(3) == [3] and comm.broadcast_object(5) == 5
    comm.barrier()
    with pytest.raises(SystemExit):
        comm.abort(3)


@pytest.mark.parametrize("name", ["PMI_RANK", "OMPI_COMM_WORLD_SIZE"])
def test_under_mpiexec_without_mpi4py_a_clear_error(fresh, name):
    fresh.setenv(name, "0")
    fresh.setitem(sys.modules, "mpi4py", None)
    assert launched_by_mpi()
    with pytest.raises(ConfigError, match=r"pip install 'minitransfer\[mpi\]'"):
        get_communicator()


def test_find_mpiexec_prefers_the_one_beside_this_python(monkeypatch):
    monkeypatch.delenv("MPIEXEC", raising=False)
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    found = find_mpiexec()
    if os.path.isfile(beside):
        assert found == os.path.abspath(beside)
    monkeypatch.setenv("MPIEXEC", sys.executable)  # any executable: the variable wins
    assert find_mpiexec() == os.path.abspath(sys.executable)
