"""Inspection commands: profile (one step under the op-level profiler), graph (draw the autograd graph)."""
from __future__ import annotations

import argparse
import contextlib
import logging

import numpy as np

from minitransfer.cli import HelpFormatter, UsageError

TASKS = ("cls", "qa", "mlm")


def register(commands, train_tasks) -> None:
    p = commands.add_parser("profile", help="one training step under the op-level profiler: where the time goes",
                            formatter_class=HelpFormatter)
    add_step_flags(p, batch_size=8, seq_len=128)
    p.add_argument("--trace", metavar="OUT.json", help="also write a Chrome trace (open it in ui.perfetto.dev)")
    p.add_argument("--inference", action="store_true", help="profile a forward pass without gradients instead")
    p.add_argument("--group-by", choices=["op", "module", "layer", "kind"], default="op", help="rows of the table")
    p.add_argument("--warmup", type=int, default=1, help="unprofiled steps first (numba loads, BLAS threads start)")
    p.set_defaults(func=profile_step)

    p = commands.add_parser("graph", help="draw the autograd graph of one loss (DOT text, or SVG/PNG via graphviz)",
                            formatter_class=HelpFormatter)
    add_step_flags(p, batch_size=2, seq_len=8)
    p.add_argument("--layers", type=int, default=1, help="keep only the first N encoder layers (a readable graph)")
    p.add_argument("--out", required=True, help="graph.dot (text) or graph.svg / .png / .pdf (needs graphviz)")
    p.set_defaults(func=draw_graph)


def add_step_flags(p: argparse.ArgumentParser, batch_size: int, seq_len: int) -> None:
    p.add_argument("--model", default="minilm", help="pretrained model directory or cached alias")
    p.add_argument("--task", choices=TASKS, default="cls",
                   help="cls: sequence classification; qa: span question answering; mlm: masked-LM")
    p.add_argument("--batch-size", type=int, default=batch_size, help="sequences in the batch")
    p.add_argument("--seq-len", type=int, default=seq_len, help="tokens per sequence (with --data: the most)")
    p.add_argument("--data", help="take the batch's texts (and labels) from this classification file (any format "
                   "`train classification` reads) instead of random tokens")
    p.add_argument("--freeze-layers", type=int, default=0, metavar="N",
                   help="keep embeddings and the lower N layers fixed")
    p.add_argument("--no-padding-free", dest="padding_free", action="store_false",
                   help="compute padding too, as transformers does")


def load_model(name: str, task: str, layers: int | None = None, **overrides):
    """The task's model from a checkpoint, with only its first `layers` encoder layers when given."""
    import minitransfer as mt

    config = mt.AutoConfig.from_pretrained(name)
    if layers is not None:
        if not 1 <= layers <= config.num_layers:
            raise UsageError(f"--layers {layers}: the model has {config.num_layers} encoder layers")
        overrides[{"bert": "num_hidden_layers", "distilbert": "n_layers"}[config.model_type]] = layers
    auto = {"cls": mt.AutoModelForSequenceClassification, "qa": mt.AutoModelForQuestionAnswering,
            "mlm": mt.AutoModelForMaskedLM}[task]
    extra = {"allow_new_head": True} if task == "mlm" else {}
    with _quiet():  # the dropped layers' weights and the new head would each be logged
        return auto.from_pretrained(name, **extra, **overrides)


@contextlib.contextmanager
def _quiet():
    logger = logging.getLogger("minitransfer")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def make_batch(args, model, tokenizer) -> dict:
    """A (batch, seq) batch for the task: texts from --data, else random tokens between [CLS] and [SEP]; targets
    drawn at random (a label per row, a span per window, 15% of the tokens masked)."""
    rng = np.random.default_rng(0)
    labels = None
    if args.data:
        from minitransfer.tasks.classification.data import read_classification_file

        data = read_classification_file(args.data, max_examples=args.batch_size)
        batch = dict(tokenizer(data.texts(), data.text_pairs(), padding=True, truncation=True, max_length=args.seq_len,
                               return_tensors="np"))
        labels = data.labels() % model.config.num_labels
    else:
        shape = (args.batch_size, args.seq_len)
        ids = rng.integers(1000, model.config.vocab_size, shape)
        ids[:, 0], ids[:, -1] = tokenizer.cls_token_id, tokenizer.sep_token_id
        batch = {"input_ids": ids, "attention_mask": np.ones(shape, np.int64)}
    if model.config.model_type != "bert":
        batch.pop("token_type_ids", None)
    lengths = batch["attention_mask"].sum(axis=1)
    if args.task == "cls":
        batch["labels"] = labels if labels is not None else rng.integers(0, model.config.num_labels, len(lengths))
    elif args.task == "qa":
        batch["start_positions"] = rng.integers(1, np.maximum(lengths - 1, 2))
        batch["end_positions"] = np.minimum(batch["start_positions"] + 2, lengths - 1)
    else:
        ids = batch["input_ids"].copy()
        columns = np.arange(ids.shape[1])
        inside = (columns > 0) & (columns[None] < lengths[:, None] - 1)  # never [CLS], [SEP] or padding
        masked = inside & (rng.random(ids.shape) < 0.15)
        masked[:, 1] |= ~masked.any(axis=1)  # at least one target per row
        batch["labels"] = np.where(masked, ids, -100)
        batch["input_ids"] = np.where(masked, tokenizer.mask_token_id, ids)
    return batch


def prepared(args, layers: int | None = None):
    """The model (frozen as --freeze-layers says) and the batch the step flags describe."""
    from minitransfer import AutoTokenizer, apply_freezing

    model = load_model(args.model, args.task, layers, padding_free=args.padding_free)
    apply_freezing(model, freeze_layers=args.freeze_layers)
    return model, make_batch(args, model, AutoTokenizer.from_pretrained(args.model))


def profile_step(args: argparse.Namespace) -> None:
    from minitransfer import no_grad, profile
    from minitransfer.optim import AdamW

    model, batch = prepared(args)
    optimizer = None if args.inference else AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-5)
    model.train(not args.inference)

    def step(prof=None) -> None:
        if optimizer is None:
            with no_grad():
                model(**batch)
            return
        model(**batch).loss.backward()
        with prof.region("AdamW.step") if prof is not None else contextlib.nullcontext():
            optimizer.step()
        optimizer.zero_grad()

    for _ in range(args.warmup):
        step()
    with profile() as prof:
        step(prof)
    shape = "x".join(map(str, batch["input_ids"].shape))
    real = int(batch["attention_mask"].sum())
    print(f"{type(model).__name__}, {'inference' if args.inference else 'one training step'} on a {shape} batch "
          f"({real} real tokens), {'padding-free' if model.config.padding_free else 'padded'}:\n")
    print(prof.table(group_by=args.group_by))
    print(f"\nbiggest costs: {prof.biggest_costs()}")
    if args.trace:
        print(f"trace: {prof.export_chrome_trace(args.trace)} (open it in https://ui.perfetto.dev)")


def draw_graph(args: argparse.Namespace) -> None:
    from minitransfer import viz

    model, batch = prepared(args, layers=args.layers)
    model.train()
    loss = model(**batch).loss
    print(viz.save(loss, args.out, model=model))
