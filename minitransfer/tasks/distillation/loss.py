"""Knowledge distillation for classification (Hinton et al. 2015; the DistilBERT recipe's soft-target loss).

loss = alpha * T² * KL(softmax(teacher / T) ‖ softmax(student / T)) + (1 - alpha) * CE(student, labels)

The T² keeps the soft-target gradients on the same scale as the hard-label ones when T changes. The
teacher is fixed and the inputs are not augmented, so its logits are computed once, before training, and
travel with each batch (`teacher_logits`); a training step then runs only the student.
"""
from __future__ import annotations

from minitransfer import ops
from minitransfer.autograd import Tensor
from minitransfer.backend import get_array_module
from minitransfer.errors import InputError
from minitransfer.models.outputs import ModelOutput
from minitransfer.models.wrapper import ModelWrapper


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
