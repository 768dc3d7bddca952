"""Models: configs, the BERT and DistilBERT bodies, their heads, and the Auto classes."""
from minitransfer.models.auto import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)
from minitransfer.models.bert import (
    BertForMaskedLM,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
)
from minitransfer.models.config import ModelConfig
from minitransfer.models.distilbert import (
    DistilBertForMaskedLM,
    DistilBertForQuestionAnswering,
    DistilBertForSequenceClassification,
    DistilBertForTokenClassification,
    DistilBertModel,
)
from minitransfer.models.freezing import apply_freezing
from minitransfer.models.outputs import ModelOutput
from minitransfer.models.pretrained import PreTrainedModel

__all__ = [
    "AutoConfig", "AutoModel", "AutoModelForMaskedLM", "AutoModelForQuestionAnswering",
    "AutoModelForSequenceClassification", "AutoModelForTokenClassification", "BertModel", "DistilBertModel",
    "BertForMaskedLM", "DistilBertForMaskedLM", "BertForSequenceClassification", "DistilBertForSequenceClassification",
    "BertForTokenClassification", "DistilBertForTokenClassification", "BertForQuestionAnswering",
    "DistilBertForQuestionAnswering", "ModelConfig", "ModelOutput", "PreTrainedModel", "apply_freezing",
]
