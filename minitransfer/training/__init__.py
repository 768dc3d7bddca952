"""Training: arguments, the Trainer loop, and task recipes built on it."""
from minitransfer.training.arguments import TrainingArguments
from minitransfer.training.trainer import Trainer

__all__ = ["TrainingArguments", "Trainer"]
