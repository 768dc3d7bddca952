"""Domain adaptation recipe: continue masked-LM training on a domain corpus, with held-out pseudo-perplexity
measured before and after on one fixed, seeded masking of the held-out text (so the two are comparable).

A checkpoint saved without its MLM head (MiniLM) gets a new head (dense → GELU → LayerNorm → decoder tied
to the word embeddings), reported by name; its "before" figure is then that of a random head.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from minitransfer import seeding
from minitransfer.data.masking import MLMMasker
from minitransfer.models import AutoModelForMaskedLM, apply_freezing
from minitransfer.tasks.mlm.data import encode_texts, fixed_masking, read_text_lines, split_holdout
from minitransfer.tasks.mlm.perplexity import masked_lm_perplexity
from minitransfer.tokenization import AutoTokenizer
from minitransfer.training import Trainer, TrainingArguments
from minitransfer.training.trainer_utils import run_summary, without_evaluation

PERPLEXITY_NOTE = ("masked-LM pseudo-perplexity: exp(mean cross-entropy) over a fixed seeded 15% token masking of "
                   "the held-out text; comparable between models on the same text and seed, not a left-to-right "
                   "perplexity")


def held_out_lines(text_file: str, eval_text_file: str | None, holdout: float,
                   max_train_examples: int | None = None, max_eval_examples: int | None = None, seed: int = 0):
    """(train lines, held-out lines): the eval file, or else the last `holdout` fraction of the text file.

    The split is made on the whole file first, so limiting the training lines never moves the held-out part.
    max_train_examples keeps a seeded random subset of the training lines, in file order (a corpus sorted
    by label, like the movie reviews, would otherwise give a one-sided subset); max_eval_examples the first N.
    """
    lines = read_text_lines(text_file)
    if eval_text_file:
        train, held = lines, read_text_lines(eval_text_file)
    else:
        train, held = split_holdout(lines, holdout)
    if max_train_examples and max_train_examples < len(train):
        keep = np.sort(np.random.default_rng(seed).choice(len(train), max_train_examples, replace=False))
        train = [train[i] for i in keep]
    return train, held[:max_eval_examples or None]


def heldout_dataset(tokenizer, lines: list[str], max_length: int = 128, windows_per_text: int = 1, seed: int = 0):
    """The held-out windows masked once (token-level 15%, seeded): the same positions for every model."""
    return fixed_masking(encode_texts(lines, tokenizer, max_length, windows_per_text),
                         MLMMasker.from_tokenizer(tokenizer), seed)


def train_mlm(model: str, text_file: str, args: TrainingArguments, *, eval_text_file: str | None = None,
              holdout: float = 0.1, max_length: int = 128, windows_per_text: int = 1, whole_word: bool = False,
              mlm_probability: float = 0.15, head_only: bool = False, max_train_examples: int | None = None,
              max_eval_examples: int | None = None, perplexity_seed: int = 0, resume: bool = False,
              callbacks: list | None = None) -> dict:
    """Masked-LM training of `model` on a text file (one document per line); returns metrics with
    perplexity_before / perplexity_after (also written to OUT/perplexity.json)."""
    tokenizer = AutoTokenizer.from_pretrained(model)
    train_lines, held_lines = held_out_lines(text_file, eval_text_file, holdout, max_train_examples, max_eval_examples,
                                             args.seed)
    seeding.manual_seed(args.seed)
    mlm = AutoModelForMaskedLM.from_pretrained(model, allow_new_head=True)
    new = list(mlm.loading_info["missing_keys"])
    frozen = apply_freezing(mlm, head_only=True) if head_only else []  # the decoder, tied to the embeddings, too
    if new:
        print(f"new masked-LM head (not in {model}, randomly initialized): {', '.join(new)}")
    train = encode_texts(train_lines, tokenizer, max_length, windows_per_text)
    print(f"train: {len(train)} windows ({train.num_tokens():,} tokens) from {len(train_lines)} lines; "
          f"{mlm.num_parameters(trainable_only=True):,} of {mlm.num_parameters():,} parameters trainable"
          + (f" ({len(frozen)} tensors frozen)" if frozen else "") + ("; whole-word masking" if whole_word else ""))
    heldout = before = None
    if held_lines:
        heldout = heldout_dataset(tokenizer, held_lines, max_length, windows_per_text, perplexity_seed)
        before = masked_lm_perplexity(mlm, heldout, args.per_device_eval_batch_size)
        print(f"held-out: {len(held_lines)} lines, {before['masked_tokens']:,} masked tokens; "
              f"pseudo-perplexity before: {before['perplexity']:.2f}")

    def evaluate(trainer: Trainer) -> dict:
        result = masked_lm_perplexity(mlm, heldout, args.per_device_eval_batch_size)
        return {"perplexity": result["perplexity"], "eval_loss": result["loss"]}

    args = dataclasses.replace(args, metric_for_best_model="perplexity", greater_is_better=False)
    trainer = Trainer(mlm, args if heldout is not None else without_evaluation(args),
                      train_dataset=train, processing_class=tokenizer,
                      evaluate_fn=evaluate if heldout is not None else None,
                      data_collator=MLMMasker.from_tokenizer(tokenizer, mlm_probability, whole_word),
                      callbacks=callbacks)
    output = trainer.train(resume_from_checkpoint=True if resume else None)
    trainer.save_model(args.output_dir)
    metrics = run_summary(trainer, output)
    if before is not None:
        metrics.update(perplexity_before=before["perplexity"], perplexity_after=trainer.state.best_metric,
                       heldout_lines=len(held_lines), heldout_masked_tokens=before["masked_tokens"],
                       perplexity_note=PERPLEXITY_NOTE)
        Path(args.output_dir, "perplexity.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def evaluate_perplexity(model: str, text_file: str, holdout: float = 0.0, max_length: int = 128,
                        windows_per_text: int = 1, max_eval_examples: int | None = None, seed: int = 0,
                        batch_size: int = 64, allow_new_head: bool = False) -> dict:
    """Pseudo-perplexity of a masked-LM model on a text file (or on its last `holdout` fraction, the part
    `train_mlm` holds out with the same fraction and seed)."""
    tokenizer = AutoTokenizer.from_pretrained(model)
    lines = read_text_lines(text_file)
    held = split_holdout(lines, holdout)[1] if holdout else lines
    held = held[:max_eval_examples or None]
    mlm = AutoModelForMaskedLM.from_pretrained(model, allow_new_head=allow_new_head or None)  # None: the helpful error
    result = masked_lm_perplexity(mlm, heldout_dataset(tokenizer, held, max_length, windows_per_text, seed), batch_size)
    return {**result, "lines": len(held), "note": PERPLEXITY_NOTE}
