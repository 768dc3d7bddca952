"""Fine-tuning recipes for sequence classification: one run (with its freezing recipe) and evaluation."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from minitransfer import seeding
from minitransfer.models import AutoConfig, AutoModelForSequenceClassification, apply_freezing
from minitransfer.tasks.classification.data import read_classification_file
from minitransfer.tasks.classification.features import encode_classification
from minitransfer.tasks.classification.metrics import make_compute_metrics
from minitransfer.tokenization import AutoTokenizer
from minitransfer.training import Trainer, TrainingArguments
from minitransfer.training.trainer_utils import run_summary, unprefixed, without_evaluation


@dataclasses.dataclass
class Recipe:
    """What to fine-tune and how much of it: the knobs `compare` varies."""

    name: str = "full"
    from_scratch: bool = False
    freeze_embeddings: bool = False
    freeze_layers: int = 0
    head_only: bool = False


def load_classifier(model: str, num_labels: int, label_names: list[str], recipe: Recipe):
    """A sequence classifier on the pretrained body of `model` (or the same architecture, random, from scratch)."""
    id2label = dict(enumerate(label_names))
    label2id = {v: k for k, v in id2label.items()}
    if recipe.from_scratch:
        seeding.manual_seed(0)
        config = AutoConfig.from_pretrained(model, num_labels=num_labels, id2label=id2label, label2id=label2id)
        classifier = AutoModelForSequenceClassification.from_config(config)
    else:
        classifier = AutoModelForSequenceClassification.from_pretrained(model, num_labels=num_labels, id2label=id2label,
                                                                        label2id=label2id)
    frozen = apply_freezing(classifier, recipe.freeze_embeddings, recipe.freeze_layers, recipe.head_only)
    return classifier, frozen


def train_classification(model: str, train_file: str, eval_file: str | None, args: TrainingArguments,
                         recipe: Recipe = Recipe(), data_format: str | None = None, max_length: int = 128,
                         max_train_examples: int | None = None, max_eval_examples: int | None = None,
                         resume: bool = False, callbacks: list | None = None) -> dict:
    """Fine-tune `model` on a classification file and return the final metrics (also in OUT/metrics.jsonl);
    callbacks go to the Trainer (the CLI's PrinterCallback)."""
    train = read_classification_file(train_file, data_format, max_examples=max_train_examples)
    dev = (read_classification_file(eval_file, data_format, label_names=train.label_names,
                                    max_examples=max_eval_examples) if eval_file else None)
    tokenizer = AutoTokenizer.from_pretrained(model)
    seeding.manual_seed(args.seed)
    classifier, frozen = load_classifier(model, train.num_labels, train.label_names, recipe)
    trainable = classifier.num_parameters(trainable_only=True)
    print(f"{recipe.name}: {len(train)} training examples {train.label_counts()}, "
          f"{len(dev) if dev else 0} eval; {trainable:,} of {classifier.num_parameters():,} parameters trainable"
          + (f" ({len(frozen)} tensors frozen)" if frozen else ""))
    trainer = Trainer(classifier, args if dev else without_evaluation(args),
                      train_dataset=encode_classification(train, tokenizer, max_length),
                      eval_dataset=encode_classification(dev, tokenizer, max_length) if dev else None,
                      processing_class=tokenizer, compute_metrics=make_compute_metrics(train.label_names),
                      callbacks=callbacks)
    output = trainer.train(resume_from_checkpoint=True if resume else None)
    trainer.save_model(args.output_dir)  # the best model (load_best_model_at_end), beside its checkpoints
    return run_summary(trainer, output)


def evaluate_classifier(model_dir: str, eval_file: str, data_format: str | None = None, max_length: int = 128,
                        batch_size: int = 64, device: str = "cpu") -> dict:
    """Metrics of a fine-tuned classifier directory on a labeled file (labels named as in training), run on
    `device`."""
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, allow_new_head=False).eval()
    names = getattr(model.config, "id2label", None)
    label_names = [names[i] for i in range(len(names))] if names else None
    data = read_classification_file(eval_file, data_format, label_names=label_names)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    args = TrainingArguments(output_dir=str(Path(model_dir)), per_device_eval_batch_size=batch_size, disable_tqdm=True,
                             device=device)
    trainer = Trainer(model, args, eval_dataset=encode_classification(data, tokenizer, max_length),
                      processing_class=tokenizer, compute_metrics=make_compute_metrics(data.label_names))
    return unprefixed(trainer.evaluate())
