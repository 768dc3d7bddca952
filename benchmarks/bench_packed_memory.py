"""Memory of a training step on real-length batches: ours packed, ours padded, PyTorch + transformers (padded).

    python benchmarks/bench_packed_memory.py [--rows sst2,qa] [--batches 5] [--seed 0]

The same batches as bench_packed.py (SST-2 random batches of 32 padded to the longest; SQuAD windows padded to
384, batches of 8), the same checkpoint and fresh heads, the checkpoint's dropout 0.1. Each (row, side) runs in
its own process, so its peak is its own: one step on a single row first (kernels loaded, next to nothing kept
by the allocator), then the high-water mark is reset and one forward + backward per batch runs.
  peak MiB = peak RSS (VmHWM) during those steps − RSS just before them: what training steps add on top of the
  model and the inputs: the gradients (no optimizer step is taken) and the activations saved for backward, which
  the packed path keeps for real tokens only. The children run with MINITRANSFER_KEEP_FREED_MEMORY=0: with
  minitransfer's default malloc setting freed activations stay mapped for the next step (faster, and it hides
  them from RSS), while glibc's defaults return large blocks at once, so RSS follows what is alive on both sides.
"""
from __future__ import annotations

import argparse
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
import bench_packed
import common

SIDES = ("ours packed", "ours padded", "torch")


def child(spec: dict) -> dict:
    import minitransfer as mt

    row, side = spec["row"], spec["side"]
    batches = make_batches(row, spec["batches"], spec["seed"])
    head = "qa" if row == "qa" else "cls"
    targets = ("start_positions", "end_positions") if head == "qa" else ("labels",)
    dirs = {head: Path(spec["heads"][head])}
    models = bench_packed.Models(dirs, padding_free=side == "ours packed", torch_attn="sdpa")
    if side == "torch":
        import torch

        torch.set_num_threads(2)
        model = models.torch(head, None).train()
        batches = [{k: torch.from_numpy(v) for k, v in b.items()} for b in batches]
        step = bench_packed.torch_step
    else:
        model = models.ours(head, None).train()
        step = bench_packed.ours_step
    mt.manual_seed(0)
    step(model, {k: v[:1] for k, v in batches[0].items()}, targets, True)  # kernels loaded, on one row only
    model.zero_grad()
    memory = common.PeakRSS()
    memory.start()
    for b in batches:
        step(model, b, targets, True)
    return {"peak_mib": memory.peak_mib()}


def make_batches(row: str, n: int, seed: int):
    tokenizer = minitransfer.AutoTokenizer.from_pretrained(model_path())
    source = bench_packed.row_source(row, None)
    if row == "qa":
        return bench_packed.qa_batches(source, tokenizer, n, 8, seed)
    return bench_packed.classification_batches(source, tokenizer, n, 32, seed)


def model_path() -> Path:
    from minitransfer.io.hub import fetch_minilm

    return Path(fetch_minilm())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default="sst2,qa")
    p.add_argument("--batches", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--child")
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    rows = [r for r in args.rows.split(",") if r]
    os.environ["MINITRANSFER_KEEP_FREED_MEMORY"] = "0"  # read by the children's `import minitransfer`
    with tempfile.TemporaryDirectory() as tmp:
        heads = {k: str(v) for k, v in bench_packed.make_heads(model_path(), Path(tmp)).items()}
        print(f"command: python benchmarks/bench_packed_memory.py {' '.join(sys.argv[1:])}".rstrip())
        print("| row | real / padded tokens per batch | " + " | ".join(f"{s} MiB" for s in SIDES) + " |")
        print("| --- | --- | " + " | ".join("---" for _ in SIDES) + " |")
        for row in rows:
            masks = [b["attention_mask"] for b in make_batches(row, args.batches, args.seed)]
            real, padded = np.mean([m.sum() for m in masks]), np.mean([m.size for m in masks])
            peaks = []
            for side in SIDES:
                spec = {"row": row, "side": side, "batches": args.batches, "seed": args.seed, "heads": heads}
                peaks.append(common.run_in_child(__file__, spec, f"{row} {side}")["peak_mib"])
            print(f"| {row} | {real:,.0f} / {padded:,.0f} ({real / padded:.0%}) | "
                  + " | ".join(f"{m:,.0f}" for m in peaks) + " |", flush=True)


if __name__ == "__main__":
    main()
