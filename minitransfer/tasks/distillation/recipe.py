"""The distillation recipe: a fine-tuned classifier's logits computed once, a student trained on them
(loss.py), both scored and timed on the same evaluation set.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from minitransfer import seeding
from minitransfer.autograd import no_grad
from minitransfer.backend import to_device, to_numpy
from minitransfer.data.batching import SEQUENCE_KEYS, ArrayDataset
from minitransfer.errors import InputError
from minitransfer.models import AutoModelForSequenceClassification
from minitransfer.tasks.classification.data import read_classification_file
from minitransfer.tasks.classification.features import encode_classification
from minitransfer.tasks.classification.metrics import make_compute_metrics
from minitransfer.tasks.classification.recipe import Recipe, load_classifier
from minitransfer.tasks.distillation.loss import DistillationModel
from minitransfer.tokenization import AutoTokenizer
from minitransfer.training import EvalPrediction, Trainer, TrainingArguments


def predict_logits(model, dataset: ArrayDataset, batch_size: int = 64) -> np.ndarray:
    """Logits (n, classes) of a classifier over `dataset` in order (eval mode, no graph)."""
    was_training = model.training
    model.eval()
    chunks = []
    with no_grad():
        for start in range(0, len(dataset), batch_size):
            batch = dataset.batch(np.arange(start, min(start + batch_size, len(dataset))))
            inputs = {k: to_device(batch[k], model.device) for k in SEQUENCE_KEYS if k in batch}
            chunks.append(to_numpy(model(**inputs).logits.data))
    model.train(was_training)
    return np.concatenate(chunks)


def inference_speed(model, dataset: ArrayDataset, batch_size: int = 64, repeats: int = 2) -> float:
    """Examples per second of predict_logits over `dataset`: best of `repeats` timed passes after a warm-up batch."""
    predict_logits(model, ArrayDataset(dataset.batch(np.arange(min(batch_size, len(dataset))))), batch_size)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        predict_logits(model, dataset, batch_size)
        best = min(best, time.perf_counter() - started)
    return len(dataset) / best


def distill(teacher: str, student: str, train_file: str, eval_file: str, args: TrainingArguments,
            temperature: float = 2.0, alpha: float = 0.5, data_format: str | None = None, max_length: int = 128,
            max_train_examples: int | None = None, max_eval_examples: int | None = None,
            speed_repeats: int = 2, callbacks: list | None = None) -> dict:
    """Train `student` (a body or classifier directory) to imitate the fine-tuned classifier `teacher`.

    Returns the teacher's and the student's accuracy on `eval_file`, and both inference speeds measured here
    (examples/s, same data, batch size and process); also written to OUT/distillation.json.
    """
    teacher_model = AutoModelForSequenceClassification.from_pretrained(teacher, allow_new_head=False).eval()
    names = getattr(teacher_model.config, "id2label", None)
    if not names:
        raise InputError(f"{teacher} has no id2label: the teacher must be a fine-tuned classifier directory "
                         "(from `minitransfer train classification`)")
    label_names = [names[i] for i in range(len(names))]
    tokenizer = AutoTokenizer.from_pretrained(teacher)
    student_vocab = AutoTokenizer.from_pretrained(student).get_vocab()
    if student_vocab != tokenizer.get_vocab():
        raise InputError(f"{student} and {teacher} have different vocabularies: distillation feeds both the same "
                         "token ids, so the student must share the teacher's tokenizer")
    train = read_classification_file(train_file, data_format, label_names=label_names, max_examples=max_train_examples)
    dev = read_classification_file(eval_file, data_format, label_names=label_names, max_examples=max_eval_examples)
    train_set = encode_classification(train, tokenizer, max_length)
    dev_set = encode_classification(dev, tokenizer, max_length)
    compute = make_compute_metrics(label_names)

    started = time.perf_counter()
    train_set.arrays["teacher_logits"] = predict_logits(teacher_model, train_set, args.per_device_eval_batch_size)
    teacher_seconds = time.perf_counter() - started
    teacher_metrics = compute(EvalPrediction(predict_logits(teacher_model, dev_set, args.per_device_eval_batch_size),
                                             dev.labels()))
    seeding.manual_seed(args.seed)
    student_model, _ = load_classifier(student, len(label_names), label_names, Recipe())
    print(f"teacher: {teacher_model.num_parameters():,} parameters, dev accuracy {teacher_metrics['accuracy']:.4f} "
          f"(its logits on {len(train)} training examples took {teacher_seconds:.1f} s); "
          f"student: {student_model.num_parameters():,} parameters; T={temperature}, alpha={alpha}")
    wrapped = DistillationModel(student_model, temperature, alpha)
    trainer = Trainer(wrapped, args, train_dataset=train_set, eval_dataset=dev_set, processing_class=tokenizer,
                      compute_metrics=compute, callbacks=callbacks)
    output = trainer.train()
    trainer.save_model(args.output_dir)
    best = AutoModelForSequenceClassification.from_pretrained(args.output_dir).eval()  # the model kept on disk
    student_metrics = compute(EvalPrediction(predict_logits(best, dev_set, args.per_device_eval_batch_size),
                                             dev.labels()))
    teacher_speed = inference_speed(teacher_model, dev_set, args.per_device_eval_batch_size, speed_repeats)
    student_speed = inference_speed(best, dev_set, args.per_device_eval_batch_size, speed_repeats)
    result = {
        "teacher_accuracy": teacher_metrics["accuracy"], "student_accuracy": student_metrics["accuracy"],
        "accuracy_kept": student_metrics["accuracy"] / max(teacher_metrics["accuracy"], 1e-12),
        "teacher_examples_per_s": teacher_speed, "student_examples_per_s": student_speed,
        "speedup": student_speed / teacher_speed,
        "teacher_parameters": teacher_model.num_parameters(), "student_parameters": best.num_parameters(),
        "eval_examples": len(dev), "eval_batch_size": args.per_device_eval_batch_size,
        "train_examples": len(train), "temperature": temperature, "alpha": alpha,
        "train_runtime_s": output.metrics["train_runtime"],
    }
    Path(args.output_dir, "distillation.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
