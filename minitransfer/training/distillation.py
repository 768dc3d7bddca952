"""Knowledge distillation for classification (Hinton et al. 2015; the DistilBERT recipe's soft-target loss).

loss = alpha * T² * KL(softmax(teacher / T) ‖ softmax(student / T)) + (1 - alpha) * CE(student, labels)

The T² keeps the soft-target gradients on the same scale as the hard-label ones when T changes. The
teacher is fixed and the inputs are not augmented, so its logits are computed once, before training, and
travel with each batch (`teacher_logits`); a training step then runs only the student.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from minitransfer import ops
from minitransfer import random as mt_random
from minitransfer.autograd import Tensor, no_grad
from minitransfer.backend import get_array_module, to_device, to_numpy
from minitransfer.errors import InputError
from minitransfer.models import AutoModelForSequenceClassification
from minitransfer.models.outputs import ModelOutput
from minitransfer.models.wrapper import ModelWrapper
from minitransfer.tasks.batching import SEQUENCE_KEYS, ArrayDataset
from minitransfer.tasks.classification import encode_classification, make_compute_metrics
from minitransfer.tasks.classification_data import read_classification_file
from minitransfer.tokenization import AutoTokenizer
from minitransfer.training.arguments import TrainingArguments
from minitransfer.training.classification import Recipe, load_classifier
from minitransfer.training.trainer import Trainer
from minitransfer.training.trainer_utils import EvalPrediction


def distillation_loss(student_logits: Tensor, teacher_logits, labels=None, temperature: float = 2.0,
                      alpha: float = 0.5) -> Tensor:
    """Soft-target KL at temperature T (scaled by T², mean over the batch) weighted alpha, plus the hard-label
    cross-entropy weighted 1 - alpha. student_logits: (batch, classes) Tensor; teacher_logits: (batch, classes)
    array (no gradient); labels: (batch,) ints, needed when alpha < 1."""
    if temperature <= 0 or not 0 <= alpha <= 1:
        raise InputError(f"distillation needs temperature > 0 and alpha in [0, 1], got T={temperature}, alpha={alpha}")
    teacher = teacher_logits.data if isinstance(teacher_logits, Tensor) else teacher_logits
    xp = get_array_module(teacher)
    scaled = teacher.astype(student_logits.dtype) / temperature
    log_p = scaled - scaled.max(axis=-1, keepdims=True)
    log_p = log_p - xp.log(xp.exp(log_p).sum(axis=-1, keepdims=True))
    p = xp.exp(log_p)
    entropy = float((p * log_p).sum())  # the constant part of KL: sum p log p
    log_q = ops.log_softmax(student_logits * (1.0 / temperature), axis=-1)
    kl = (ops.sum(log_q * Tensor(p)) * -1.0 + entropy) * (1.0 / student_logits.shape[0])
    loss = kl * (alpha * temperature**2)
    if alpha < 1:
        if labels is None:
            raise InputError("alpha < 1 weights a hard-label loss: the batch needs labels")
        labels = labels.data if isinstance(labels, Tensor) else labels
        loss = loss + ops.cross_entropy(student_logits, labels) * (1.0 - alpha)
    return loss


class DistillationModel(ModelWrapper):
    """The student wrapped for the Trainer: forward(..., labels, teacher_logits) → ModelOutput(logits, loss).

    Without teacher_logits (evaluation) the loss is the plain cross-entropy. Saving passes through to the student.
    """

    wrapped = "student"

    def __init__(self, student, temperature: float = 2.0, alpha: float = 0.5):
        super().__init__()
        self.student, self.temperature, self.alpha = student, temperature, alpha

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None,
                teacher_logits=None) -> ModelOutput:
        out = self.student(input_ids, attention_mask, token_type_ids, labels=labels if teacher_logits is None else None)
        if teacher_logits is not None:
            out.loss = distillation_loss(out.logits, teacher_logits, labels, self.temperature, self.alpha)
        return out


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
            speed_repeats: int = 2) -> dict:
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
    mt_random.manual_seed(args.seed)
    student_model, _ = load_classifier(student, len(label_names), label_names, Recipe())
    print(f"teacher: {teacher_model.num_parameters():,} parameters, dev accuracy {teacher_metrics['accuracy']:.4f} "
          f"(its logits on {len(train)} training examples took {teacher_seconds:.1f} s); "
          f"student: {student_model.num_parameters():,} parameters; T={temperature}, alpha={alpha}")
    wrapped = DistillationModel(student_model, temperature, alpha)
    trainer = Trainer(wrapped, args, train_dataset=train_set, eval_dataset=dev_set, processing_class=tokenizer,
                      compute_metrics=compute)
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
