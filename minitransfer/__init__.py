"""minitransfer: a small from-scratch deep-learning framework for transfer learning in NLP.

The stack, bottom to top: backend → autograd → ops → nn → models → tasks → training → cli.
Names mirror Hugging Face transformers (AutoModel..., from_pretrained, save_pretrained).
"""
from minitransfer.autograd import Tensor, enable_grad, no_grad, set_grad_enabled
from minitransfer.random import manual_seed

__version__ = "0.1.0"

__all__ = ["Tensor", "no_grad", "enable_grad", "set_grad_enabled", "manual_seed"]
