"""What the CUDA kernel tests (tests/gpu/test_*_cuda.py) share: moving arrays to where the kernels run.

Without a GPU, tests/conftest.py has switched numba to its CUDA simulator (NUMBA_ENABLE_CUDASIM=1): the kernels
run as one Python thread per CUDA thread, slowly, so the tests use tiny shapes, and they read and write NumPy
arrays in place. On a GPU the same tests send their inputs as CuPy arrays (numba device arrays without CuPy),
as the ops do.
"""
import numpy as np
import pytest


def pytest_configure(config):
    # The simulator computes the dropout hash with NumPy integer scalars, which warn where the GPU's wrap silently.
    config.addinivalue_line("filterwarnings", "ignore:overflow encountered in scalar:RuntimeWarning:.*_cuda")


class Device:
    """put: a NumPy array to the kernels' side; get: a result back as NumPy."""

    def __init__(self):
        from numba import config

        self.simulated = bool(config.ENABLE_CUDASIM)
        try:
            import cupy
        except ImportError:
            cupy = None
        self.cupy = None if self.simulated else cupy

    def put(self, a):
        """A copy of `a` where the kernels run (a copy under the simulator too, as a transfer would make)."""
        if self.simulated:
            return np.array(a, order="C")
        if self.cupy is not None:
            return self.cupy.asarray(a)
        from numba import cuda

        return cuda.to_device(np.ascontiguousarray(a))

    def get(self, x) -> np.ndarray:
        if isinstance(x, np.ndarray):
            return x
        if self.cupy is not None and isinstance(x, self.cupy.ndarray):
            return self.cupy.asnumpy(x)
        return x.copy_to_host()


@pytest.fixture(scope="session")
def device():
    pytest.importorskip("numba_cuda")
    return Device()
