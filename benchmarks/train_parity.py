"""Fine-tuning parity: our Trainer vs PyTorch + transformers on the same batches, same head, same recipe.

    python benchmarks/train_parity.py                      # 200 steps of MiniLM on the shipped SST-2 slice
    python benchmarks/train_parity.py --dropout 0          # no dropout: the curves should agree to float32 noise
    python benchmarks/train_parity.py --steps 50 --batch-size 16 --train-file /path/to/train.tsv

Both sides start from the same weights (ours loads MiniLM and draws the new classifier head, then saves the
whole classifier; transformers' BertForSequenceClassification loads that directory), read the same batches
(the Trainer's own shuffled order, each batch trimmed to its longest row), and run the same recipe: AdamW with
no decay on biases and LayerNorm weights, linear warmup (10% of steps) and decay, gradient clipping at 1.0.
Printed: the per-step loss difference (max and mean, raw and over 10-step means), the wall clock per step of
each side, and the dev accuracy of each on SST-2 dev (872 sentences).
With dropout > 0 the two sides draw different masks, so the curves agree only statistically.
"""
from __future__ import annotations

import argparse
import math
import tempfile
import time

import numpy as np

from minitransfer import seeding
from minitransfer.data.shipped import shipped_data_path
from minitransfer.io.hub import resolve_model_path
from minitransfer.models import AutoModelForSequenceClassification
from minitransfer.tasks.classification.data import read_classification_file
from minitransfer.tasks.classification.features import encode_classification
from minitransfer.tokenization import AutoTokenizer
from minitransfer.training import Trainer, TrainingArguments


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="minilm", help="BERT model directory or cached alias (default: minilm)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--train-file", default=str(shipped_data_path("sst2/train_subset.tsv")))
    p.add_argument("--dev-file", default=str(shipped_data_path("sst2/dev.tsv")))
    p.add_argument("--dropout", type=float, default=0.1, help="hidden and attention dropout of both models")
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup", type=float, default=0.1, help="fraction of steps with linear warmup")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--seed", type=int, default=42)
    return p.parse_args()


def batch_plan(trainer: Trainer, steps: int) -> list[np.ndarray]:
    """The example indices of each optimizer step, in the order our Trainer will visit them (one batch a step)."""
    plan, epoch = [], 0
    while len(plan) < steps:
        plan += [group[0] for group in trainer._epoch_steps(epoch)]
        epoch += 1
    return plan[:steps]


def train_ours(trainer: Trainer) -> tuple[list[float], float]:
    """Run our Trainer; returns the per-step losses and seconds per step (forward, backward, clip, AdamW only)."""
    spent = [0.0]

    def timed(method):
        def run(*args):
            start = time.perf_counter()
            result = method(*args)
            spent[0] += time.perf_counter() - start
            return result
        return run

    # time the step itself, not the Trainer's checkpoint writes (the torch loop saves nothing)
    trainer._accumulate, trainer._optimizer_step = timed(trainer._accumulate), timed(trainer._optimizer_step)
    final = trainer.train()
    print(f"ours: {final.global_step} steps done", flush=True)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]  # logging_steps=1: one per step
    return losses, spent[0] / final.global_step


def train_torch(model, plan: list[np.ndarray], data, args: argparse.Namespace) -> tuple[list[float], float]:
    """The transformers fine-tuning loop on the same batches; returns per-step losses and seconds per step."""
    import torch  # noqa: PLC0415 (bench-only dependency)
    from transformers import get_linear_schedule_with_warmup  # noqa: PLC0415

    # transformers' Trainer: no weight decay on biases and LayerNorm weights
    decay = [p for n, p in model.named_parameters() if "bias" not in n and "LayerNorm" not in n]
    no_decay = [p for n, p in model.named_parameters() if "bias" in n or "LayerNorm" in n]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.999), eps=1e-8)
    warmup = math.ceil(args.warmup * args.steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup, args.steps)
    torch.manual_seed(args.seed)
    model.train()
    losses, started = [], time.perf_counter()
    for step, indices in enumerate(plan, start=1):
        batch = {k: torch.from_numpy(v) for k, v in data.batch(indices).items()}
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        if step % 50 == 0:
            print(f"torch: step {step}/{len(plan)}, loss {losses[-1]:.4f}", flush=True)
    return losses, (time.perf_counter() - started) / len(plan)


def torch_accuracy(model, data, batch_size: int = 64) -> float:
    import torch  # noqa: PLC0415

    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            batch = {k: torch.from_numpy(v) for k, v in data.batch(np.arange(start, min(start + batch_size,
                                                                                          len(data)))).items()}
            labels = batch.pop("labels")
            correct += int((model(**batch).logits.argmax(-1) == labels).sum())
    return correct / len(data)


def block_means(values: np.ndarray, size: int = 10) -> np.ndarray:
    """Means of consecutive `size`-step blocks (the last block may be shorter)."""
    return np.array([values[i:i + size].mean() for i in range(0, len(values), size)])


def main() -> None:
    args = parse_args()
    from transformers import BertForSequenceClassification as TorchBert  # noqa: PLC0415 (bench-only dependency)

    path = resolve_model_path(args.model)
    train = read_classification_file(args.train_file)
    dev = read_classification_file(args.dev_file, label_names=train.label_names)
    tokenizer = AutoTokenizer.from_pretrained(path)
    train_data = encode_classification(train, tokenizer, args.max_length)
    dev_data = encode_classification(dev, tokenizer, args.max_length)

    seeding.manual_seed(args.seed)
    ours = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=train.num_labels, hidden_dropout_prob=args.dropout, attention_probs_dropout_prob=args.dropout)
    with tempfile.TemporaryDirectory() as start_dir, tempfile.TemporaryDirectory() as out_dir:
        ours.save_pretrained(start_dir)  # the starting point, fresh head included, for transformers to load
        theirs = TorchBert.from_pretrained(start_dir)
        targs = TrainingArguments(output_dir=out_dir, max_steps=args.steps, per_device_train_batch_size=args.batch_size,
                                  learning_rate=args.lr, weight_decay=args.weight_decay, warmup_ratio=args.warmup,
                                  seed=args.seed, save_strategy="no", disable_tqdm=True, logging_steps=1)
        trainer = Trainer(ours, targs, train_dataset=train_data, processing_class=tokenizer)
        plan = batch_plan(trainer, args.steps)
        print(f"{args.model}: {len(train)} training examples ({args.train_file}), {len(dev)} dev; {args.steps} steps "
              f"of batch {args.batch_size}, lr {args.lr}, dropout {args.dropout}, seed {args.seed}")

        their_losses, their_step_s = train_torch(theirs, plan, train_data, args)
        our_losses, our_step_s = train_ours(trainer)
        our_preds = trainer.predict(dev_data).predictions.argmax(-1)
        our_acc = float((our_preds == dev_data.arrays["labels"]).mean())
    their_acc = torch_accuracy(theirs, dev_data)
    report(np.array(our_losses), np.array(their_losses), our_step_s, their_step_s, our_acc, their_acc)


def report(ours: np.ndarray, theirs: np.ndarray, our_step_s: float, their_step_s: float, our_acc: float,
           their_acc: float) -> None:
    diff = np.abs(ours - theirs)
    smooth = np.abs(block_means(ours) - block_means(theirs))
    print(f"\n{'step':>6}{'ours':>12}{'torch':>12}{'|diff|':>12}")
    for i in sorted({i for i in (0, 1, 2, 4, 9, *range(19, len(ours), 20)) if i < len(ours)} | {len(ours) - 1}):
        print(f"{i + 1:>6}{ours[i]:>12.6f}{theirs[i]:>12.6f}{diff[i]:>12.2e}")
    first = next((i + 1 for i, d in enumerate(diff) if d > 1e-3), None)
    print(f"\nloss |ours - torch| per step:        max {diff.max():.3e}  mean {diff.mean():.3e}"
          f"  (first step above 1e-3: {first})")
    print(f"loss |ours - torch| 10-step means:   max {smooth.max():.3e}  mean {smooth.mean():.3e}")
    print(f"mean loss, last 10% of steps:        ours {ours[-max(len(ours) // 10, 1):].mean():.4f}  "
          f"torch {theirs[-max(len(theirs) // 10, 1):].mean():.4f}")
    print(f"wall clock per step:                 ours {our_step_s * 1e3:.0f} ms  torch {their_step_s * 1e3:.0f} ms")
    print(f"dev accuracy:                        ours {our_acc * 100:.2f}%  torch {their_acc * 100:.2f}%  "
          f"(difference {abs(our_acc - their_acc) * 100:.2f} points)")


if __name__ == "__main__":
    main()
