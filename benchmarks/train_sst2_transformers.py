"""SST-2 fine-tuning of MiniLM as a plain transformers Trainer script, with minitransfer's CLI recipe.

The recipe of `minitransfer train classification --model minilm --train F --eval F --epochs 2
--max-train-examples 4000`, written as a transformers user writes it.

    python benchmarks/train_sst2_transformers.py [--train F] [--eval F] [--max-train-examples 4000] [--epochs 2]
                                                 [--seed 42] [--group-by-length] [--no-progress] [--model DIR]

What a transformers user writes: AutoTokenizer + AutoModelForSequenceClassification.from_pretrained(MiniLM,
num_labels=2), a list of tokenized dicts (no `datasets`), DataCollatorWithPadding (each batch padded to its
longest row), Trainer with accuracy as compute_metrics. The recipe is minitransfer's CLI defaults:
  data       the first N data rows of the training file (header skipped, blank lines skipped, text stripped),
             as `--max-train-examples N` takes them; labels 0/1; eval on all of the eval file
  tokens     truncation at 128 (--max-length), [CLS] text [SEP], padded per batch
  optimizer  AdamW lr 5e-5, betas (0.9, 0.999), eps 1e-8, weight decay 0.01 except biases and LayerNorm weights,
             gradient clipping at 1.0 (transformers' defaults match these; its default AdamW is torch's fused one)
  schedule   linear decay with linear warmup over ceil(0.1 · total steps)
  batches    32 per step, shuffled each epoch (--group-by-length: transformers' LengthGroupedSampler), the last
             partial batch kept; eval batch 64 (minitransfer's eval batch size; transformers' default is 8)
  dropout    the checkpoint's: hidden and attention 0.1, classifier dropout = hidden dropout 0.1
  eval       each epoch (inside the training loop, as minitransfer), no checkpoint saved (save_strategy="no")
  seed       transformers.set_seed(seed) before the model is built (the new head's draw), and Trainer's seed
Printed: a header (date, machine, CPU flags, versions, command), the data and recipe, transformers' own log
lines, then the wall time of the trainer.train() call, its train_runtime metric, the dev accuracy after each
epoch, and a last line `RESULT {json}` for benchmarks/run_end_to_end_sst2.sh.

This process does not import minitransfer (whose import sets OMP_WAIT_POLICY, OPENBLAS_THREAD_TIMEOUT and glibc
malloc options): torch runs as its users run it. The MiniLM directory defaults to minitransfer's cache
($MINITRANSFER_HOME or ~/.cache/minitransfer, then minilm/), where `minitransfer fetch minilm` puts it.
Needs `accelerate` (transformers' Trainer requires it).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import json
import math
import os
import shlex
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # numpy only; no minitransfer import

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
ISA_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


def default_train_file() -> Path:
    shared = SHARED / "sst2" / "train.tsv"
    return shared if shared.is_file() else REPO / "minitransfer" / "data" / "sst2" / "train_subset.tsv"


def default_model_dir() -> Path:
    home = os.environ.get("MINITRANSFER_HOME")
    root = Path(home).expanduser() if home else Path.home() / ".cache" / "minitransfer"
    return root / "minilm"


def read_glue_tsv(path: Path, max_examples: int | None = None) -> tuple[list[str], list[int]]:
    """(sentences, labels) of a GLUE `sentence\\tlabel` TSV: the first max_examples data rows, as minitransfer
    reads them (tab-separated, no quoting, header by name, blank lines skipped, text stripped)."""
    texts, labels = [], []
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = [name.strip() for name in next(reader)]
        i_text, i_label = header.index("sentence"), header.index("label")
        for fields in reader:
            if not fields:
                continue
            if max_examples is not None and len(texts) >= max_examples:
                break
            texts.append(fields[i_text].strip())
            labels.append(int(fields[i_label].strip()))
    return texts, labels


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                epilog="See the module docstring for the recipe.")
    p.add_argument("--train", default=str(default_train_file()),
                   help="GLUE SST-2 TSV (default: ../shared/data/sst2/train.tsv, else the shipped train_subset.tsv)")
    p.add_argument("--eval", default=str(REPO / "minitransfer" / "data" / "sst2" / "dev.tsv"))
    p.add_argument("--model", default=str(default_model_dir()), help="MiniLM checkpoint directory")
    p.add_argument("--max-train-examples", type=int, default=4000, help="the first N training rows (0: all)")
    p.add_argument("--epochs", type=float, default=2)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--group-by-length", action="store_true",
                   help="transformers' length-grouped sampler (train_sampling_strategy='group_by_length')")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--eval-batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--warmup", type=float, default=0.1, help="fraction of steps with linear warmup (below 1)")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--logging-steps", type=int, default=10, help="transformers' log interval (minitransfer logs at 10)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar (disable_tqdm)")
    args = p.parse_args()
    if not 0 <= args.warmup < 1:
        p.error("--warmup is a fraction of the steps, in [0, 1)")
    return args


def training_arguments(args: argparse.Namespace, output_dir: str):
    """TrainingArguments of the recipe, spelled for the installed transformers (5.x renamed two of them)."""
    from transformers import TrainingArguments

    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    kwargs = dict(output_dir=output_dir, per_device_train_batch_size=args.batch_size,
                  per_device_eval_batch_size=args.eval_batch_size, num_train_epochs=args.epochs,
                  learning_rate=args.lr, weight_decay=args.weight_decay, lr_scheduler_type="linear",
                  max_grad_norm=1.0, eval_strategy="epoch", save_strategy="no", report_to="none", use_cpu=True,
                  seed=args.seed, logging_steps=args.logging_steps, disable_tqdm=args.no_progress)
    if "warmup_ratio" in fields:  # transformers 4.x
        kwargs["warmup_ratio"] = args.warmup
    else:  # 5.x: a float below 1 is the ratio of the total steps, ceil(ratio * total) steps
        kwargs["warmup_steps"] = args.warmup
    if "train_sampling_strategy" in fields:  # 5.x
        kwargs["train_sampling_strategy"] = "group_by_length" if args.group_by_length else "random"
    else:
        kwargs["group_by_length"] = args.group_by_length
    return TrainingArguments(**kwargs)


def header() -> None:
    import torch
    import transformers

    info = common._lscpu()
    flags = set(info.get("Flags", "").split())
    print(f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}")
    print(f"machine: {common.cpu_model()}, {os.cpu_count()} cores; ISA flags: "
          + (" ".join(f for f in ISA_FLAGS if f in flags) or "none of " + " ".join(ISA_FLAGS)))
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads, MKL {torch.backends.mkl.is_available()}, "
          f"oneDNN {torch.backends.mkldnn.is_available()}), transformers {transformers.__version__}; env "
          + ", ".join(f"{k}={os.environ.get(k, 'unset')}" for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")))
    print(f"command: {shlex.join([Path(sys.executable).name, *sys.argv])}")
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)


def main() -> None:
    args = parse_args()
    header()
    import torch
    import transformers
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        set_seed,
    )

    limit = args.max_train_examples or None
    train_texts, train_labels = read_glue_tsv(Path(args.train), limit)
    dev_texts, dev_labels = read_glue_tsv(Path(args.eval))
    tokenizer = AutoTokenizer.from_pretrained(args.model)

    def encode(texts: list[str], labels: list[int]) -> list[dict]:
        enc = tokenizer(texts, truncation=True, max_length=args.max_length)
        return [{"input_ids": ids, "token_type_ids": types, "attention_mask": mask, "labels": label}
                for ids, types, mask, label in zip(enc["input_ids"], enc["token_type_ids"], enc["attention_mask"],
                                                   labels)]

    train_data, dev_data = encode(train_texts, train_labels), encode(dev_texts, dev_labels)
    counts = dict(sorted(Counter(train_labels).items()))
    print(f"train: {len(train_data)} examples {counts} (first {limit or 'all'} rows of {args.train}); "
          f"eval: {len(dev_data)} ({args.eval})")

    set_seed(args.seed)  # before the model: the new head is drawn from it
    model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=2)

    def compute_metrics(prediction) -> dict:
        logits, labels = prediction
        return {"accuracy": float((np.argmax(logits, axis=-1) == labels).mean())}

    with tempfile.TemporaryDirectory() as output_dir:
        targs = training_arguments(args, output_dir)
        trainer = Trainer(model=model, args=targs, train_dataset=train_data, eval_dataset=dev_data,
                          processing_class=tokenizer, data_collator=DataCollatorWithPadding(tokenizer),
                          compute_metrics=compute_metrics)
        steps = math.ceil(len(train_data) / args.batch_size)
        optim = getattr(targs.optim, "value", targs.optim)
        print(f"recipe: {args.epochs:g} epochs x {steps} steps of batch {args.batch_size}, lr {args.lr}, warmup "
              f"{args.warmup} (linear), weight decay {args.weight_decay}, optimizer {optim}, max grad norm "
              f"{targs.max_grad_norm}, group by length {args.group_by_length}, dropout "
              f"{model.config.hidden_dropout_prob}/{model.config.attention_probs_dropout_prob}, seed {args.seed}; "
              f"torch {torch.__version__}, transformers {transformers.__version__}", flush=True)
        started = time.perf_counter()
        output = trainer.train()
        loop_s = time.perf_counter() - started
        evals = [h for h in trainer.state.log_history if "eval_accuracy" in h]

    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    print(f"training loop (trainer.train() call): {loop_s:.1f} s; train_runtime metric "
          f"{output.metrics['train_runtime']:.1f} s; {output.global_step} steps; final train loss "
          f"{output.training_loss:.4f} (mean over the run)")
    for h in evals:
        print(f"dev accuracy after epoch {h['epoch']:g}: {100 * h['eval_accuracy']:.2f}% (eval loss "
              f"{h['eval_loss']:.4f}, eval {h['eval_runtime']:.1f} s)")
    final = evals[-1]["eval_accuracy"] if evals else None
    print("dev accuracy (last epoch): " + (f"{100 * final:.2f}%" if final is not None else "not evaluated"))
    print("RESULT " + json.dumps({"train_loop_s": round(loop_s, 2),
                                  "train_runtime_s": round(output.metrics["train_runtime"], 2),
                                  "steps": output.global_step, "dev_accuracy": final,
                                  "dev_accuracy_per_epoch": [h["eval_accuracy"] for h in evals]}))


if __name__ == "__main__":
    main()
