"""Zero-shot and few-shot classification recipes with a masked-LM model and a pattern/verbalizer (PET).

Few-shot protocol (true few-shot, Perez et al. 2021): k training examples balanced over labels, drawn by a
seed; a fixed number of optimizer steps; no model selection on the evaluation set, which is scored once at the end.
The classifier baseline (`classifier_few_shot`) gets the same k examples and the same protocol.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from minitransfer import seeding
from minitransfer.errors import InputError
from minitransfer.models import AutoModelForMaskedLM
from minitransfer.tasks.classification.data import ClassificationDataset, read_classification_file
from minitransfer.tasks.classification.features import encode_classification
from minitransfer.tasks.classification.metrics import make_compute_metrics
from minitransfer.tasks.classification.recipe import Recipe, load_classifier
from minitransfer.tasks.prompting.prompts import (
    DEFAULT_PATTERN,
    DEFAULT_VERBALIZER,
    PromptClassifier,
    encode_prompt_dataset,
    verbalizer_token_ids,
)
from minitransfer.tokenization import AutoTokenizer
from minitransfer.training import Trainer, TrainingArguments
from minitransfer.training.trainer_utils import EvalPrediction, run_summary, unprefixed, without_evaluation


def _check_verbalizer(words, dataset: ClassificationDataset) -> None:
    if len(words) != dataset.num_labels:
        raise InputError(f"{len(words)} verbalizer words {list(words)} for {dataset.num_labels} labels "
                         f"{dataset.label_names}: give one word per label, in label order")


def zero_shot(model: str, data_file: str, pattern: str = DEFAULT_PATTERN, verbalizer=DEFAULT_VERBALIZER,
              data_format: str | None = None, max_length: int = 128, max_eval_examples: int | None = None,
              batch_size: int = 64) -> dict:
    """Accuracy (and macro-F1, F1) of `model` used through pattern and verbalizer, without training (a directory
    with an MLM head, or a headless one given a random head)."""
    tokenizer = AutoTokenizer.from_pretrained(model)
    data = read_classification_file(data_file, data_format, max_examples=max_eval_examples)
    mlm = AutoModelForMaskedLM.from_pretrained(model, allow_new_head=True)
    _check_verbalizer(verbalizer, data)
    classifier = PromptClassifier(mlm, verbalizer_token_ids(tokenizer, verbalizer))
    args = TrainingArguments(output_dir=".", per_device_eval_batch_size=batch_size, disable_tqdm=True)
    trainer = Trainer(classifier, args, processing_class=tokenizer,
                      compute_metrics=make_compute_metrics(data.label_names))
    logits, labels, _ = trainer.predict(encode_prompt_dataset(data, tokenizer, pattern, max_length))
    metrics = trainer.compute_metrics(EvalPrediction(logits, labels))
    metrics["predicted_counts"] = np.bincount(logits.argmax(-1), minlength=data.num_labels).tolist()
    metrics["random_head"] = bool(mlm.loading_info["missing_keys"])
    metrics["examples"] = len(data)
    return metrics


def sample_few_shot(dataset: ClassificationDataset, k: int, seed: int = 0) -> np.ndarray:
    """Indices of k training examples, balanced over labels (k // num_labels each, the remainder to the first
    labels), drawn without replacement by a seeded generator; returned shuffled."""
    labels = dataset.labels()
    num_labels = dataset.num_labels
    if k < num_labels:
        raise InputError(f"k={k} is fewer than the {num_labels} labels: give at least one example per label")
    rng = np.random.default_rng(seed)
    picked = []
    for label in range(num_labels):
        want = k // num_labels + (1 if label < k % num_labels else 0)
        pool = np.flatnonzero(labels == label)
        if len(pool) < want:
            raise InputError(f"{dataset.source} has {len(pool)} examples of label {dataset.label_names[label]!r}, "
                             f"fewer than the {want} that k={k} needs")
        picked.append(rng.choice(pool, size=want, replace=False))
    return rng.permutation(np.concatenate(picked))


def write_examples(data: ClassificationDataset, indices: np.ndarray, path: Path) -> Path:
    """The chosen examples as JSON lines ({"text", "label"}), so every method trains on the very same file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for i in indices:
            example = data[int(i)]
            f.write(json.dumps({"text": example.text, "label": data.label_names[example.label]}) + "\n")
    return path


def _read_run_data(model: str, train_file: str, eval_file: str, eval_format: str | None,
                   max_eval_examples: int | None):
    """(tokenizer, the k training examples, the evaluation set labeled with the training set's label names)."""
    train = read_classification_file(train_file)
    dev = read_classification_file(eval_file, eval_format, label_names=train.label_names,
                                   max_examples=max_eval_examples)
    return AutoTokenizer.from_pretrained(model), train, dev


def train_and_score(module, args: TrainingArguments, train_set, dev_set, tokenizer, label_names: list[str],
                    keep_model: bool = False, callbacks: list | None = None) -> dict:
    """The shared protocol: train for the set steps (no checkpoints, no evaluation on the way), then score once."""
    args = dataclasses.replace(without_evaluation(args), save_strategy="no")  # a few steps are cheaper to redo
    trainer = Trainer(module, args, train_dataset=train_set, eval_dataset=dev_set, processing_class=tokenizer,
                      compute_metrics=make_compute_metrics(label_names), callbacks=callbacks)
    output = trainer.train()
    if keep_model:
        trainer.save_model(args.output_dir)
    return {**run_summary(trainer, output), **unprefixed(trainer.evaluate())}


def prompt_few_shot(model: str, train_file: str, eval_file: str, args: TrainingArguments,
                    pattern: str = DEFAULT_PATTERN, verbalizer=DEFAULT_VERBALIZER, max_length: int = 128,
                    max_eval_examples: int | None = None, keep_model: bool = False,
                    eval_format: str | None = None, callbacks: list | None = None) -> dict:
    """PET fine-tuning of the whole MLM model on the examples of `train_file`, then one evaluation."""
    tokenizer, train, dev = _read_run_data(model, train_file, eval_file, eval_format, max_eval_examples)
    _check_verbalizer(verbalizer, train)
    seeding.manual_seed(args.seed)
    mlm = AutoModelForMaskedLM.from_pretrained(model, allow_new_head=True)
    classifier = PromptClassifier(mlm, verbalizer_token_ids(tokenizer, verbalizer))
    return train_and_score(classifier, args, encode_prompt_dataset(train, tokenizer, pattern, max_length),
                           encode_prompt_dataset(dev, tokenizer, pattern, max_length), tokenizer, train.label_names,
                           keep_model, callbacks)


def classifier_few_shot(model: str, train_file: str, eval_file: str, args: TrainingArguments, max_length: int = 128,
                        max_eval_examples: int | None = None, keep_model: bool = False,
                        eval_format: str | None = None, callbacks: list | None = None) -> dict:
    """The baseline: a new classification head on `model`, fine-tuned on the same examples, evaluated once."""
    tokenizer, train, dev = _read_run_data(model, train_file, eval_file, eval_format, max_eval_examples)
    seeding.manual_seed(args.seed)
    classifier, _ = load_classifier(model, train.num_labels, train.label_names, Recipe())
    return train_and_score(classifier, args, encode_classification(train, tokenizer, max_length),
                           encode_classification(dev, tokenizer, max_length), tokenizer, train.label_names, keep_model,
                           callbacks)


def few_shot_sweep(model: str, train_file: str, eval_file: str, ks: list[int], seeds: list[int],
                   args: TrainingArguments, pattern: str = DEFAULT_PATTERN, verbalizer=DEFAULT_VERBALIZER,
                   data_format: str | None = None, max_length: int = 128, max_eval_examples: int | None = None,
                   with_classifier: bool = False, callbacks: list | None = None) -> dict:
    """For each k and seed: sample k examples, PET-fine-tune (and optionally the classifier baseline) and score.

    Returns {"runs": [{k, seed, method, accuracy, ...}], "summary": {method: {k: (mean, std, n)}}};
    everything is also written to OUT/few_shot.json.
    """
    train = read_classification_file(train_file, data_format)
    out = Path(args.output_dir)
    runs = []
    for k in ks:
        for seed in seeds:
            folder = out / f"k{k}-seed{seed}"
            sample = write_examples(train, sample_few_shot(train, k, seed), folder / "train.jsonl")
            methods = ["prompt"] + (["classifier"] if with_classifier else [])
            for method in methods:
                run_args = TrainingArguments(**{**args.to_dict(), "output_dir": str(folder / method), "seed": seed})
                print(f"few-shot {method}: k={k}, seed={seed}")
                if method == "prompt":
                    metrics = prompt_few_shot(model, str(sample), eval_file, run_args, pattern, verbalizer, max_length,
                                              max_eval_examples, eval_format=data_format, callbacks=callbacks)
                else:
                    metrics = classifier_few_shot(model, str(sample), eval_file, run_args, max_length,
                                                  max_eval_examples, eval_format=data_format, callbacks=callbacks)
                print(f"few-shot {method}: k={k}, seed={seed}: accuracy {metrics['accuracy']:.4f}")
                runs.append({"k": k, "seed": seed, "method": method, **metrics})
    summary: dict = {}
    for run in runs:
        summary.setdefault(run["method"], {}).setdefault(run["k"], []).append(run["accuracy"])
    summary = {method: {k: (float(np.mean(v)), float(np.std(v)), len(v)) for k, v in by_k.items()}
               for method, by_k in summary.items()}
    result = {"runs": runs, "summary": summary}
    out.mkdir(parents=True, exist_ok=True)
    (out / "few_shot.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
