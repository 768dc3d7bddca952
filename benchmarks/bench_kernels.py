"""The fused CPU kernels beside the NumPy compositions they replaced and PyTorch's ops, at MiniLM's shapes.

    python benchmarks/bench_kernels.py [--repeats N]

A kernel stays in kernels/ only while this shows it beating the composition it replaced (issue 6). Rows:

  LayerNorm fwd / bwd   (32, 128, 384) float32   kernels/layer_norm_cpu.py  vs  kernels/layer_norm_reference.py (NumPy)
  GELU fwd / bwd        (32, 128, 1536) float32  kernels/gelu_cpu.py        vs  kernels/gelu_reference.py (numba ufunc
                                                                                over math.erf, the first version)
  dropout fwd + bwd     (32, 128, 384) p=0.1     kernels/dropout_cpu.py     vs  a stored NumPy keep-mask
  bias+GELU fwd / bwd   (32, 128, 1536) float32  gelu_cpu.bias_gelu_*       vs  y + bias, then the GELU kernel (and
                                                                                the bias gradient as a NumPy sum)
  bias+dropout+residual+LayerNorm fwd / bwd, (32, 128, 384) p=0.1, kernels/residual_layer_norm_cpu.py  vs  the
                        kernels it replaced in a row: y + bias, dropout kernel, + residual, LayerNorm kernel
  AdamW step            all 22.7M MiniLM params  kernels/adamw_cpu.py       vs  kernels/adamw_reference.py (NumPy ops
                                                                                through a scratch array; CuPy's path)
  clip_grad_norm_       same                     minitransfer.optim         vs  torch.nn.utils.clip_grad_norm_

ms = median of `repeats` timed calls after one warm-up; "fused / composition" = composition ms / fused ms,
"vs torch" = torch ms / fused ms (both above 1: the fused kernel is faster). torch runs with all cores.
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()

    import torch
    from minitransfer.kernels import (
        dropout_cpu,
        gelu_cpu,
        gelu_reference,
        layer_norm_cpu,
        layer_norm_reference,
        residual_layer_norm_cpu,
    )

    import minitransfer as mt
    from minitransfer.ops import dispatch
    from minitransfer.optim import AdamW, clip_grad_norm_

    torch.set_num_threads(os.cpu_count() or 1)
    rng = np.random.default_rng(0)
    r = args.repeats

    def row(name, fused, composition, torch_fn):
        f = common.median(common.time_ms(fused, r))
        c = common.median(common.time_ms(composition, r)) if composition else None
        t = common.median(common.time_ms(torch_fn, r)) if torch_fn else None
        print(_format((name, f, c, t)), flush=True)

    print(f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}; machine: {common.cpu_model()}, "
          f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}; torch {torch.__version__}")
    print(f"numpy BLAS: {common.blas_description()}; median of {r} after 1 warm-up")
    print(f"{'op':<42}{'fused ms':>10}{'composition ms':>16}{'torch ms':>10}{'fused/comp.':>13}{'vs torch':>10}")

    # LayerNorm
    x = rng.standard_normal((32, 128, 384), dtype=np.float32)
    gy = rng.standard_normal(x.shape, dtype=np.float32)
    w, b = rng.standard_normal(384, dtype=np.float32), rng.standard_normal(384, dtype=np.float32)
    _, mean, rstd = layer_norm_cpu.layer_norm_forward(x, w, b, 1e-12)
    xt, wt, bt = (torch.from_numpy(a) for a in (x, w, b))
    row("LayerNorm forward (32,128,384)", lambda: layer_norm_cpu.layer_norm_forward(x, w, b, 1e-12),
        lambda: layer_norm_reference.layer_norm_forward(x, w, b, 1e-12),
        lambda: torch.nn.functional.layer_norm(xt, (384,), wt, bt, 1e-12))
    xg = xt.clone().requires_grad_(True)
    yt = torch.nn.functional.layer_norm(xg, (384,), wt.requires_grad_(True), bt.requires_grad_(True), 1e-12)
    gyt = torch.from_numpy(gy)
    row("LayerNorm backward", lambda: layer_norm_cpu.layer_norm_backward(x, gy, w, mean, rstd),
        lambda: layer_norm_reference.layer_norm_backward(x, gy, w, mean, rstd),
        lambda: torch.autograd.grad(yt, (xg, wt, bt), gyt, retain_graph=True))

    # GELU
    h = rng.standard_normal((32, 128, 1536), dtype=np.float32)
    gh = rng.standard_normal(h.shape, dtype=np.float32)
    ht = torch.from_numpy(h)
    row("GELU forward (32,128,1536)", lambda: gelu_cpu.gelu_forward(h), lambda: gelu_reference.gelu_forward(h),
        lambda: torch.nn.functional.gelu(ht))
    hg = ht.clone().requires_grad_(True)
    ygt = torch.nn.functional.gelu(hg)
    ght = torch.from_numpy(gh)
    row("GELU backward", lambda: gelu_cpu.gelu_backward(h, gh), lambda: gelu_reference.gelu_backward(h, gh),
        lambda: torch.autograd.grad(ygt, hg, ght, retain_graph=True))

    # dropout, forward + backward: the fused mask is a hash of (seed, index), regenerated instead of stored
    def stored_mask_dropout():
        keep = rng.random(x.shape, dtype=np.float32) >= 0.1
        scaled = keep * np.float32(1 / 0.9)
        return x * scaled, gy * scaled

    xd = xt.clone().requires_grad_(True)

    def torch_dropout():
        y = torch.nn.functional.dropout(xd, 0.1, training=True)
        return torch.autograd.grad(y, xd, gyt)

    row("dropout p=0.1 fwd+bwd (32,128,384)",
        lambda: (dropout_cpu.dropout_apply(x, 7, 0.1), dropout_cpu.dropout_apply(gy, 7, 0.1)),
        stored_mask_dropout, torch_dropout)

    # bias + GELU: the FFN's first Linear computed without its bias, then one kernel each way
    bh = rng.standard_normal(1536, dtype=np.float32)
    bht = torch.from_numpy(bh)
    row("bias+GELU forward (32,128,1536)", lambda: gelu_cpu.bias_gelu_forward(h, bh),
        lambda: gelu_cpu.gelu_forward(h + bh), lambda: torch.nn.functional.gelu(ht + bht))
    hb, bb = ht.clone().requires_grad_(True), bht.clone().requires_grad_(True)
    ybt = torch.nn.functional.gelu(hb + bb)
    row("bias+GELU backward", lambda: gelu_cpu.bias_gelu_backward(h, bh, gh),
        lambda: (lambda g: (g, g.reshape(-1, 1536).sum(axis=0)))(gelu_cpu.gelu_backward(h + bh, gh)),
        lambda: torch.autograd.grad(ybt, (hb, bb), ght, retain_graph=True))

    # the end of a sub-block: LayerNorm(dropout(y + bias) + residual)
    res = rng.standard_normal(x.shape, dtype=np.float32)
    lw, lb = w, b

    def composed_block_forward():
        z = dropout_cpu.dropout_apply(x + bh[:384], 7, 0.1)
        return layer_norm_cpu.layer_norm_forward(z + res, lw, lb, 1e-12)

    _, s_saved, mean_s, rstd_s = residual_layer_norm_cpu.forward(x, bh[:384], res, lw, lb, 1e-12, 0.1, 7)
    _, mean_c, rstd_c = composed_block_forward()

    def composed_block_backward():
        gs = layer_norm_cpu.layer_norm_backward(s_saved, gy, lw, mean_c, rstd_c)[0]
        gz = dropout_cpu.dropout_apply(gs, 7, 0.1)
        return gs, gz, gz.reshape(-1, 384).sum(axis=0)

    rt, bt384 = torch.from_numpy(res), torch.from_numpy(bh[:384].copy())
    row("bias+dropout+residual+LN fwd (32,128,384)",
        lambda: residual_layer_norm_cpu.forward(x, bh[:384], res, lw, lb, 1e-12, 0.1, 7), composed_block_forward,
        lambda: torch.nn.functional.layer_norm(torch.nn.functional.dropout(xt + bt384, 0.1) + rt, (384,), wt, bt,
                                               1e-12))
    yb, bb384, rb = (a.clone().requires_grad_(True) for a in (xt, bt384, rt))
    yblock = torch.nn.functional.layer_norm(torch.nn.functional.dropout(yb + bb384, 0.1) + rb, (384,), wt, bt, 1e-12)
    row("bias+dropout+residual+LN backward",
        lambda: residual_layer_norm_cpu.backward(gy, s_saved, lw, mean_s, rstd_s, 0.1, 7), composed_block_backward,
        lambda: torch.autograd.grad(yblock, (yb, bb384, rb, wt, bt), gyt, retain_graph=True))

    # optimizer over MiniLM's real parameter shapes
    model = mt.AutoModel.from_pretrained("minilm")
    params = [p for p in model.parameters()]
    for p in params:
        p.grad = mt.Tensor(rng.standard_normal(p.shape, dtype=np.float32) * 1e-3)
    optimizer = AdamW(params, lr=5e-5, weight_decay=0.01)
    composed = [mt.nn.Parameter(p.data.copy()) for p in params]
    for c, p in zip(composed, params):
        c.grad = p.grad
    composition = AdamW(composed, lr=5e-5, weight_decay=0.01)

    def composition_step():
        with dispatch.kernels("reference"):  # kernels/adamw_reference.py on the same NumPy arrays
            composition.step()

    tparams = [torch.from_numpy(p.data.copy()).requires_grad_(True) for p in params]
    for tp, p in zip(tparams, params):
        tp.grad = torch.from_numpy(p.grad.data.copy())
    topt = {fe: torch.optim.AdamW(tparams, lr=5e-5, weight_decay=0.01, foreach=fe) for fe in (False, True)}
    n = sum(p.size for p in params)
    row(f"AdamW step ({n / 1e6:.1f}M params), torch foreach", optimizer.step,
        composition_step, topt[True].step)
    row("  same, torch foreach=False", optimizer.step, None, topt[False].step)
    row("clip_grad_norm_ (max norm 1.0)", lambda: clip_grad_norm_(params, 1.0), None,
        lambda: torch.nn.utils.clip_grad_norm_(tparams, 1.0))
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def _format(entry) -> str:
    name, f, c, t = entry
    fmt = lambda v: f"{v:.2f}" if v is not None else "-"  # noqa: E731
    ratio = lambda a: f"{a / f:.2f}x" if a is not None else "-"  # noqa: E731
    return f"{name:<42}{fmt(f):>10}{fmt(c):>16}{fmt(t):>10}{ratio(c):>13}{ratio(t):>10}"


if __name__ == "__main__":
    main()
