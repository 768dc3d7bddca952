#!/usr/bin/env bash
# The fine-tuning measurements of issue 4, as run (2-core CPU shared with other jobs, hence nice and subsets).
#
#   bash benchmarks/run_finetune_experiments.sh parity0 sms_split sms_full   # run named experiments in order
#   bash benchmarks/run_finetune_experiments.sh list                          # the names
#
# Outputs go under $RUNS (default /tmp/ft): one directory per run (model, metrics.jsonl) and NAME.log.
# Subsets are the FIRST N lines of a file (--max-train-examples); every figure comes from the run's log.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-/work/venv/bin/python}
RUNS=${RUNS:-/tmp/ft}
DATA=${DATA:-/work/shared/data}
MT=(nice -n 10 "$PY" -m minitransfer)
mkdir -p "$RUNS"

# ---- item 1: loss-curve and accuracy parity with PyTorch + transformers (shipped 8,000-sentence SST-2 slice) ----
# PARITY_THREADS=1 runs both sides on one thread (fair and steadier on an oversubscribed CPU); PARITY_NICE sets
# its niceness (default 10; as run on 2026-11-23 it was reniced to 0 mid-run, starved at 10 on a load of 12).
PARITY_STEPS=${PARITY_STEPS:-200}
parity_env() {
  if [[ -n ${PARITY_THREADS:-} ]]; then
    export OMP_NUM_THREADS=$PARITY_THREADS OPENBLAS_NUM_THREADS=$PARITY_THREADS NUMBA_NUM_THREADS=$PARITY_THREADS
  fi
}
parity() { parity_env; nice -n "${PARITY_NICE:-10}" "$PY" benchmarks/train_parity.py --steps "$PARITY_STEPS" "$@"; }
parity0() { parity --batch-size 32 --dropout 0; }
parity01() { parity --batch-size 32 --dropout 0.1; }

# ---- SMS spam: the shared file is the 80% train part; a stratified 90/10 split of it, fixed seed ----
sms_split() {
  "$PY" - "$DATA/sms_spam/train.tsv" "$RUNS/sms" <<'EOF'
import sys
from pathlib import Path

import numpy as np

src, out = Path(sys.argv[1]), Path(sys.argv[2])
lines = [line for line in src.read_text(encoding="utf-8").splitlines() if line.strip()]
labels = np.array([line.split("\t", 1)[0] for line in lines])
rng = np.random.default_rng(0)
dev = set()
for label in ("ham", "spam"):  # stratified: 10% of each class, drawn with seed 0
    idx = np.flatnonzero(labels == label)
    dev.update(rng.choice(idx, size=round(0.1 * len(idx)), replace=False).tolist())
out.mkdir(parents=True, exist_ok=True)
(out / "train.tsv").write_text("".join(line + "\n" for i, line in enumerate(lines) if i not in dev), encoding="utf-8")
(out / "dev.tsv").write_text("".join(line + "\n" for i, line in enumerate(lines) if i in dev), encoding="utf-8")
for name in ("train", "dev"):
    rows = (out / f"{name}.tsv").read_text(encoding="utf-8").splitlines()
    print(name, len(rows), "spam", sum(r.startswith("spam\t") for r in rows))
EOF
}
sms_full() {
  "${MT[@]}" train classification --train "$RUNS/sms/train.tsv" --eval "$RUNS/sms/dev.tsv" --out "$RUNS/sms-full" \
    --epochs 1 --batch-size 32 --lr 5e-5 --metric f1 --no-progress
}
sms_scratch() {
  "${MT[@]}" train classification --train "$RUNS/sms/train.tsv" --eval "$RUNS/sms/dev.tsv" --out "$RUNS/sms-scratch" \
    --epochs 1 --batch-size 32 --lr 5e-5 --metric f1 --no-progress --from-scratch
}
sms_distil() {
  "${MT[@]}" convert bert-to-distilbert minilm "$RUNS/distil-minilm"
  "${MT[@]}" train classification --model "$RUNS/distil-minilm" --train "$RUNS/sms/train.tsv" \
    --eval "$RUNS/sms/dev.tsv" --out "$RUNS/sms-distil" --epochs 1 --batch-size 32 --lr 5e-5 --metric f1 --no-progress
}

# ---- SST-2: the first N sentences of the 67k training set (the whole set does not fit the time on this CPU) ----
SST2_N=${SST2_N:-4000}
sst2_subset() {
  "${MT[@]}" train classification --train "$DATA/sst2/train.tsv" --eval "$DATA/sst2/dev.tsv" --out "$RUNS/sst2-subset" \
    --epochs 1 --batch-size 32 --lr 5e-5 --max-train-examples "$SST2_N" --no-progress
}
sst2_subset_scratch() {
  "${MT[@]}" train classification --train "$DATA/sst2/train.tsv" --eval "$DATA/sst2/dev.tsv" \
    --out "$RUNS/sst2-scratch" --epochs 1 --batch-size 32 --lr 5e-5 --max-train-examples "$SST2_N" --no-progress \
    --from-scratch
}

# The whole 67,349-sentence training set, 2 epochs (transformers' recipe otherwise). --group-by-length batches
# sentences of similar length (mean 13 tokens; random batches of 32 pad to ~40), which makes an epoch fit
# ~20 minutes of this CPU; the order is still random across batches.
sst2_all() {
  "${MT[@]}" train classification --train "$DATA/sst2/train.tsv" --eval "$DATA/sst2/dev.tsv" --out "$RUNS/sst2-all" \
    --epochs "${SST2_EPOCHS:-2}" --batch-size 32 --lr 5e-5 --group-by-length --no-progress
}
sst2_all_scratch() {
  "${MT[@]}" train classification --train "$DATA/sst2/train.tsv" --eval "$DATA/sst2/dev.tsv" \
    --out "$RUNS/sst2-all-scratch" --epochs "${SST2_EPOCHS:-2}" --batch-size 32 --lr 5e-5 --group-by-length \
    --no-progress --from-scratch
}

# ---- MRPC (GLUE TSV pairs) ----
MRPC_EPOCHS=${MRPC_EPOCHS:-3}
mrpc_glue() {
  "${MT[@]}" train classification --train "$DATA/mrpc/train.tsv" --eval "$DATA/mrpc/dev.tsv" --out "$RUNS/mrpc-5e-5" \
    --epochs "$MRPC_EPOCHS" --batch-size 32 --lr 5e-5 --no-progress
}
# Aiming at >= 80%: 3 epochs of batch 32 are only 345 updates for a 6-layer model; batch 16 for 5 epochs gives
# 1,150, with lr 3e-5 to keep the longer run stable (chosen by reasoning, not tuned on dev); grouped by length
# to fit the CPU time.
mrpc_mine() {
  "${MT[@]}" train classification --train "$DATA/mrpc/train.tsv" --eval "$DATA/mrpc/dev.tsv" --out "$RUNS/mrpc-b16" \
    --epochs 5 --batch-size 16 --lr 3e-5 --group-by-length --no-progress
}
mrpc_scratch() {
  "${MT[@]}" train classification --train "$DATA/mrpc/train.tsv" --eval "$DATA/mrpc/dev.tsv" \
    --out "$RUNS/mrpc-scratch" --epochs "$MRPC_EPOCHS" --batch-size 32 --lr 5e-5 --no-progress --from-scratch
}

# ---- what to fine-tune: full vs frozen embeddings vs frozen lower 4 layers vs head only vs scratch (SMS, 1 epoch) ----
# COMPARE_N=1000 (session 1's setting) is too few steps (31): every recipe but head-only predicted no spam at all.
compare_sms() {
  local subset=()
  [[ -n ${COMPARE_N:-} ]] && subset=(--max-train-examples "$COMPARE_N")
  "${MT[@]}" compare --train "$RUNS/sms/train.tsv" --eval "$RUNS/sms/dev.tsv" --out "$RUNS/sms-compare" \
    --recipes full,freeze-embeddings,freeze-4,head-only,scratch --epochs 1 --batch-size 32 --lr 5e-5 --metric f1 \
    --group-by-length "${subset[@]}" --no-progress
}

EXPERIMENTS="parity0 parity01 sms_split sms_full sms_scratch sms_distil sst2_subset sst2_subset_scratch sst2_all sst2_all_scratch \
mrpc_glue mrpc_mine mrpc_scratch compare_sms"
for name in "$@"; do
  if [[ $name == list ]]; then echo "$EXPERIMENTS"; continue; fi
  [[ " $EXPERIMENTS " == *" $name "* ]] || { echo "unknown experiment $name; one of: $EXPERIMENTS" >&2; exit 2; }
  echo "== $name  $(date -u +%FT%TZ)  $(uname -n)  $(nproc) cores" | tee -a "$RUNS/$name.log"
  start=$(date +%s)
  "$name" 2>&1 | tee -a "$RUNS/$name.log"
  echo "== $name done in $(( $(date +%s) - start )) s" | tee -a "$RUNS/$name.log"
done
