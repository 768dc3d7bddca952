#!/usr/bin/env bash
# End to end on SST-2: `minitransfer train classification` vs the same recipe as a plain transformers Trainer
# script (benchmarks/train_sst2_transformers.py), one after the other, same data, same settings.
#
#   bash benchmarks/run_end_to_end_sst2.sh                         # first 4,000 training rows, 2 epochs, seed 42
#   GROUP_BY_LENGTH=1 bash benchmarks/run_end_to_end_sst2.sh       # --group-by-length on both sides
#   N=64 EPOCHS=1 bash benchmarks/run_end_to_end_sst2.sh           # a quick check that both run
#
# Env: PY (default .venv/bin/python), MT (default .venv/bin/minitransfer), TRAIN (default ../shared/data/sst2/
# train.tsv, else the shipped train_subset.tsv), EVAL (default the shipped dev.tsv), N, EPOCHS, SEED, OUT (default
# a new /tmp/e2e-sst2.* folder: ours' run directory and both logs), ONLY=ours|transformers (one side only).
# Printed at the end, for each side: the whole command's wall time, the training-loop time the library itself
# reports (ours: train_runtime from OUT/ours/metrics.jsonl; transformers: the trainer.train() call and its
# train_runtime metric) and the dev accuracy after each epoch (the last one is the run's result).
# Ours' training loop includes, like transformers', the evaluation after each epoch; unlike it (save_strategy
# "no"), it also writes the best model and OUT/ours/last-checkpoint/ after each epoch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MT=${MT:-.venv/bin/minitransfer}
if [[ -z ${TRAIN:-} ]]; then
  if [[ -f ../shared/data/sst2/train.tsv ]]; then TRAIN=../shared/data/sst2/train.tsv
  else TRAIN=minitransfer/data/sst2/train_subset.tsv; fi
fi
EVAL=${EVAL:-minitransfer/data/sst2/dev.tsv}
N=${N:-4000}
EPOCHS=${EPOCHS:-2}
SEED=${SEED:-42}
OUT=${OUT:-$(mktemp -d /tmp/e2e-sst2.XXXXXX)}
ONLY=${ONLY:-}
GROUP=()
if [[ ${GROUP_BY_LENGTH:-0} == 1 ]]; then GROUP=(--group-by-length); fi
mkdir -p "$OUT"
COMMON=(--train "$TRAIN" --eval "$EVAL" --epochs "$EPOCHS" --max-train-examples "$N" --seed "$SEED" --no-progress
        ${GROUP[@]+"${GROUP[@]}"})

now() { date +%s.%N; }
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores;" \
     "load $(cut -d' ' -f1 /proc/loadavg)"
echo "settings: train $TRAIN (first $N rows), eval $EVAL, $EPOCHS epochs, seed $SEED," \
     "group-by-length ${GROUP_BY_LENGTH:-0}; logs in $OUT"

if [[ $ONLY != transformers ]]; then
  echo; echo "== minitransfer =="
  rm -rf "$OUT/ours"
  CMD=("$MT" train classification --model minilm "${COMMON[@]}" --out "$OUT/ours")
  echo "+ ${CMD[*]}"
  t0=$(now); "${CMD[@]}" 2>&1 | tee "$OUT/ours.log"; t1=$(now)
  echo "$t0 $t1" > "$OUT/ours.wall"
fi
if [[ $ONLY != ours ]]; then
  echo; echo "== transformers Trainer =="
  CMD=("$PY" benchmarks/train_sst2_transformers.py "${COMMON[@]}")
  echo "+ ${CMD[*]}"
  t0=$(now); "${CMD[@]}" 2>&1 | tee "$OUT/transformers.log"; t1=$(now)
  echo "$t0 $t1" > "$OUT/transformers.wall"
fi

echo; echo "== summary (load $(cut -d' ' -f1 /proc/loadavg)) =="
"$PY" - "$OUT" <<'EOF'
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])


def wall(name):
    path = out / f"{name}.wall"
    if not path.exists():
        return None
    t0, t1 = map(float, path.read_text().split())
    return t1 - t0


rows = []
if (out / "ours.wall").exists():
    records = [json.loads(line) for line in (out / "ours" / "metrics.jsonl").read_text().splitlines()]
    done = next(r for r in records if "train_runtime" in r)
    per_epoch = [r["eval_accuracy"] for r in records if "eval_accuracy" in r]
    rows.append(("minitransfer", wall("ours"), f"{done['train_runtime']:.1f} (train_runtime)", per_epoch,
                 done["step"]))
if (out / "transformers.wall").exists():
    line = next(ln for ln in reversed((out / "transformers.log").read_text().splitlines()) if ln.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    rows.append(("transformers", wall("transformers"),
                 f"{result['train_loop_s']:.1f} (train() call; train_runtime {result['train_runtime_s']:.1f})",
                 result["dev_accuracy_per_epoch"], result["steps"]))
print(f"{'side':<14}{'command wall s':>15}  {'training loop s':<44}{'steps':>6}  dev accuracy per epoch (last = result)")
for name, seconds, loop, accs, steps in rows:
    shown = " / ".join(f"{100 * a:.2f}%" for a in accs) or "not evaluated"
    print(f"{name:<14}{seconds:>15.1f}  {loop:<44}{steps:>6}  {shown}")
EOF
