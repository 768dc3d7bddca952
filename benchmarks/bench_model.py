"""Whole-model speed and memory, minitransfer vs PyTorch (transformers), side by side on the CPU.

    python benchmarks/bench_model.py [--quick] [--only minilm|distilbert] [--modes inference,train0.1,train0]
                                     [--repeats N] [--rounds N] [--torch-attn sdpa|eager]

Shapes: MiniLM (the real all-MiniLM-L6-v2 checkpoint, BERT, 6 layers, hidden 384) at batch 32 × seq 128, and
DistilBERT-base (a random config, dim 768, 6 layers, 12 heads, hidden 3072, written by transformers'
save_pretrained into a temp dir) at batch 8 × seq 384. Both libraries load the same checkpoint directory.

Modes: inference (eval, no_grad) and one training step, forward + backward (train mode) with the config's
dropout 0.1 and with dropout 0. Loss = sum(last_hidden_state @ v) for a fixed random vector v, in both.
No optimizer step. Inputs: random token ids, attention mask all ones (no padding).

Each (model, mode, library) runs in its own subprocess, so its peak memory is its own, --rounds times (default
3), ours and torch alternating: this machine has slow spells of minutes (the same GEMMs 40% slower), and
alternating puts them on both sides instead of on one library's figure.
  memory = peak RSS (VmHWM) during warmup + timed runs − RSS just before them, model and inputs already
  built (median over rounds). It is read from the kernel, so it counts NumPy, numba and torch allocations.
  ms = median wall time of the timed runs of all rounds (after each process's warmup); tokens/s = batch·seq /
  time. cpu ms = median process CPU time (user + system, all threads) per run: less skewed than wall time by
  other processes.
  GFLOP/s: forward FLOPs = 2 · P · T + 4 · B · L · H · S² · D, where P = weights of the encoder's Linear
  layers (L · (4·hidden² + 2·hidden·ffn)), T = B · S tokens, L layers, H heads, D head_dim; the second term
  is q·kᵀ and p·v. Embeddings, biases, LayerNorm, softmax and GELU are not counted. A training step counts
  3 × forward (backward = 2 GEMMs per forward GEMM).
  % peak: GFLOP/s over the measured peak (best 2048² float32 NumPy matmul, at start and at end of the run).
  checksum (dropout 0 only): sum(last_hidden_state @ v) in float64, ours beside torch's, as a parity check.
Threads: torch.set_num_threads(2); NumPy's OpenBLAS and numba use the machine's 2 cores.
The OpenBLAS kernel NumPy runs (threadpoolctl) and OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are printed;
to measure without them: `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_model.py`.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
from pathlib import Path

# isort: off
import minitransfer  # noqa: F401 -- before NumPy, so its OpenBLAS setting applies as it does in the CLI
import numpy as np
# isort: on

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

SHAPES = {"minilm": (32, 128), "distilbert": (8, 384)}
DISTILBERT_BASE = {"vocab_size": 30522, "dim": 768, "n_layers": 6, "n_heads": 12, "hidden_dim": 3072,
                   "max_position_embeddings": 512}
MODES = [("inference", None), ("train dropout 0.1", 0.1), ("train dropout 0", 0.0)]


# ---- one configuration, in a child process ----
def run_child(spec: dict) -> dict:
    """Build one model, time it, measure its memory; returns ms list, peak MiB and a checksum."""
    batch, seq = spec["batch"], spec["seq"]
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 30000, (batch, seq))
    mask = np.ones((batch, seq), np.int64)
    hidden = spec["hidden"]
    vec = rng.standard_normal(hidden).astype(np.float32)
    dropout = spec["dropout"]
    if spec["impl"] == "ours":
        step, checksum = _ours_step(spec, ids, mask, vec, dropout)
    else:
        step, checksum = _torch_step(spec, ids, mask, vec, dropout)
    memory = common.PeakRSS()
    memory.start()
    times, cpu = common.time_wall_and_cpu_ms(step, spec["repeats"], spec["warmup"])
    return {"ms": times, "cpu_ms": cpu, "peak_mib": memory.peak_mib(), "checksum": checksum()}


def _ours_step(spec, ids, mask, vec, dropout):
    import minitransfer as mt

    cls = mt.BertModel if spec["kind"] == "bert" else mt.DistilBertModel
    overrides = {}
    if dropout is not None:
        keys = ("hidden_dropout_prob", "attention_probs_dropout_prob") if spec["kind"] == "bert" else (
            "dropout", "attention_dropout")
        overrides = {k: dropout for k in keys}
    model = cls.from_pretrained(spec["path"], **overrides)
    v = mt.Tensor(vec)
    last = {}

    def inference():
        model.eval()
        with mt.no_grad():
            last["value"] = model(ids, mask).last_hidden_state.data @ vec  # the loss's projection: rows sum to ~0

    def train():
        model.train()
        model.zero_grad()
        loss = (model(ids, mask).last_hidden_state @ v).sum()
        loss.backward()
        last["value"] = loss.data

    return (inference if dropout is None else train), lambda: float(np.float64(last["value"].sum()))


def _torch_step(spec, ids, mask, vec, dropout):
    import torch
    import transformers

    torch.set_num_threads(2)
    cls = transformers.BertModel if spec["kind"] == "bert" else transformers.DistilBertModel
    overrides = {}
    if dropout is not None:
        keys = ("hidden_dropout_prob", "attention_probs_dropout_prob") if spec["kind"] == "bert" else (
            "dropout", "attention_dropout")
        overrides = {k: dropout for k in keys}
    model = cls.from_pretrained(spec["path"], dtype=torch.float32, attn_implementation=spec["torch_attn"],
                                **overrides)
    ids_t, mask_t, v = torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(vec)
    last = {}

    def inference():
        model.eval()
        with torch.no_grad():
            last["value"] = model(input_ids=ids_t, attention_mask=mask_t).last_hidden_state @ v

    def train():
        model.train()
        model.zero_grad()
        loss = (model(input_ids=ids_t, attention_mask=mask_t).last_hidden_state @ v).sum()
        loss.backward()
        last["value"] = loss.detach()

    return (inference if dropout is None else train), lambda: float(last["value"].double().sum())


# ---- the parent: checkpoints, children, the table ----
def make_distilbert_checkpoint(directory: Path) -> Path:
    import torch
    import transformers

    torch.manual_seed(0)
    transformers.DistilBertModel(transformers.DistilBertConfig(**DISTILBERT_BASE)).save_pretrained(directory)
    return directory


def model_spec(name: str, tmp: Path) -> dict:
    if name == "minilm":
        from minitransfer.io.hub import resolve_model_path

        path = resolve_model_path("minilm")
    else:
        path = make_distilbert_checkpoint(tmp / "distilbert-base")
    config = json.loads((Path(path) / "config.json").read_text())
    if config["model_type"] == "bert":
        hidden, layers, heads, ffn = (config["hidden_size"], config["num_hidden_layers"],
                                      config["num_attention_heads"], config["intermediate_size"])
    else:
        hidden, layers, heads, ffn = config["dim"], config["n_layers"], config["n_heads"], config["hidden_dim"]
    batch, seq = SHAPES[name]
    forward_flops = common.encoder_forward_flops(hidden, layers, heads, ffn, batch, seq)
    return {"name": name, "path": str(path), "kind": config["model_type"], "batch": batch, "seq": seq,
            "hidden": hidden, "forward_flops": forward_flops}


def spawn(spec: dict) -> dict:
    return common.run_in_child(__file__, spec, f"{spec['impl']} {spec['name']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 warmup + 3 timed runs (default 1 + 7)")
    parser.add_argument("--only", choices=sorted(SHAPES), help="one model only")
    parser.add_argument("--repeats", type=int, help="timed runs per configuration and round")
    parser.add_argument("--rounds", type=int, default=3,
                        help="ours/torch process pairs per configuration, alternating (default 3): the machine's "
                             "slow spells then fall on both sides, and the median is over every round's runs")
    parser.add_argument("--modes", default="all", help="comma list of: inference, train0.1, train0 (default all)")
    parser.add_argument("--torch-attn", default="sdpa", choices=["sdpa", "eager"],
                        help="transformers' attention implementation (its default is sdpa)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(json.loads(args.child))))
        return

    import numba
    import torch

    repeats = args.repeats or (3 if args.quick else 7)
    wanted = {"inference": "inference", "train0.1": "train dropout 0.1", "train0": "train dropout 0"}
    modes = MODES if args.modes == "all" else [m for m in MODES if m[0] in {wanted[k] for k in args.modes.split(",")}]
    peak_start = common.measured_peak_gflops()
    theory, how = common.theoretical_peak_gflops()
    print(f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}")
    print(f"machine: {common.cpu_model()}, {os.cpu_count()} cores")
    print(f"numpy BLAS: {common.blas_description()}")
    print(f"torch {torch.__version__}: {torch.get_num_threads()} threads (set to 2 in the children), "
          f"attention={args.torch_attn}; numba {numba.__version__}, {numba.config.NUMBA_NUM_THREADS} threads")
    print(f"load average before: {os.getloadavg()[0]:.2f} (other processes on the machine skew every figure)")
    print(f"timing: median of {args.rounds} rounds x {repeats} runs (1 warmup each); each round of each configuration "
          "in its own process, ours and torch alternating", flush=True)

    measured = []  # (label, mode, flops, tokens, {impl: result})
    with tempfile.TemporaryDirectory() as tmp:
        for name in [args.only] if args.only else list(SHAPES):
            spec = model_spec(name, Path(tmp))
            for mode, dropout in modes:
                rounds = {"ours": [], "torch": []}
                for _ in range(args.rounds):
                    for impl in ("ours", "torch"):
                        child = dict(spec, impl=impl, dropout=dropout, repeats=repeats, warmup=1,
                                     torch_attn=args.torch_attn)
                        rounds[impl].append(spawn(child))
                        print(f"  {name} {mode} {impl}: runs {_fmt(rounds[impl][-1]['ms'])} ms", flush=True)
                results = {impl: pool_rounds(r) for impl, r in rounds.items()}
                flops = spec["forward_flops"] * (1 if dropout is None else 3)
                measured.append((f"{name} {spec['batch']}x{spec['seq']}", mode, flops, spec["batch"] * spec["seq"],
                                 results, dropout))
    peak_end = common.measured_peak_gflops()
    peak = max(peak_start, peak_end)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    print(f"peak float32: measured {peak:.0f} GFLOP/s (best 2048² NumPy matmul of 10, at start {peak_start:.0f}, at "
          f"end {peak_end:.0f}); theoretical " + (f"{theory:.0f} GFLOP/s = {how}" if theory else f"unknown ({how})"))
    print_table(measured, peak)


def pool_rounds(rounds: list[dict]) -> dict:
    """One result from several processes of one configuration: every timed run, the median peak memory."""
    return {"ms": [t for r in rounds for t in r["ms"]], "cpu_ms": [t for r in rounds for t in r["cpu_ms"]],
            "peak_mib": common.median([r["peak_mib"] for r in rounds]), "checksum": rounds[0]["checksum"]}


def print_table(measured, peak: float) -> None:
    print(f"\n{'model':<22}{'mode':<19}{'lib':<6}{'ms':>9}{'tokens/s':>10}{'GFLOP/s':>9}{'%peak':>7}"
          f"{'cpu ms':>9}{'mem MiB':>9}{'speed ours/torch':>24}{'mem ours/torch':>16}")
    for label, mode, flops, tokens, results, dropout in measured:
        ms = {k: common.median(r["ms"]) for k, r in results.items()}
        cpu = {k: common.median(r["cpu_ms"]) for k, r in results.items()}
        for impl in ("ours", "torch"):
            r, t = results[impl], ms[impl]
            gflops = flops / (t / 1e3) / 1e9
            ratio = f"{ms['torch'] / t:.2f}x (cpu {cpu['torch'] / cpu['ours']:.2f}x)" if impl == "ours" else ""
            mem = f"{r['peak_mib'] / results['torch']['peak_mib']:.2f}" if impl == "ours" else ""
            print(f"{label:<22}{mode:<19}{impl:<6}{t:>9.1f}{tokens / (t / 1e3):>10.0f}{gflops:>9.1f}"
                  f"{100 * gflops / peak:>6.1f}%{cpu[impl]:>9.0f}{r['peak_mib']:>9.0f}{ratio:>24}{mem:>16}")
        if not dropout:
            a, b = results["ours"]["checksum"], results["torch"]["checksum"]
            diff = abs(a - b) / max(abs(b), 1e-30)
            print(f"{'':<22}{'':<19}checksum ours {a:.7g} torch {b:.7g} (rel diff {diff:.1e})")
    print("speed ours/torch = torch ms / ours ms (above 1: ours is faster); mem = peak RSS above the pre-run RSS")


def _fmt(times: list[float]) -> str:
    return " ".join(f"{t:.0f}" for t in times)


if __name__ == "__main__":
    main()
