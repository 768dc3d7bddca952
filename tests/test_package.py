"""What `import minitransfer` does to the process, beyond defining names."""
import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("name, default, users", [("OPENBLAS_THREAD_TIMEOUT", "4", "20"),
                                                  ("OMP_WAIT_POLICY", "PASSIVE", "ACTIVE")])
def test_import_sets_thread_waiting_defaults_unless_the_user_did(name, default, users):
    """Spinning idle threads (OpenBLAS's after a GEMM, libgomp's after a numba parallel loop) took the cores the
    next kernel needed; the default must reach a fresh process, and a value the user exported must win."""
    script = f"import os, minitransfer; print(os.environ[{name!r}])"
    env = {k: v for k, v in os.environ.items() if k != name}
    fresh = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert fresh.stdout.strip() == default
    chosen = subprocess.run([sys.executable, "-c", script], env={**env, name: users},
                            capture_output=True, text=True, check=True)
    assert chosen.stdout.strip() == users
