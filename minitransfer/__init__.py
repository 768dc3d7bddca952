"""minitransfer: a small from-scratch deep-learning framework for transfer learning in NLP.

The stack, bottom to top: backend → autograd → ops → nn → models → tasks → training → cli.
Names mirror Hugging Face transformers (AutoModel..., from_pretrained, save_pretrained).
numba and CuPy are imported only when a kernel or a GPU array first needs them.
"""
from minitransfer.autograd import Tensor, enable_grad, no_grad, set_grad_enabled
from minitransfer.errors import CheckpointError, ConfigError, InputError, MiniTransferError
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
from minitransfer.random import manual_seed
from minitransfer.tokenization import AutoTokenizer

__version__ = "0.1.0"

__all__ = [
    "Tensor", "no_grad", "enable_grad", "set_grad_enabled", "manual_seed",
    "AutoTokenizer", "AutoConfig", "AutoModel", "AutoModelForMaskedLM", "AutoModelForSequenceClassification",
    "AutoModelForTokenClassification", "AutoModelForQuestionAnswering", "apply_freezing", "BertModel",
    "DistilBertModel",
    "BertForMaskedLM", "DistilBertForMaskedLM", "ModelConfig",
    "MiniTransferError", "CheckpointError", "ConfigError", "InputError",
]
