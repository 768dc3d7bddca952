"""What the profiler's hooks cost when it is off: one training step, this checkout vs an earlier one, alternating.

    python benchmarks/bench_profiler_off.py --against DIR [--rounds 5] [--steps 10]

DIR: a checkout of a commit from before the profiler (e.g. `git worktree add /tmp/before <commit>`; its kernels/
folder must be importable as minitransfer.kernels: link it with `ln -s ../kernels DIR/minitransfer/kernels`).
Each round runs one subprocess per tree, in turn, with PYTHONPATH set to that tree; each subprocess times --steps
training steps (forward + backward of the cross-entropy loss, no optimizer step, dropout 0.1, after 3 warm-up
steps) of MiniLM with a fresh classification head on one fixed SST-2-shaped batch (32 sentences of the shipped
SST-2 subset, packed: minitransfer's default). Printed: the median step ms per tree over all rounds, and their
ratio. With the profiler off every op pays one `observer is None` check and every module call another.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys
import minitransfer as mt
import numpy as np
steps = int(sys.argv[1])
sys.path.insert(0, sys.argv[2])  # this checkout's benchmarks/, for common.time_ms
import common
lines = open("minitransfer/data/sst2/train_subset.tsv", encoding="utf-8").read().splitlines()[1:33]
texts = [line.split("\t")[0] for line in lines]
labels = np.array([int(line.split("\t")[1]) for line in lines])
tok = mt.AutoTokenizer.from_pretrained("minilm")
batch = dict(tok(texts, padding=True, truncation=True, max_length=128, return_tensors="np"))
mt.manual_seed(0)
model = mt.AutoModelForSequenceClassification.from_pretrained("minilm", num_labels=2)
model.train()

def step():
    for p in model.parameters():
        p.grad = None
    model(**batch, labels=labels).loss.backward()

times = common.time_ms(step, repeats=steps, warmup=3)
print(json.dumps({"ms": times, "tokens": int(batch["attention_mask"].sum())}))
"""


def run(tree: Path, steps: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(steps), str(Path(__file__).resolve().parent)], cwd=tree,
                         env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", type=Path, required=True, help="a checkout of an earlier commit")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    here = Path(__file__).resolve().parents[1]
    times = {"this checkout": [], "earlier": []}
    for _ in range(args.rounds):
        for label, tree in (("this checkout", here), ("earlier", args.against.resolve())):
            result = run(tree, args.steps)
            times[label] += result["ms"]
    medians = {label: sorted(ms)[len(ms) // 2] for label, ms in times.items()}
    print(f"MiniLM train step, SST-2 batch of 32 ({result['tokens']} real tokens), packed, dropout 0.1; "
          f"{args.rounds} rounds x {args.steps} steps per tree, alternating")
    for label, ms in medians.items():
        print(f"  {label:14s} median {ms:7.1f} ms  (min {min(times[label]):.1f}, max {max(times[label]):.1f})")
    print(f"  this / earlier: {medians['this checkout'] / medians['earlier']:.3f}")


if __name__ == "__main__":
    main()
