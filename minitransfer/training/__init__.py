"""Training: TrainingArguments and the Trainer loop, with its callbacks and what it hands back (no task here)."""
from minitransfer.training.arguments import TrainingArguments
from minitransfer.training.callbacks import EarlyStoppingCallback, TrainerCallback, TrainerControl, TrainerState
from minitransfer.training.reporting import PrinterCallback
from minitransfer.training.trainer import Trainer
from minitransfer.training.trainer_utils import EvalPrediction, PredictionOutput, TrainOutput

__all__ = ["TrainingArguments", "Trainer", "TrainerCallback", "TrainerControl", "TrainerState",
           "EarlyStoppingCallback", "PrinterCallback", "EvalPrediction", "PredictionOutput", "TrainOutput"]
