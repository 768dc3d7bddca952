"""What `import minitransfer` sets in the environment before NumPy and numba load (each measured, RESULTS.md).

A value already in the environment always wins.
"""
import os

# OpenBLAS's idle threads spin for ~2^28 cycles after every GEMM, holding the cores that the numba kernels run
# on next: inside the model the attention kernel took 34 ms per call instead of 15 ms (MiniLM 32x128, 2 cores;
# benchmarks/RESULTS.md). With a timeout of 2^4 cycles they sleep at once. It only takes effect if set before
# NumPy loads OpenBLAS (the CLI imports minitransfer first); a value already in the environment wins.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
# The same for numba's parallel kernels, which run on OpenMP (libgomp): by default its workers spin after each
# parallel loop, on the core the next GEMM needs. PASSIVE makes them sleep at once (measured: MiniLM training
# step or inference faster in 7 of 9 alternating pairs; benchmarks/RESULTS.md). Read when numba first loads libgomp.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Under mpiexec, ranks on one machine share its cores: each takes its share for BLAS, OpenMP and numba unless the
# user set a count (2 ranks x 2 threads on 2 cores would fight for them).
_local_ranks = int(os.environ.get("MPI_LOCALNRANKS") or os.environ.get("OMPI_COMM_WORLD_LOCAL_SIZE") or 1)
if _local_ranks > 1:
    for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(_name, str(max(1, (os.cpu_count() or 1) // _local_ranks)))

