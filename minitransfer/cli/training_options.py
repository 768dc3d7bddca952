"""What every `train` command shares: its flags, the TrainingArguments they make (the CLI's recipe), the check
that --out holds no finished run, and the printer of each evaluation."""
from __future__ import annotations

import argparse
from pathlib import Path

from minitransfer.cli import UsageError, add_device_flag
from minitransfer.errors import TrainingError

FORMATS = ["glue", "msr", "sms", "csv", "jsonl"]


def add_training_flags(p: argparse.ArgumentParser, *, batch_size: int = 32, max_length: int = 128, epochs: float = 3,
                       lr: float = 5e-5) -> None:
    """The flags every `train` task shares (defaults as transformers' examples)."""
    p.add_argument("--model", default="minilm", help="pretrained model directory or cached alias")
    p.add_argument("--train", required=True, help="training file")
    p.add_argument("--eval", help="evaluation file (metrics each epoch; the best model is kept)")
    p.add_argument("--out", required=True,
                   help="output directory (the best model and tokenizer, metrics.jsonl, checkpoint-N/ folders)")
    p.add_argument("--epochs", type=float, default=epochs, help="passes over the training data (may be fractional)")
    p.add_argument("--max-steps", type=int, default=-1,
                   help="stop after this many optimizer steps (overrides --epochs)")
    p.add_argument("--lr", type=float, default=lr, help="peak learning rate (AdamW)")
    p.add_argument("--batch-size", type=int, default=batch_size, help="training examples per batch")
    p.add_argument("--grad-accum", type=int, default=1, help="gradient accumulation steps")
    p.add_argument("--max-length", type=int, default=max_length, help="tokens per input; longer inputs are truncated")
    p.add_argument("--max-train-examples", type=int, help="use only the first N training examples")
    p.add_argument("--max-eval-examples", type=int, help="use only the first N evaluation examples")
    p.add_argument("--seed", type=int, default=42, help="random seed (shuffling, dropout, new weights)")
    p.add_argument("--warmup", type=float, default=0.1, help="fraction of steps with linear warmup")
    p.add_argument("--weight-decay", type=float, default=0.01,
                   help="AdamW weight decay (not on biases and LayerNorm weights)")
    p.add_argument("--schedule", choices=["linear", "constant", "cosine"], default="linear",
                   help="learning-rate schedule after the warmup")
    p.add_argument("--max-grad-norm", type=float, default=1.0, help="clip the gradient norm to this (0: no clipping)")
    p.add_argument("--logging-steps", type=int, default=10, help="log the mean training loss every N steps")
    p.add_argument("--eval-steps", type=int, default=0,
                   help="evaluate and checkpoint every N steps instead of every epoch (0: every epoch)")
    p.add_argument("--resume", action="store_true", help="continue from the latest OUT/checkpoint-N")
    p.add_argument("--plot", action="store_true", help="write OUT/curves.png (needs matplotlib)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--group-by-length", action="store_true",
                   help="batch sentences of similar length together: less padding, faster (transformers' option)")
    p.add_argument("--max-tokens-per-batch", type=int, default=0, metavar="N",
                   help="batches of at most N real tokens instead of --batch-size rows (fairseq's max_tokens; 0: off)")
    p.add_argument("--overwrite-output-dir", action="store_true",
                   help="replace the run already in --out (by default a finished run's folder is kept)")
    p.add_argument("--no-padding-free", dest="padding_free", action="store_false",
                   help="compute padding too, as transformers does (its exact numbers; slower)")
    p.add_argument("--fp16", action="store_true",
                   help="mixed precision: float16 forward, float32 master weights, dynamic loss scaling (with "
                        "--device cuda; on the CPU only with MINITRANSFER_ALLOW_CPU_HALF=1, slowly)")
    p.add_argument("--bf16", action="store_true", help="refused: NumPy and CuPy have no bfloat16 (use --fp16)")
    add_device_flag(p)


def training_arguments(args: argparse.Namespace, metric: str = "accuracy", greater_is_better: bool = True):
    """The CLI's recipe in transformers' terms: evaluate and checkpoint every epoch (or every --eval-steps), keep the
    best and the latest checkpoint, end on the best model; log every 10 steps."""
    from minitransfer.training import TrainingArguments

    check_output_dir(args)
    strategy = "steps" if args.eval_steps else "epoch"
    return TrainingArguments(
        output_dir=args.out, num_train_epochs=args.epochs, max_steps=args.max_steps, learning_rate=args.lr,
        per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=64,
        gradient_accumulation_steps=args.grad_accum, seed=args.seed, warmup_ratio=args.warmup,
        weight_decay=args.weight_decay, lr_scheduler_type=args.schedule, max_grad_norm=args.max_grad_norm,
        logging_steps=args.logging_steps, eval_strategy=strategy, save_strategy=strategy,
        eval_steps=args.eval_steps or None,
        save_steps=args.eval_steps or 500, save_total_limit=1, load_best_model_at_end=True,
        metric_for_best_model=metric, greater_is_better=greater_is_better, plot=args.plot,
        group_by_length=args.group_by_length, max_tokens_per_batch=args.max_tokens_per_batch,
        padding_free=args.padding_free, disable_tqdm=args.no_progress,
        overwrite_output_dir=args.overwrite_output_dir, fp16=args.fp16, bf16=args.bf16, device=args.device)


RUN_FILES = ("training_args.json", "metrics.jsonl", "model.safetensors", "config.json", "compare.json")


def check_output_dir(args: argparse.Namespace) -> None:
    """--out must not be the model being trained, and a finished run there is kept unless the user says otherwise."""
    out = Path(args.out)
    model = Path(getattr(args, "model", "") or "")
    if model.is_dir() and out.exists() and out.resolve() == model.resolve():
        raise UsageError(f"--out {out} is the model folder itself: training would overwrite the checkpoint it starts "
                         "from; give another --out")
    if out.is_file():
        raise UsageError(f"--out {out} is a file: give a folder (it is created if missing)")
    previous = out.is_dir() and (any((out / name).exists() for name in RUN_FILES) or any(out.glob("checkpoint-*")))
    if previous and not args.resume and not args.overwrite_output_dir:
        raise TrainingError(f"{out} already holds a run (its model, metrics or checkpoints): pass --resume to "
                            "continue it, --overwrite-output-dir to replace it, or choose another --out")


def printing_callbacks() -> list:
    """The callbacks a training command gives its recipe: each evaluation and the run's end printed on stdout."""
    from minitransfer.training import PrinterCallback

    return [PrinterCallback()]
