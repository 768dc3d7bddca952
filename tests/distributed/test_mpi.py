"""Real ranks under `mpiexec -n 2` (tests/distributed/mpi_scripts/): collectives, the reducer against plain
allreduces, and a failing rank. Skipped where mpi4py or an mpiexec is missing; CI has both (`.[test]` includes
mpi4py and mpich)."""
import time

import pytest

from tests.distributed.mpi_run import HAVE_MPI, check, mpiexec

pytestmark = pytest.mark.skipif(not HAVE_MPI, reason="needs mpi4py and an mpiexec: pip install 'minitransfer[mpi]'")


def test_collectives_on_numpy_arrays():
    out = check(mpiexec("collectives.py"))
    assert "rank 0: collectives ok" in out and "rank 1: collectives ok" in out


def test_bucketed_overlapped_reducer_equals_one_allreduce_per_parameter():
    out = check(mpiexec("reducer_matches_plain_allreduce.py"))
    assert out.count("identical") == 2, out


def test_a_rank_that_raises_ends_the_job_with_a_nonzero_exit():
    start = time.monotonic()
    result = mpiexec("rank_raises.py", timeout=60)  # a hang would raise TimeoutExpired
    assert result.returncode != 0 and time.monotonic() - start < 60
    assert "[rank 1] uncaught RuntimeError" in result.stderr and "fails on purpose" in result.stderr
    assert "unreachable" not in result.stdout
