"""Models: configs, the BERT and DistilBERT bodies, their heads, and the Auto classes."""
from minitransfer.models.auto import AutoConfig, AutoModel, AutoModelForMaskedLM
from minitransfer.models.bert import BertModel
from minitransfer.models.config import ModelConfig
from minitransfer.models.distilbert import DistilBertModel
from minitransfer.models.masked_lm import BertForMaskedLM, DistilBertForMaskedLM
from minitransfer.models.outputs import ModelOutput
from minitransfer.models.pretrained import PreTrainedModel

__all__ = ["AutoConfig", "AutoModel", "AutoModelForMaskedLM", "BertModel", "DistilBertModel", "BertForMaskedLM",
           "DistilBertForMaskedLM", "ModelConfig", "ModelOutput", "PreTrainedModel"]
