"""Finding the `mpiexec` that starts the ranks: the one the `mpich` wheel installed beside this Python first."""
from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from importlib import metadata


def find_mpiexec() -> str | None:
    """The path of an mpiexec, or None: $MPIEXEC, then next to sys.executable (a venv's bin/, where
    `pip install 'minitransfer[mpi]'` puts MPICH's), then this interpreter's scripts folder, then the files
    of the installed `mpich` distribution, then $PATH."""
    names = ("mpiexec.exe", "mpiexec") if os.name == "nt" else ("mpiexec",)
    folders = [os.path.dirname(sys.executable), sysconfig.get_path("scripts")]
    candidates = [os.environ.get("MPIEXEC", "")] + [os.path.join(f, n) for f in folders for n in names]
    try:
        files = metadata.distribution("mpich").files or ()
        candidates += [str(f.locate()) for f in files if f.name in names]
    except metadata.PackageNotFoundError:
        pass
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return os.path.abspath(path)
    return shutil.which("mpiexec")
