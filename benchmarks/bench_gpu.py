"""Ours vs PyTorch eager AMP on one CUDA GPU, side by side in one process, alternating (issue 18, item 4).

    python benchmarks/bench_gpu.py [--json PATH] [--only attention|qa] [--rounds N] [--repeats N]
    python benchmarks/bench_gpu.py --smoke [--json PATH]     # the same code on the CPU, tiny shapes (seconds)

(a) attention forward and forward+backward at (batch, heads, seq, head_dim) = (32, 12, 384, 64), float16, no mask,
    no dropout:
      ours         minitransfer.ops.attention on CuPy arrays (the dispatch's CudaAttention: cuBLAS q·kᵀ and p·v
                   around kernels/attention_cuda.py's fused scale + mask + softmax + dropout, each way)
      torch_sdpa   torch.nn.functional.scaled_dot_product_attention (flash / memory-efficient kernels)
      torch_eager  softmax(q·kᵀ · scale, float32) · v as transformers' eager attention writes it
    FLOPs (the matmuls only): forward 4·B·H·S²·D; backward 2.5× forward; forward+backward 3.5× forward.
(b) one DistilBERT-base question-answering training step at batch 32 × seq 384 (random token ids, no padding, random
    start/end positions, the config's dropout 0.1, train mode): a random DistilBERT-base config (bench_model's
    DISTILBERT_BASE) saved by transformers' save_pretrained into a temp dir, which both libraries load:
      ours         mt.DistilBertForQuestionAnswering.from_pretrained(dir).to("cuda") (the default padding-free
                   path); forward + loss under mt.autocast(np.float16), GradScaler, AdamW step
      torch_sdpa   transformers' DistilBertForQuestionAnswering (attn_implementation="sdpa", its default), forward +
                   loss under torch.autocast("cuda", float16), torch.amp.GradScaler, torch.optim.AdamW (its default
                   foreach implementation)
      torch_eager  the same with attn_implementation="eager"
    Each step: zero_grad, forward + loss, scaler.scale(loss).backward(), scaler.step(optimizer), scaler.update();
    AdamW lr 5e-5, weight decay 0.01 on every parameter, no clipping. tokens/s = batch · seq / step time. FLOPs per
    step = 3 × common.encoder_forward_flops (Linear layers + attention matmuls). The scaler's final scale gives the
    skipped steps (a skip halves the scale; it grows only after 2000 good steps): a skipped step has no AdamW
    update, so many skips would flatter the time.

Timing: wall clock around whole runs, each run = `inner` calls (attention 10, QA step 1) between two device
synchronizations (cupy.cuda.Device().synchronize() and torch.cuda.synchronize()), so ms = run time / inner. Every
implementation is warmed up (numba-cuda compiles its kernels on first call) and then timed round-robin, --rounds
rounds of --repeats runs each, so a slow spell of the machine falls on all of them; figures are medians of all runs.
"vs torch" = torch's ms / ours (above 1: ours is faster). Targets (issue 18): QA step ≥ 1.0× torch_sdpa tokens/s,
attention forward+backward ≥ 0.5× torch_sdpa.

--smoke runs all of this on the CPU with tiny shapes (attention (2, 2, 16, 8), a 2-layer DistilBERT of dim 32 at
batch 2 × 16): ours on NumPy float32 with the reference kernels (no numba compile; --kernels auto for the CPU
kernels), torch on the CPU, no AMP (disabled scalers, no autocast). It checks this script, not any speed.
--json PATH writes every figure (tests/test_bench_gpu_smoke.py reads the keys).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import platform
import sys
import tempfile
import traceback
from pathlib import Path

# isort: off
import minitransfer as mt  # before NumPy, so its OpenBLAS setting applies as it does in the CLI
import numpy as np
# isort: on

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from bench_model import DISTILBERT_BASE  # noqa: E402

from minitransfer import ops  # noqa: E402
from minitransfer.ops.dispatch import kernels  # noqa: E402

GPU = {"attention": (32, 12, 384, 64), "qa": (32, 384), "config": DISTILBERT_BASE}
SMOKE = {"attention": (2, 2, 16, 8), "qa": (2, 16), "config": {"vocab_size": 100, "dim": 32, "n_layers": 2,
                                                                "n_heads": 2, "hidden_dim": 64,
                                                                "max_position_embeddings": 64}}
BACKWARD_FACTOR = 2.5  # backward FLOPs / forward FLOPs (FlashAttention's convention)


class Device:
    """Where a run computes: the GPU (CuPy for ours, torch "cuda", float16 and AMP) or, with smoke, the CPU (NumPy,
    torch "cpu", float32, no AMP)."""

    def __init__(self, smoke: bool):
        import torch

        self.torch, self.smoke = torch, smoke
        self.name = "cpu" if smoke else "cuda"
        self.dtype = np.float32 if smoke else np.float16
        self.amp = not smoke
        if smoke:
            self.xp = np
        else:
            import cupy

            self.xp = cupy

    def sync(self) -> None:
        if not self.smoke:
            self.xp.cuda.Device().synchronize()
            self.torch.cuda.synchronize()

    def ours(self, array):
        return self.xp.asarray(array)

    def theirs(self, array):
        return self.torch.from_numpy(np.ascontiguousarray(array)).to(self.name)


def environment(device: Device) -> dict:
    import torch
    import transformers

    env = {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
           "transformers": transformers.__version__, "device": device.name}
    try:
        import numba_cuda

        env["numba_cuda"] = getattr(numba_cuda, "__version__", "unknown")
    except ImportError:
        env["numba_cuda"] = None
    if device.smoke:
        env["gpu"] = None
        env["cpu"] = common.cpu_model()
        return env
    cupy = device.xp
    runtime = cupy.cuda.runtime
    name = runtime.getDeviceProperties(0)["name"]
    env.update(gpu=name.decode() if isinstance(name, bytes) else name, torch_gpu=torch.cuda.get_device_name(0),
               cupy=cupy.__version__, cuda_runtime_cupy=runtime.runtimeGetVersion(),
               cuda_driver=runtime.driverGetVersion(), torch_cuda=torch.version.cuda,
               gpu_memory_gib=round(runtime.getDeviceProperties(0)["totalGlobalMem"] / 2**30, 1))
    return env


# ---- timing ----
def alternate(closures: dict, device: Device, rounds: int, repeats: int, inner: int,
              errors: dict) -> dict[str, list[float]]:
    """ms per call of every closure, timed round-robin: each round times `repeats` runs of each closure, a run
    being `inner` calls between two synchronizations. A closure whose first call raises is left out, its error
    in `errors` (one failing implementation must not cost the others' figures in a one-shot GPU run)."""
    def run(fn):
        def calls():
            for _ in range(inner):
                fn()
            device.sync()
        return calls

    for name, fn in list(closures.items()):  # compile, allocate, pick the cuBLAS algorithms
        try:
            run(fn)()
        except Exception as e:  # noqa: BLE001 -- recorded, reported, and the exit status says so
            errors[name] = failure(e)
            del closures[name]
    times = {name: [] for name in closures}
    for _ in range(rounds):
        for name, fn in closures.items():
            device.sync()
            times[name] += [t / inner for t in common.time_ms(run(fn), repeats, warmup=1)]
    return times


def tflops(flops: float, ms: float) -> float:
    return flops / (ms * 1e-3) / 1e12


def failure(error: Exception) -> str:
    """The error's traceback, printed now and kept for the JSON."""
    text = "".join(traceback.format_exception(error))
    print(text, file=sys.stderr, flush=True)
    return text[-4000:]


def speedup(results: dict, theirs: str, key: str) -> float | None:
    """theirs' time / ours (above 1: ours is faster); None where either failed."""
    if "ours" not in results or theirs not in results:
        return None
    return results[theirs][key] / results["ours"][key]


# ---- (a) attention ----
def attention_closures(device: Device, shape) -> tuple[dict, dict]:
    """({impl: (forward, forward_backward)}, differences of ours against torch_sdpa, output and input gradients)."""
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(0)
    q, k, v, grad = (rng.standard_normal(shape, dtype=np.float32).astype(device.dtype) for _ in range(4))
    scale = 1.0 / math.sqrt(shape[-1])
    ours_in, ours_grad = [device.ours(x) for x in (q, k, v)], device.ours(grad)
    torch_in, torch_grad = [device.theirs(x) for x in (q, k, v)], device.theirs(grad)

    def ours_forward():
        with mt.no_grad():
            return ops.attention(*ours_in)

    def ours_forward_backward():
        leaves = [mt.Tensor(x, requires_grad=True) for x in ours_in]
        ops.attention(*leaves, training=True).backward(ours_grad)
        return leaves

    def eager(q, k, v):
        probs = torch.softmax(q @ k.transpose(-1, -2) * scale, dim=-1, dtype=torch.float32).to(q.dtype)
        return probs @ v

    def torch_pair(attend):
        def forward():
            with torch.no_grad():
                return attend(*torch_in)

        def forward_backward():
            leaves = [x.detach().requires_grad_() for x in torch_in]
            attend(*leaves).backward(torch_grad)
            return leaves

        return forward, forward_backward

    closures = {"ours": (ours_forward, ours_forward_backward),
                "torch_sdpa": torch_pair(F.scaled_dot_product_attention), "torch_eager": torch_pair(eager)}
    try:
        return closures, differences(closures)
    except Exception as e:  # noqa: BLE001 -- the timings below still run; the JSON keeps the error
        return closures, {"error": failure(e)}


def differences(closures: dict) -> dict:
    """max |ours - torch_sdpa| of the output and of each input's gradient."""
    (ours_forward, ours_forward_backward), (sdpa_forward, sdpa_forward_backward) = (closures["ours"],
                                                                                    closures["torch_sdpa"])
    ours_grads = [mt.backend.to_numpy(t.grad.data).astype(np.float32) for t in ours_forward_backward()]
    sdpa_grads = [t.grad.float().cpu().numpy() for t in sdpa_forward_backward()]
    out_diff = np.abs(ours_forward().numpy().astype(np.float32) - sdpa_forward().float().cpu().numpy()).max()
    return {"out": float(out_diff)} | {f"d{name}": float(np.abs(a - b).max())
                                       for name, a, b in zip("qkv", ours_grads, sdpa_grads)}


def bench_attention(device: Device, shape, rounds: int, repeats: int) -> dict:
    from minitransfer.ops.attention import CudaAttention, FusedAttention, ReferenceAttention
    from minitransfer.ops.dispatch import pick

    closures, diffs = attention_closures(device, shape)
    errors = {}
    probe = [device.ours(np.zeros((1, 1, 2, 2), device.dtype))] * 3
    forward = common.attention_flops(*shape)
    flops = {"forward": forward, "forward_backward": forward * (1 + BACKWARD_FACTOR)}
    results = {name: {} for name in closures}
    for phase, index in (("forward", 0), ("forward_backward", 1)):
        times = alternate({name: pair[index] for name, pair in closures.items() if name not in errors}, device,
                          rounds, repeats, inner=10, errors=errors)
        for name, runs in times.items():
            ms = common.median(runs)
            results[name] |= {f"{phase}_ms": ms, f"{phase}_tflops": tflops(flops[phase], ms), f"{phase}_runs": runs}
    results = {name: r for name, r in results.items() if name not in errors}
    vs = {phase: speedup(results, "torch_sdpa", f"{phase}_ms") for phase in flops}
    return {"shape": list(shape), "dtype": np.dtype(device.dtype).name, "mask": None, "dropout": 0.0,
            "ours_class": pick(ReferenceAttention, [FusedAttention, CudaAttention], *probe).__name__,
            "flops": flops, "flops_convention": "forward 4*B*H*S^2*D (q.k^T and p.v); backward 2.5x forward; "
                                                "forward_backward 3.5x forward; softmax/mask/dropout not counted",
            "results": results, "errors": errors, "ours_vs_torch_sdpa": vs, "max_abs_diff_vs_torch_sdpa": diffs}


# ---- (b) the DistilBERT QA training step ----
def qa_batch(config: dict, batch: int, seq: int) -> dict:
    rng = np.random.default_rng(0)
    starts = rng.integers(1, seq // 2, batch)
    return {"input_ids": rng.integers(5, config["vocab_size"], (batch, seq)),
            "attention_mask": np.ones((batch, seq), np.int64),
            "start_positions": starts, "end_positions": starts + rng.integers(0, seq // 2, batch)}


def ours_qa_step(device: Device, path: Path, batch: dict):
    """(step, state): one AMP training step of our model; state holds the last loss (a Tensor) and the scaler."""
    from minitransfer.models import DistilBertForQuestionAnswering
    from minitransfer.optim import AdamW, GradScaler

    model = DistilBertForQuestionAnswering.from_pretrained(path).to(device.name).train()
    optimizer = AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)
    state = {"scaler": GradScaler(enabled=device.amp)}
    inputs = {name: device.ours(array) for name, array in batch.items()}

    def step():
        optimizer.zero_grad()
        with mt.autocast(np.float16) if device.amp else contextlib.nullcontext():
            state["loss"] = model(**inputs).loss
        state["scaler"].scale(state["loss"]).backward()
        state["scaler"].step(optimizer)
        state["scaler"].update()

    return step, state


def torch_qa_step(device: Device, path: Path, batch: dict, attention: str):
    import torch
    import transformers

    model = transformers.DistilBertForQuestionAnswering.from_pretrained(
        path, dtype=torch.float32, attn_implementation=attention).to(device.name).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)
    state = {"scaler": torch.amp.GradScaler(device.name, enabled=device.amp)}
    inputs = {name: device.theirs(array) for name, array in batch.items()}

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.name, dtype=torch.float16, enabled=device.amp):
            state["loss"] = model(**inputs).loss
        state["scaler"].scale(state["loss"]).backward()
        state["scaler"].step(optimizer)
        state["scaler"].update()

    return step, state


def ops_of_one_step(step) -> list[str]:
    """The op classes one (untimed) step of ours runs: on the GPU, the Cuda* ones show the dispatch took the
    CUDA kernels."""
    with mt.profile() as prof:
        step()
    return sorted({record.name for record in prof.records if record.phase != "region"})


def bench_qa(device: Device, sizes: dict, rounds: int, repeats: int) -> dict:
    import torch
    import transformers

    config, (batch, seq) = sizes["config"], sizes["qa"]
    inputs = qa_batch(config, batch, seq)
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        transformers.DistilBertForQuestionAnswering(transformers.DistilBertConfig(**config)).save_pretrained(tmp)
        builders = {"ours": lambda: ours_qa_step(device, Path(tmp), inputs),
                    "torch_sdpa": lambda: torch_qa_step(device, Path(tmp), inputs, "sdpa"),
                    "torch_eager": lambda: torch_qa_step(device, Path(tmp), inputs, "eager")}
        steps, errors = {}, {}
        for name, build in builders.items():
            try:
                steps[name] = build()
            except Exception as e:  # noqa: BLE001 -- recorded, reported, and the exit status says so
                errors[name] = failure(e)
    ops = []
    if "ours" in steps:
        try:
            ops = ops_of_one_step(steps["ours"][0])
        except Exception as e:  # noqa: BLE001 -- the profiler's failure, or the step's: alternate's first call tells
            errors["ours_ops"] = failure(e)
    if not device.smoke:
        torch.cuda.reset_peak_memory_stats()
    times = alternate({name: step for name, (step, _) in steps.items()}, device, rounds, repeats, inner=1,
                      errors=errors)
    flops = 3 * common.encoder_forward_flops(config["dim"], config["n_layers"], config["n_heads"],
                                             config["hidden_dim"], batch, seq)
    steps_run = 1 + rounds * (repeats + 1)  # alternate's: a first call, then a warmup and the runs per round
    results = {}
    for name, runs in times.items():
        ms, scaler = common.median(runs), steps[name][1]["scaler"]
        scale = float(scaler.get_scale())
        results[name] = {"ms": ms, "tokens_per_s": batch * seq / (ms * 1e-3), "tflops": tflops(flops, ms),
                         "runs": runs, "last_loss": float(steps[name][1]["loss"].item()), "final_scale": scale,
                         "skipped_steps": round(math.log2(2.0**16 / scale)) if device.amp else 0,
                         "steps": steps_run + (name == "ours")}  # ours: + the profiled step
    memory = {}
    if not device.smoke:
        memory = {"ours_cupy_pool_bytes": device.xp.get_default_memory_pool().total_bytes(),
                  "torch_max_allocated_bytes": torch.cuda.max_memory_allocated()}
    return {"batch": batch, "seq": seq, "config": config, "dtype": "float16 autocast" if device.amp else "float32",
            "flops_per_step": flops, "ours_ops": ops, "ours_cuda_ops": [op for op in ops if op.startswith("Cuda")],
            "results": results, "errors": errors, "memory": memory,
            "ours_vs_torch_sdpa": speedup(results, "torch_sdpa", "ms"),
            "ours_vs_torch_eager": speedup(results, "torch_eager", "ms")}


# ---- the report ----
def _x(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.2f}x"


def print_attention(report: dict) -> None:
    print(f"\nattention {tuple(report['shape'])} {report['dtype']}, ours = {report['ours_class']}; "
          f"{report['flops_convention']}")
    print(f"{'impl':<13}{'fwd ms':>9}{'TFLOP/s':>9}{'fwd+bwd ms':>12}{'TFLOP/s':>9}")
    for name, r in report["results"].items():
        if "forward_backward_ms" in r:
            print(f"{name:<13}{r['forward_ms']:>9.3f}{r['forward_tflops']:>9.1f}{r['forward_backward_ms']:>12.3f}"
                  f"{r['forward_backward_tflops']:>9.1f}")
    vs, diff = report["ours_vs_torch_sdpa"], report["max_abs_diff_vs_torch_sdpa"]
    print(f"ours vs torch_sdpa: forward {_x(vs['forward'])}, forward+backward {_x(vs['forward_backward'])} (target "
          ">= 0.5x); max |ours - sdpa|: " + ", ".join(f"{k} {v:.1e}" for k, v in diff.items() if k != "error"))
    for name in report["errors"]:
        print(f"FAILED: {name} (traceback above and in the JSON)")


def print_qa(report: dict) -> None:
    print(f"\nDistilBERT QA training step, batch {report['batch']} x {report['seq']}, {report['dtype']}, "
          f"{report['flops_per_step'] / 1e12:.2f} TFLOP per step")
    print(f"{'impl':<13}{'ms':>9}{'tokens/s':>11}{'TFLOP/s':>9}{'last loss':>11}{'scale':>9}{'skipped':>9}")
    for name, r in report["results"].items():
        print(f"{name:<13}{r['ms']:>9.2f}{r['tokens_per_s']:>11.0f}{r['tflops']:>9.1f}{r['last_loss']:>11.4f}"
              f"{r['final_scale']:>9.0f}{r['skipped_steps']:>6}/{r['steps']}")
    print(f"ours vs torch_sdpa {_x(report['ours_vs_torch_sdpa'])} (target >= 1.0x), vs torch_eager "
          f"{_x(report['ours_vs_torch_eager'])}; ours' CUDA ops: {', '.join(report['ours_cuda_ops']) or 'none'}")
    if report["memory"]:
        print(f"memory: ours' CuPy pool {report['memory']['ours_cupy_pool_bytes'] / 2**30:.1f} GiB held; torch "
              f"peak allocated {report['memory']['torch_max_allocated_bytes'] / 2**30:.1f} GiB")
    for name in report["errors"]:
        print(f"FAILED: {name} (traceback above and in the JSON)")


SECTIONS = {"attention": (lambda device, sizes, rounds, repeats: bench_attention(device, sizes["attention"], rounds,
                                                                                 repeats), print_attention),
            "qa_step": (bench_qa, print_qa)}


def main(argv=None) -> int:
    """Run the benchmarks; 0, or 1 when any implementation or section failed (the JSON says which)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="on the CPU, tiny shapes, no AMP: checks the script")
    parser.add_argument("--json", type=Path, help="write every figure here (rewritten after each section)")
    parser.add_argument("--only", choices=sorted(SECTIONS), help="one benchmark only")
    parser.add_argument("--rounds", type=int, default=3, help="round-robin rounds (default 3; --smoke 1)")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per round and implementation (default "
                                                                "10; --smoke 2)")
    parser.add_argument("--kernels", choices=["auto", "reference"],
                        help="minitransfer's kernel switch (default auto; --smoke: reference)")
    args = parser.parse_args(argv)
    rounds, repeats = (1, 2) if args.smoke else (args.rounds, args.repeats)
    device = Device(args.smoke)
    if device.smoke:
        device.torch.set_num_threads(2)
    choice = args.kernels or ("reference" if args.smoke else "auto")
    report = {"date": f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}",
              "mode": "smoke" if args.smoke else "gpu", "kernels": choice, "environment": environment(device),
              "timing": f"median of {rounds} rounds x {repeats} runs, round-robin, synchronized"}
    print(f"date: {report['date']}; mode: {report['mode']}; minitransfer kernels: {choice}")
    for key, value in report["environment"].items():
        print(f"  {key}: {value}")
    sizes, failed = SMOKE if args.smoke else GPU, False
    for key, (run, show) in SECTIONS.items():
        if args.only not in (None, key):
            continue
        try:
            with kernels(choice):
                report[key] = run(device, sizes, rounds, repeats)
            show(report[key])
            failed |= bool(report[key]["errors"])
        except Exception as e:  # noqa: BLE001 -- the next section still runs; the exit status says so
            report[key], failed = {"error": failure(e)}, True
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=1))
    if args.json:
        print(f"\nwrote {args.json}")
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
