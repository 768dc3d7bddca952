"""Helpers the benchmarks share: timing, the machine's FLOP/s peak, BLAS identity and peak-memory readings.

Nothing here imports torch; the benchmarks import it themselves (bench-only dependency).
"""
from __future__ import annotations

import gc
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np


def time_ms(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Wall-clock milliseconds of `repeats` calls of fn after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def time_wall_and_cpu_ms(fn: Callable[[], object], repeats: int, warmup: int = 1) -> tuple[list[float], list[float]]:
    """(wall ms, process CPU ms of all threads) for each of `repeats` calls after `warmup` untimed calls.

    CPU time is less skewed than wall time when other processes share the cores (it still counts threads
    that spin while waiting, as OpenBLAS and OpenMP workers do).
    """
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), _cpu_seconds()
        fn()
        wall.append((time.perf_counter() - t0) * 1e3)
        cpu.append((_cpu_seconds() - c0) * 1e3)
    return wall, cpu


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def median(values: list[float]) -> float:
    return statistics.median(values)


# ---- FLOPs ----
def attention_flops(batch: int, heads: int, seq: int, head_dim: int) -> int:
    """Forward FLOPs of attention's two matmuls, q·kᵀ and p·v: 4 · B · H · S² · D (softmax, mask, dropout not
    counted). Backward is 2.5× this (5 matmuls to forward's 2: FlashAttention's benchmark convention)."""
    return 4 * batch * heads * seq * seq * head_dim


def encoder_forward_flops(hidden: int, layers: int, heads: int, ffn: int, batch: int, seq: int) -> int:
    """Forward FLOPs of a BERT-like encoder: 2 · P · T + the attention matmuls, where P = the Linear layers' weights
    (L · (4·hidden² + 2·hidden·ffn)) and T = B · S tokens. Embeddings, biases, LayerNorm, softmax, GELU and the task
    head are not counted; a training step is 3 × this (backward = 2 GEMMs per forward GEMM)."""
    linear_params = layers * (4 * hidden * hidden + 2 * hidden * ffn)
    return 2 * linear_params * batch * seq + layers * attention_flops(batch, heads, seq, hidden // heads)


# ---- one configuration per process ----
def run_in_child(script: str, spec: dict, label: str) -> dict:
    """Run `script --child JSON(spec)` in a fresh interpreter (so its peak memory is its own); its last stdout
    line is the JSON result. `label` names the configuration in the error if the child fails."""
    proc = subprocess.run([sys.executable, script, "--child", json.dumps(spec)], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{label} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---- the machine ----
def cpu_model() -> str:
    """lscpu's 'Model name' (falls back to platform.processor())."""
    info = _lscpu()
    return info.get("Model name", platform.processor() or "unknown")


def _lscpu() -> dict[str, str]:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return {}
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines()) if v}


def theoretical_peak_gflops() -> tuple[float | None, str]:
    """cores × GHz × float32 FLOPs/cycle, with how it was derived; (None, why) where lscpu cannot tell.

    FLOPs/cycle assumes two FMA pipes (Haswell and later, Zen 2 and later): 2 × lanes × 2 (FMA = 2 FLOPs),
    i.e. 32 with AVX2 (8 float32 lanes) and 64 with AVX-512 (16 lanes). The clock is lscpu's max MHz where
    it is reported, else the current MHz of /proc/cpuinfo (a VM often shows only its nominal clock, so a
    boosting CPU can beat this figure).
    """
    info = _lscpu()
    flags = info.get("Flags", "").split()
    cores = os.cpu_count() or 1
    if "avx512f" in flags:
        per_cycle, isa = 64, "AVX-512"
    elif "avx2" in flags and "fma" in flags:
        per_cycle, isa = 32, "AVX2+FMA"
    else:
        return None, "no AVX2/FMA flags in lscpu"
    mhz, source = None, ""
    if info.get("CPU max MHz"):
        mhz, source = float(info["CPU max MHz"]), "lscpu max MHz"
    else:
        try:
            with open("/proc/cpuinfo") as f:
                found = re.findall(r"cpu MHz\s*:\s*([\d.]+)", f.read())
            if found:
                mhz, source = max(float(x) for x in found), "/proc/cpuinfo MHz"
        except OSError:
            pass
    if mhz is None:
        return None, "no clock speed reported"
    peak = cores * mhz / 1e3 * per_cycle
    return peak, f"{cores} cores × {mhz / 1e3:.3f} GHz ({source}) × {per_cycle} FLOP/cycle ({isa}, 2 FMA pipes)"


def measured_peak_gflops(n: int = 2048, repeats: int = 10) -> float:
    """Best GFLOP/s of an n×n float32 NumPy matmul: the practical peak of this machine's BLAS."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    best = min(time_ms(lambda: a @ b, repeats, warmup=2))
    return 2 * n**3 / (best * 1e-3) / 1e9


def blas_description() -> str:
    """Which BLAS numpy runs and with which kernel (threadpoolctl), plus the OpenBLAS env overrides."""
    env = ", ".join(f"{k}={os.environ[k]}" for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ)
    env = env or "OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset"
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return f"threadpoolctl not installed; {env}"
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    parts = [f"{i.get('internal_api')} {i.get('version')} kernel={i.get('architecture')} threads={i.get('num_threads')}"
             for i in blas]
    return "; ".join(parts or ["no BLAS found"]) + f"; {env}"


# ---- memory ----
def _proc_status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


class PeakRSS:
    """Peak resident memory above a baseline, read from the kernel (counts NumPy, torch and numba alike).

    `start()` records the current RSS and resets the high-water mark (Linux /proc/self/clear_refs);
    `peak_mib()` is VmHWM − that baseline in MiB.
    """

    def start(self) -> None:
        gc.collect()
        self.baseline_kib = _proc_status_kib("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")

    def peak_mib(self) -> float:
        return (_proc_status_kib("VmHWM") - self.baseline_kib) / 1024
