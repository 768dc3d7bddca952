"""minitransfer: a small from-scratch deep-learning framework for transfer learning in NLP.

The stack, bottom to top: backend → autograd → ops → nn → models → tasks → training → cli.
Names mirror Hugging Face transformers (AutoModel..., from_pretrained, save_pretrained).
numba and CuPy are imported only when a kernel or a GPU array first needs them.
"""
import os

# OpenBLAS's idle threads spin for ~2^28 cycles after every GEMM, holding the cores that the numba kernels run
# on next: inside the model the attention kernel took 34 ms per call instead of 15 ms (MiniLM 32x128, 2 cores;
# benchmarks/RESULTS.md). With a timeout of 2^4 cycles they sleep at once. It only takes effect if set before
# NumPy loads OpenBLAS (the CLI imports minitransfer first); a value already in the environment wins.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
# The same for numba's parallel kernels, which run on OpenMP (libgomp): by default its workers spin after each
# parallel loop, on the core the next GEMM needs. PASSIVE makes them sleep at once (measured: MiniLM training
# step or inference faster in 7 of 9 alternating pairs; benchmarks/RESULTS.md). Read when numba first loads libgomp.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from minitransfer.autograd import Tensor, enable_grad, no_grad, set_grad_enabled  # noqa: E402
from minitransfer.errors import CheckpointError, ConfigError, InputError, MiniTransferError
from minitransfer.host_memory import keep_freed_memory
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
from minitransfer.pipelines import pipeline
from minitransfer.random import manual_seed
from minitransfer.tasks.collators import (
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
]
