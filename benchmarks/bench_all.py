"""Issue 6's CPU comparison in one command: every table of ours beside PyTorch's, one after the other.

    python benchmarks/bench_all.py [--quick]

Runs, in this order, each in its own interpreter (they measure memory per process):
  bench_model.py      whole models: training-step and inference ms, tokens/s, GFLOP/s, % of the measured
                      peak, peak memory (MiniLM 32×128 and DistilBERT-base 8×384, dropout 0.1 and 0)
  bench_attention.py  attention alone: forward and forward+backward ms and GFLOP/s vs torch SDPA
  bench_kernels.py    each fused kernel vs the composition it replaced vs torch
--quick passes --quick to the first two (fewer runs). CPU only: there is no CUDA path to measure yet.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer timed runs in bench_model and bench_attention")
    args = parser.parse_args()
    quick = ["--quick"] if args.quick else []
    runs = [("bench_model.py", quick), ("bench_attention.py", quick), ("bench_kernels.py", [])]
    failed = []
    for script, extra in runs:
        print(f"\n===== {script} {' '.join(extra)} =====", flush=True)
        if subprocess.run([sys.executable, str(HERE / script), *extra], check=False).returncode != 0:
            failed.append(script)
    if failed:
        sys.exit(f"failed: {', '.join(failed)} (their output is above)")


if __name__ == "__main__":
    main()
