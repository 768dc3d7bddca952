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


def test_import_keeps_freed_memory_mapped_unless_told_not_to():
    """With glibc, importing minitransfer raises malloc's mmap threshold, so a freed 8 MiB block is reused by
    the next allocation of that size (no fresh mmap and page faults); MINITRANSFER_KEEP_FREED_MEMORY=0 opts out."""
    script = ("import minitransfer.host_memory as h, os, sys; "
              "print(h.keep_freed_memory() if sys.platform.startswith('linux') else 'skip')")
    env = {k: v for k, v in os.environ.items() if k != "MINITRANSFER_KEEP_FREED_MEMORY"}
    on = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    off = subprocess.run([sys.executable, "-c", script], env={**env, "MINITRANSFER_KEEP_FREED_MEMORY": "0"},
                         capture_output=True, text=True, check=True)
    if on.stdout.strip() == "skip":
        pytest.skip("not Linux")
    assert off.stdout.strip() == "False"
    assert on.stdout.strip() in ("True", "False")  # False only on a C library without glibc's mallopt


def test_freed_blocks_are_reused_after_import():
    """The effect itself: a step-like pattern -- three 16 MiB arrays alive at once, then all freed -- re-faults
    its pages every round under glibc's defaults (the freed heap top exceeds the trim threshold and goes back to
    the kernel), and (almost) never after `import minitransfer`."""
    script = """
import resource
import minitransfer, numpy as np
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def step():
    arrays = [np.ones(4 << 20, np.float32) for _ in range(3)]  # 3 x 16 MiB, written in full
    del arrays
step(); step()  # warm up: the first rounds fault in either case
before = faults()
for _ in range(10):
    step()
print(faults() - before)
"""
    if not sys.platform.startswith("linux"):
        pytest.skip("not Linux")
    env = {k: v for k, v in os.environ.items() if k != "MINITRANSFER_KEEP_FREED_MEMORY"}

    def run(extra):
        return int(subprocess.run([sys.executable, "-c", script], env={**env, **extra}, capture_output=True,
                                  text=True, check=True).stdout)

    kept, returned = run({}), run({"MINITRANSFER_KEEP_FREED_MEMORY": "0"})
    assert returned >= 10 * 3  # every array re-faulted every round (4096 faults each with 4 KiB pages, 8 with 2 MiB)
    assert kept < returned / 10
