"""Attention alone, minitransfer's fused numba kernel vs its NumPy reference vs PyTorch's SDPA, on the CPU.

    python benchmarks/bench_attention.py [--repeats N] [--quick] [--model] [--threads N]

    --threads N sets numba's and torch's thread counts (default: all cores); NumPy's OpenBLAS (the
    reference) follows OPENBLAS_NUM_THREADS, e.g. `OPENBLAS_NUM_THREADS=1 ... --threads 1`.

Shapes (batch, heads, seq, head_dim), float32, no padding: (8, 12, 384, 64) -- BERT-base heads at seq 384 --
and (32, 12, 128, 32), MiniLM's attention at batch 32 x seq 128. Each with dropout 0 and 0.1 (training).

  fused      FusedAttention (kernels/attention_cpu.py; what ops.attention picks for NumPy floats), via autograd
  reference  ReferenceAttention (NumPy/OpenBLAS matmuls, full (S x S) probabilities kept for backward)
  torch      torch.nn.functional.scaled_dot_product_attention, same inputs, same thread count

ms = median of the timed runs, taken round-robin across the three after one warm-up each; fwd+bwd = forward
then backward of a fixed random upstream gradient. GFLOP/s counts the two attention matmuls, 4 B H S^2 D for
forward, and 3.5x that for forward + backward (FlashAttention's benchmark: backward = 2.5x forward, from 5
matmuls to forward's 2). Softmax, exp and dropout are not counted. "vs torch" = torch's ms / ours (above 1:
ours is faster).

--model also times one MiniLM training step (AutoModel.from_pretrained("minilm"), batch 32 x seq 128,
config dropout, forward + backward of sum(last_hidden_state)) with the fused kernels and with every op on its
reference (minitransfer.ops.dispatch.kernels("reference"), the in-process MINITRANSFER_KERNELS=reference), alternating.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

SHAPES = [(8, 12, 384, 64), (32, 12, 128, 32)]


def ours(kind: str, q, k, v, grad, dropout_p: float):
    """(forward, forward+backward) closures for minitransfer's fused or reference attention."""
    import minitransfer
    from minitransfer.ops.attention import FusedAttention, ReferenceAttention

    impl = FusedAttention if kind == "fused" else ReferenceAttention

    def forward():
        with minitransfer.no_grad():
            impl(None, dropout_p)(q, k, v)

    def forward_backward():
        tensors = [minitransfer.Tensor(x, requires_grad=True) for x in (q, k, v)]
        impl(None, dropout_p)(*tensors).backward(grad)

    return forward, forward_backward


def torch_sdpa(q, k, v, grad, dropout_p: float):
    import torch
    import torch.nn.functional as F

    tq, tk, tv, tg = (torch.from_numpy(x) for x in (q, k, v, grad))

    def forward():
        with torch.no_grad():
            F.scaled_dot_product_attention(tq, tk, tv, dropout_p=dropout_p)

    def forward_backward():
        leaves = [x.detach().requires_grad_() for x in (tq, tk, tv)]
        F.scaled_dot_product_attention(*leaves, dropout_p=dropout_p).backward(tg)

    return forward, forward_backward


def bench_shape(shape, dropout_p: float, repeats: int) -> None:
    rng = np.random.default_rng(0)
    q, k, v, grad = (rng.standard_normal(shape, dtype=np.float32) for _ in range(4))
    batch, heads, seq, dim = shape
    flops = {"fwd": 4 * batch * heads * seq * seq * dim}
    flops["fwd+bwd"] = 3.5 * flops["fwd"]
    rows = {"fused": ours("fused", q, k, v, grad, dropout_p), "reference": ours("reference", q, k, v, grad, dropout_p),
            "torch sdpa": torch_sdpa(q, k, v, grad, dropout_p)}
    runs = {name: ([], []) for name in rows}
    for fns in rows.values():
        for fn in fns:
            fn()  # warm-up
    for _ in range(repeats):  # round-robin, so load from other processes hits every library alike
        for name, fns in rows.items():
            for fn, times in zip(fns, runs[name]):
                times += common.time_ms(fn, 1, warmup=0)
    ms = {name: [common.median(t) for t in times] for name, times in runs.items()}
    print(f"\n{shape} float32, dropout {dropout_p}")
    print(f"  {'':<11}{'fwd ms':>9}{'GFLOP/s':>9}{'vs torch':>9}   {'fwd+bwd ms':>11}{'GFLOP/s':>9}{'vs torch':>9}")
    for name, (fwd, both) in ms.items():
        cells = []
        for t, theirs, key in ((fwd, ms["torch sdpa"][0], "fwd"), (both, ms["torch sdpa"][1], "fwd+bwd")):
            cells.append(f"{t:>{9 if key == 'fwd' else 11}.1f}{flops[key] / t / 1e6:>9.1f}{theirs / t:>8.2f}x")
        print(f"  {name:<11}{cells[0]}   {cells[1]}")


def bench_model(repeats: int) -> None:
    import minitransfer
    from minitransfer.models import AutoModel
    from minitransfer.ops import dispatch

    model = AutoModel.from_pretrained("minilm")
    model.train()
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 20000, (32, 128))
    mask = np.ones((32, 128), dtype=np.int64)

    def step():
        minitransfer.manual_seed(0)
        out = model(input_ids=ids, attention_mask=mask).last_hidden_state
        out.sum().backward()
        for p in model.parameters():
            p.grad = None

    print("\nMiniLM training step (batch 32 x seq 128, config dropout), forward + backward:")
    times = {"fused": [], "reference": []}
    step()  # warm-up: numba's cache load, first allocations
    for _ in range(repeats):  # alternate, so load from other processes hits both alike
        for label in times:
            with dispatch.kernels("reference" if label == "reference" else "auto"):
                times[label] += common.time_ms(step, 1, warmup=0)
    for label, t in times.items():
        print(f"  {label:<10} median {common.median(t):7.1f} ms  (runs: {', '.join(f'{x:.0f}' for x in t)})")
    speedup = common.median(times["reference"]) / common.median(times["fused"])
    print(f"  step speed-up from the fused kernels: {speedup:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per measurement (median reported)")
    parser.add_argument("--quick", action="store_true", help="3 repeats, dropout 0 only")
    parser.add_argument("--model", action="store_true", help="also time a MiniLM training step, fused vs reference")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="numba and torch threads")
    args = parser.parse_args()
    repeats = 3 if args.quick else args.repeats

    import numba
    import torch

    torch.set_num_threads(args.threads)
    numba.set_num_threads(args.threads)
    peak, how = common.theoretical_peak_gflops()
    print(f"CPU: {common.cpu_model()}, {os.cpu_count()} cores; peak {peak and f'{peak:.0f}'} GFLOP/s ({how})")
    print(f"numba {numba.__version__} threads={numba.get_num_threads()}; torch {torch.__version__} "
          f"threads={torch.get_num_threads()}; numpy BLAS: {common.blas_description()}")
    print("load average (1, 5, 15 min) at start: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    for shape in SHAPES:
        for dropout_p in (0.0,) if args.quick else (0.0, 0.1):
            bench_shape(shape, dropout_p, repeats)
    if args.model:
        bench_model(3 if args.quick else 5)
    print("\nload average at end: {:.1f} {:.1f} {:.1f} (above the core count, other processes shared the CPU)"
          .format(*os.getloadavg()))


if __name__ == "__main__":
    main()
