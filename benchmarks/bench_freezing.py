"""What layer freezing saves: one fine-tuning step's time and memory per recipe, minitransfer vs PyTorch.

    python benchmarks/bench_freezing.py [--repeats N] [--batch 32] [--seq 128]

Model: the real MiniLM checkpoint with a fresh 2-label sequence-classification head (BERT: pooler → dropout →
classifier), loaded by both libraries from the same directory. Step: forward, cross-entropy on fixed labels,
backward, AdamW update (lr 5e-5, weight decay 0.01 except biases/LayerNorm), zero_grad. Dropout 0.1 as in
training. Inputs: random token ids, no padding.

Recipes (as `minitransfer train classification` applies them, and the same parameters in PyTorch):
  full               everything trains
  freeze-embeddings  the embedding block is fixed
  freeze-4           embeddings and the lower 4 of 6 encoder layers are fixed
  head-only          the whole body (embeddings, encoder, pooler) is fixed; only the classifier trains
Frozen parameters get no gradient and no optimizer state, and backward stops at the lowest trainable layer —
in both libraries — so time and memory fall as more is frozen.

Each (recipe, library) runs in its own subprocess: memory = peak RSS (VmHWM) during warmup + timed steps minus
RSS before them (model, optimizer and inputs built, so optimizer state for trainable parameters is counted
from the first step on). ms = median wall time of the timed steps.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

RECIPES = ["full", "freeze-embeddings", "freeze-4", "head-only"]


def run_child(spec: dict) -> dict:
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 30000, (spec["batch"], spec["seq"]))
    mask = np.ones_like(ids)
    labels = rng.integers(0, 2, spec["batch"])
    step, trainable = (_ours if spec["impl"] == "ours" else _torch)(spec, ids, mask, labels)
    memory = common.PeakRSS()
    memory.start()
    times = common.time_ms(step, spec["repeats"], warmup=1)
    return {"ms": times, "peak_mib": memory.peak_mib(), "trainable": trainable}


def _ours(spec, ids, mask, labels):
    from minitransfer.models import AutoModelForSequenceClassification
    from minitransfer.models.freezing import apply_freezing
    from minitransfer.optim import AdamW, param_groups_for_weight_decay

    model = AutoModelForSequenceClassification.from_pretrained(spec["path"], num_labels=2)
    recipe = spec["recipe"]
    apply_freezing(model, freeze_embeddings=recipe == "freeze-embeddings",
                   freeze_layers=4 if recipe == "freeze-4" else 0, head_only=recipe == "head-only")
    model.train()
    optimizer = AdamW(param_groups_for_weight_decay(model, 0.01), lr=5e-5)

    def step():
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    return step, sum(p.size for p in model.parameters() if p.requires_grad)


def _torch(spec, ids, mask, labels):
    import torch
    import transformers

    torch.set_num_threads(os.cpu_count() or 1)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(spec["path"], num_labels=2,
                                                                            dtype=torch.float32)
    recipe, body = spec["recipe"], model.bert
    frozen = {"full": [], "freeze-embeddings": [body.embeddings],
              "freeze-4": [body.embeddings, *body.encoder.layer[:4]], "head-only": [body]}[recipe]
    for module in frozen:
        module.requires_grad_(False)
    model.train()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    no_decay = [p for n, p in trainable if n.endswith("bias") or "LayerNorm" in n]
    decay = [p for n, p in trainable if not (n.endswith("bias") or "LayerNorm" in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=5e-5)
    ids_t, mask_t, labels_t = torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(labels)

    def step():
        loss = model(input_ids=ids_t, attention_mask=mask_t, labels=labels_t).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step, sum(p.numel() for _, p in trainable)


def spawn(spec: dict) -> dict:
    return common.run_in_child(__file__, spec, f"{spec['impl']} {spec['recipe']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per configuration (after 1 warmup)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(json.loads(args.child))))
        return
    import torch

    from minitransfer.io.hub import resolve_model_path

    path = str(resolve_model_path("minilm"))
    print(f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}")
    print(f"machine: {common.cpu_model()}, {os.cpu_count()} cores; torch {torch.__version__}")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print(f"MiniLM + classification head, batch {args.batch} x seq {args.seq}, dropout 0.1, forward + backward + "
          f"AdamW; median of {args.repeats} steps after 1 warmup, each configuration in its own process", flush=True)
    header = (f"{'recipe':<18}{'trainable':>12}{'ours ms':>10}{'torch ms':>10}{'ours/torch':>11}"
              f"{'ours MiB':>10}{'torch MiB':>10}{'ours vs full':>14}")
    print(header)
    full = None
    for recipe in RECIPES:
        results = {impl: spawn({"impl": impl, "recipe": recipe, "path": path, "batch": args.batch,
                                "seq": args.seq, "repeats": args.repeats}) for impl in ("ours", "torch")}
        ours, theirs = (common.median(results[i]["ms"]) for i in ("ours", "torch"))
        full = full or ours
        print(f"{recipe:<18}{results['ours']['trainable']:>12,}{ours:>10.0f}{theirs:>10.0f}{theirs / ours:>10.2f}x"
              f"{results['ours']['peak_mib']:>10.0f}{results['torch']['peak_mib']:>10.0f}"
              f"{ours / full:>13.2f}x", flush=True)
        if results["ours"]["trainable"] != results["torch"]["trainable"]:
            print(f"  note: trainable parameters differ (torch {results['torch']['trainable']:,})")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print("ours/torch > 1 means minitransfer is faster; 'ours vs full' is the step time relative to full fine-tuning")


if __name__ == "__main__":
    main()
