"""minitransfer: a small from-scratch deep-learning framework for transfer learning in NLP.

The stack, bottom to top: backend → autograd → ops → nn → models → tasks → training → cli.
Names mirror Hugging Face transformers (AutoModel..., from_pretrained, save_pretrained).
numba and CuPy are imported only when a kernel or a GPU array first needs them.
"""
# Thread and spin settings for BLAS, OpenMP and numba: read when NumPy and numba load, so set first.
from minitransfer import process_settings  # noqa: F401, I001
from minitransfer.autograd import Tensor, enable_grad, no_grad, set_grad_enabled
from minitransfer.errors import CheckpointError, ConfigError, InputError, MiniTransferError
from minitransfer.host_memory import keep_freed_memory
from minitransfer.ops.autocast import autocast
from minitransfer.models import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    BertForMaskedLM,
    BertModel,
    DistilBertForMaskedLM,
    DistilBertModel,
    ModelConfig,
    apply_freezing,
)
from minitransfer import viz  # mt.viz.to_dot(loss)
from minitransfer.pipelines import pipeline
from minitransfer.profiler import profile
from minitransfer.seeding import manual_seed
from minitransfer.data.collators import (
    DataCollatorForLanguageModeling,
    DataCollatorForTokenClassification,
    DataCollatorWithFlattening,
    DataCollatorWithPadding,
    default_data_collator,
)
from minitransfer.tokenization import AutoTokenizer
from minitransfer.training import (
    EarlyStoppingCallback,
    EvalPrediction,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)

keep_freed_memory()  # freed activations stay mapped for the next step (host_memory.py; opt out by env)

__version__ = "0.1.0"

__all__ = [
    "Trainer", "TrainingArguments", "TrainerCallback", "TrainerControl", "TrainerState", "EarlyStoppingCallback",
    "EvalPrediction",
    "Tensor", "no_grad", "enable_grad", "set_grad_enabled", "manual_seed", "pipeline",
    "AutoTokenizer", "AutoConfig", "AutoModel", "AutoModelForMaskedLM", "AutoModelForSequenceClassification",
    "AutoModelForTokenClassification", "AutoModelForQuestionAnswering", "apply_freezing", "BertModel",
    "DistilBertModel",
    "BertForMaskedLM", "DistilBertForMaskedLM", "ModelConfig", "DataCollatorWithFlattening", "DataCollatorWithPadding",
    "DataCollatorForLanguageModeling", "DataCollatorForTokenClassification", "default_data_collator",
    "MiniTransferError", "CheckpointError", "ConfigError", "InputError",
    "profile", "viz", "autocast",
]
