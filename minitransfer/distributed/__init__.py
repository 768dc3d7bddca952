"""Data parallelism: a communicator (one process, or MPI / NCCL ranks) and bucketed gradient averaging."""
from minitransfer.distributed.communicator import (
    MPICommunicator,
    SingleProcess,
    get_communicator,
    launched_by_mpi,
)
from minitransfer.distributed.gradient_reducer import (
    GradientReducer,
    broadcast_parameters,
    check_identical,
    parameters_checksum,
)
from minitransfer.distributed.launch import find_mpiexec

__all__ = ["MPICommunicator", "SingleProcess", "get_communicator", "launched_by_mpi", "GradientReducer",
           "broadcast_parameters", "check_identical", "parameters_checksum", "find_mpiexec"]
