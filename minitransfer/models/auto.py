"""Auto classes: pick the architecture from config.json's model_type, as transformers does."""
from __future__ import annotations

from pathlib import Path

from minitransfer.errors import ConfigError
from minitransfer.io.checkpoint import load_config
from minitransfer.io.hub import resolve_model_path
from minitransfer.models.bert import BertModel
from minitransfer.models.config import ModelConfig
from minitransfer.models.distilbert import DistilBertModel
from minitransfer.models.masked_lm import BertForMaskedLM, DistilBertForMaskedLM
from minitransfer.models.task_heads import (
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    DistilBertForQuestionAnswering,
    DistilBertForSequenceClassification,
    DistilBertForTokenClassification,
)


class _AutoBase:
    registry: dict[str, type] = {}
    task = ""

    @classmethod
    def model_class(cls, model_type: str) -> type:
        if model_type not in cls.registry:
            raise ConfigError(f"no {cls.__name__} for model_type {model_type!r}; supported: {sorted(cls.registry)}")
        return cls.registry[model_type]

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **config_overrides):
        """Load the model class registered for the checkpoint's model_type (see PreTrainedModel.from_pretrained)."""
        model_type = load_config(resolve_model_path(name_or_path)).get("model_type")
        return cls.model_class(model_type).from_pretrained(name_or_path, **config_overrides)

    @classmethod
    def from_config(cls, config: ModelConfig):
        """A randomly initialized model of the config's architecture (training from scratch)."""
        return cls.model_class(config.model_type)(config)


class AutoModel(_AutoBase):
    registry = {"bert": BertModel, "distilbert": DistilBertModel}


class AutoModelForMaskedLM(_AutoBase):
    registry = {"bert": BertForMaskedLM, "distilbert": DistilBertForMaskedLM}


class AutoModelForSequenceClassification(_AutoBase):
    registry = {"bert": BertForSequenceClassification, "distilbert": DistilBertForSequenceClassification}


class AutoModelForTokenClassification(_AutoBase):
    registry = {"bert": BertForTokenClassification, "distilbert": DistilBertForTokenClassification}


class AutoModelForQuestionAnswering(_AutoBase):
    registry = {"bert": BertForQuestionAnswering, "distilbert": DistilBertForQuestionAnswering}


class AutoConfig:
    @staticmethod
    def from_pretrained(name_or_path: str | Path, **overrides) -> ModelConfig:
        return ModelConfig.from_dict(load_config(resolve_model_path(name_or_path))).update(overrides)
