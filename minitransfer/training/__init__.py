"""Training: arguments, the Trainer loop with its callbacks, and task recipes built on it."""
from minitransfer.training.arguments import TrainingArguments
from minitransfer.training.callbacks import EarlyStoppingCallback, TrainerCallback, TrainerControl, TrainerState
from minitransfer.training.trainer import Trainer
from minitransfer.training.trainer_utils import EvalPrediction, PredictionOutput, TrainOutput

__all__ = ["TrainingArguments", "Trainer", "TrainerCallback", "TrainerControl", "TrainerState",
           "EarlyStoppingCallback", "EvalPrediction", "PredictionOutput", "TrainOutput"]
