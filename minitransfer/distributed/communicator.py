"""The process group a job runs in: one process (nothing imported), or the ranks `mpiexec` started.

`get_communicator()` looks at the environment mpiexec leaves (PMI_RANK / PMI_SIZE from MPICH's hydra,
OMPI_COMM_WORLD_SIZE from Open MPI, PMIX_RANK from PMIx launchers) and only then imports mpi4py, so a job in
one process never loads MPI. Both communicators have the same methods; collectives on arrays work in place:

    comm = get_communicator()
    comm.allreduce(grad_buffer)                  # sum over ranks, in place (contiguous array)
    handle = comm.iallreduce(grad_buffer); ...; handle.wait()   # the same, started now, finished later
    comm.broadcast(weights, root=0)              # rank 0's values everywhere, in place
    comm.gather_object(metrics)                  # [one per rank] on root, None elsewhere

NumPy arrays travel over MPI; CuPy arrays over NCCL (`cupy.cuda.nccl`), whose unique id rank 0 makes and MPI
broadcasts (ChainerMN's bootstrap). Each rank must have picked its own GPU before its first CuPy collective
(`cupy.cuda.Device(comm.local_rank).use()`).

Faults: `MPICommunicator` installs a `sys.excepthook`, so an exception that no code catches on any rank prints
`[rank N]` and the traceback on stderr and calls `MPI_Abort(1)`: mpiexec then ends every rank and exits non-zero,
instead of the other ranks waiting forever in their next collective. Code that catches an error and means to end
the job (a CLI printing `error: ...`) must call `comm.abort(code)` rather than `sys.exit`, for the same reason.
"""
from __future__ import annotations

import os
import sys
import traceback
from typing import Any

from minitransfer import backend
from minitransfer.errors import ConfigError

# Variables a launcher sets in every rank's environment.
MPI_LAUNCH_VARIABLES = ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK")
_communicator = None


def launched_by_mpi(environ=None) -> bool:
    """Whether this process was started by mpiexec / mpirun (or srun with PMI)."""
    environ = os.environ if environ is None else environ
    return any(name in environ for name in MPI_LAUNCH_VARIABLES)


def get_communicator() -> SingleProcess | MPICommunicator:
    """This process's communicator, made on first call: MPI's world under mpiexec, else a SingleProcess."""
    global _communicator
    if _communicator is None:
        _communicator = MPICommunicator() if launched_by_mpi() else SingleProcess()
    return _communicator


class _Done:
    """The handle of a collective that has already finished."""

    def wait(self) -> None:
        pass

    def test(self) -> bool:
        return True


class SingleProcess:
    """The communicator of a job in one process: size 1, rank 0, every collective the identity."""

    size = 1
    rank = 0
    local_rank = 0
    local_size = 1

    def allreduce(self, array, op: str = "sum"):
        return array

    def iallreduce(self, array, op: str = "sum") -> _Done:
        return _Done()

    def broadcast(self, array, root: int = 0):
        return array

    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        return obj

    def barrier(self) -> None:
        pass

    def gather_object(self, obj: Any, root: int = 0) -> list:
        return [obj]

    def allgather_object(self, obj: Any) -> list:
        return [obj]

    def abort(self, code: int = 1) -> None:
        raise SystemExit(code)

    def __repr__(self) -> str:
        return "SingleProcess()"


class _MPIHandle:
    def __init__(self, request, array):
        self._request, self._array = request, array  # the buffer stays alive until the collective is done

    def wait(self) -> None:
        self._request.Wait()
        self._array = None

    def test(self) -> bool:
        """Whether it has finished; each call also lets MPI move it forward (MPICH has no progress thread)."""
        return self._request.Test()


class MPICommunicator:
    """MPI_COMM_WORLD through mpi4py, for NumPy arrays (CuPy arrays go to NCCL over the same ranks)."""

    def __init__(self, comm=None):
        try:
            from mpi4py import MPI  # noqa: PLC0415 (only under mpiexec)
        except ImportError as e:
            raise ConfigError(
                "this process was started by mpiexec but mpi4py is not installed: pip install 'minitransfer[mpi]'"
            ) from e
        self._MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.size, self.rank = self.comm.Get_size(), self.comm.Get_rank()
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)  # the ranks on this machine
        self.local_size, self.local_rank = node.Get_size(), node.Get_rank()
        node.Free()
        self._ops = {"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN, "prod": MPI.PROD}
        self._nccl: _NcclCommunicator | None = None
        _abort_on_uncaught_exception(self.comm, self.rank)

    def _gpu(self, array) -> _NcclCommunicator | None:
        if not backend.is_gpu_array(array):
            return None
        if self._nccl is None:
            self._nccl = _NcclCommunicator(self.comm, self.size, self.rank)
        return self._nccl

    @staticmethod
    def _check(array) -> None:
        if not array.flags.c_contiguous:
            raise ValueError("collectives work in place on a C-contiguous array: pass a contiguous buffer")

    def allreduce(self, array, op: str = "sum"):
        """Reduce `array` over all ranks, in place; returns it."""
        self._check(array)
        nccl = self._gpu(array)
        if nccl is not None:
            nccl.allreduce(array, op)
        else:
            self.comm.Allreduce(self._MPI.IN_PLACE, array, op=self._ops[op])
        return array

    def iallreduce(self, array, op: str = "sum"):
        """Start `allreduce(array, op)` and return at once; `handle.wait()` before reading `array`."""
        self._check(array)
        nccl = self._gpu(array)
        if nccl is not None:
            return nccl.iallreduce(array, op)
        return _MPIHandle(self.comm.Iallreduce(self._MPI.IN_PLACE, array, op=self._ops[op]), array)

    def broadcast(self, array, root: int = 0):
        """Overwrite `array` with root's, in place; returns it."""
        self._check(array)
        nccl = self._gpu(array)
        if nccl is not None:
            nccl.broadcast(array, root)
        else:
            self.comm.Bcast(array, root=root)
        return array

    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        """Root's `obj` (any picklable value) on every rank."""
        return self.comm.bcast(obj, root=root)

    def barrier(self) -> None:
        self.comm.Barrier()

    def gather_object(self, obj: Any, root: int = 0) -> list | None:
        """[obj of rank 0, obj of rank 1, ...] on root; None on the other ranks."""
        return self.comm.gather(obj, root=root)

    def allgather_object(self, obj: Any) -> list:
        """[obj of rank 0, obj of rank 1, ...] on every rank."""
        return self.comm.allgather(obj)

    def abort(self, code: int = 1) -> None:
        """End every rank of the job now with exit status `code` (MPI_Abort)."""
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        self.comm.Abort(code)

    def __repr__(self) -> str:
        return f"MPICommunicator(rank={self.rank}, size={self.size})"


def _abort_on_uncaught_exception(comm, rank: int) -> None:
    """Make an uncaught exception on this rank end the whole job (mpiexec exits non-zero) instead of a hang."""
    previous = sys.excepthook
    if getattr(previous, "_minitransfer_rank", None) is not None:
        return

    def hook(kind, value, tb):
        try:
            lines = "".join(traceback.format_exception(kind, value, tb)).splitlines()
            sys.stderr.write(f"[rank {rank}] uncaught {kind.__name__}: aborting the MPI job\n")
            sys.stderr.write("".join(f"[rank {rank}] {line}\n" for line in lines))
            sys.stderr.flush()
        finally:
            comm.Abort(1)

    hook._minitransfer_rank = rank
    sys.excepthook = hook


class _NcclCommunicator:
    """Collectives on CuPy arrays over NCCL, on the ranks of an MPI communicator (which carries the unique id)."""

    def __init__(self, mpi_comm, size: int, rank: int):
        cupy = backend.cupy_module()
        from cupy.cuda import nccl  # noqa: PLC0415 (GPU only)

        self._cupy, self._nccl = cupy, nccl
        uid = mpi_comm.bcast(nccl.get_unique_id() if rank == 0 else None, root=0)
        self.comm = nccl.NcclCommunicator(size, uid, rank)
        self.stream = cupy.cuda.Stream(non_blocking=True)  # where iallreduce runs, beside the compute stream
        self._ops = {"sum": nccl.NCCL_SUM, "max": nccl.NCCL_MAX, "min": nccl.NCCL_MIN, "prod": nccl.NCCL_PROD}
        self._dtypes = {"float16": nccl.NCCL_FLOAT16, "float32": nccl.NCCL_FLOAT32,
                        "float64": nccl.NCCL_FLOAT64, "int32": nccl.NCCL_INT32, "int64": nccl.NCCL_INT64}

    def _dtype(self, array) -> int:
        try:
            return self._dtypes[array.dtype.name]
        except KeyError:
            raise ValueError(f"NCCL collectives take {sorted(self._dtypes)} arrays, not {array.dtype}") from None

    def allreduce(self, array, op: str, stream=None) -> None:
        stream = self._cupy.cuda.get_current_stream() if stream is None else stream
        ptr = array.data.ptr
        self.comm.allReduce(ptr, ptr, array.size, self._dtype(array), self._ops[op], stream.ptr)

    def iallreduce(self, array, op: str) -> _CudaHandle:
        # The side stream waits for the work queued so far (the gradient copies), then reduces beside compute.
        self.stream.wait_event(self._cupy.cuda.get_current_stream().record())
        self.allreduce(array, op, stream=self.stream)
        return _CudaHandle(self.stream.record(), array, self._cupy)

    def broadcast(self, array, root: int) -> None:
        stream = self._cupy.cuda.get_current_stream()
        self.comm.bcast(array.data.ptr, array.size, self._dtype(array), root, stream.ptr)


class _CudaHandle:
    def __init__(self, event, array, cupy):
        self._event, self._array, self._cupy = event, array, cupy

    def wait(self) -> None:
        """Later work on the current stream runs after the reduction (the host does not block)."""
        self._cupy.cuda.get_current_stream().wait_event(self._event)

    def test(self) -> bool:
        return self._event.done
