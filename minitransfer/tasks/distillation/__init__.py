"""Knowledge distillation of a fine-tuned classifier into a smaller student (soft targets at temperature T).

    distillation_loss(student_logits, teacher_logits, labels, temperature=2.0, alpha=0.5)   # loss.py
    distill("runs/teacher", "runs/student-body", "train.tsv", "dev.tsv", args)              # recipe.py
"""
from minitransfer.tasks.distillation.loss import DistillationModel, distillation_loss
from minitransfer.tasks.distillation.recipe import distill, inference_speed, predict_logits

__all__ = ["DistillationModel", "distill", "distillation_loss", "inference_speed", "predict_logits"]
