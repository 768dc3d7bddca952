"""The data slice shipped inside the package (SST-2, a SQuAD sample, movie reviews: minitransfer/data/README.md)."""
from __future__ import annotations

from pathlib import Path

from minitransfer.errors import InputError

ROOT = Path(__file__).resolve().parent


def shipped_data_path(name: str) -> Path:
    """Path of a data file shipped inside the package, e.g. shipped_data_path("sst2/dev.tsv")."""
    path = ROOT / name
    if not path.is_file():
        files = (p for p in ROOT.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc"))  # data, not code
        shipped = sorted(str(p.relative_to(ROOT)) for p in files)
        raise InputError(f"no shipped data file {name!r}; shipped files: {shipped}")
    return path
