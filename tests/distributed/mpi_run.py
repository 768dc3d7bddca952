"""Starting `mpiexec -n N python tests/distributed/mpi_scripts/<script>` from a test (about 2 s per start)."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from minitransfer.distributed import communicator, find_mpiexec

SCRIPTS = Path(__file__).parent / "mpi_scripts"
MPIEXEC = find_mpiexec()
HAVE_MPI = importlib.util.find_spec("mpi4py") is not None and MPIEXEC is not None


def mpiexec(script: str, ranks: int = 2, timeout: float = 120) -> subprocess.CompletedProcess:
    # One thread per rank (2 ranks on 2 cores), and none of an outer launcher's variables.
    env = {k: v for k, v in os.environ.items() if k not in communicator.MPI_LAUNCH_VARIABLES}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    return subprocess.run([MPIEXEC, "-n", str(ranks), sys.executable, str(SCRIPTS / script)], env=env,
                          capture_output=True, text=True, timeout=timeout)


def check(result: subprocess.CompletedProcess) -> str:
    """The job's stdout, after asserting it succeeded (its whole output in the message otherwise)."""
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout
