"""What `import minitransfer` does to the process, beyond defining names."""
import os
import subprocess
import sys


def test_import_sets_openblas_thread_timeout_unless_the_user_did():
    """OpenBLAS's spinning threads slowed the numba kernels 2x; the default must reach a fresh process, and a
    value the user exported must win."""
    script = "import os, minitransfer; print(os.environ['OPENBLAS_THREAD_TIMEOUT'])"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    fresh = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert fresh.stdout.strip() == "4"
    chosen = subprocess.run([sys.executable, "-c", script], env={**env, "OPENBLAS_THREAD_TIMEOUT": "20"},
                            capture_output=True, text=True, check=True)
    assert chosen.stdout.strip() == "20"
