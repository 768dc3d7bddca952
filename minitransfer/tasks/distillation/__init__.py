"""Knowledge distillation of a fine-tuned classifier into a smaller student (soft targets at temperature T).

    distillation_loss(student_logits, teacher_logits, labels, temperature=2.0, alpha=0.5)   # loss.py
    distill("runs/teacher", "runs/student-body", "train.tsv", "dev.tsv", args)              # recipe.py
"""
