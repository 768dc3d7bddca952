"""Auto classes: pick the architecture from config.json's model_type, as transformers does."""
from __future__ import annotations

import os

from minitransfer.errors import ConfigError
from minitransfer.io.hub import pop_hub_kwargs, resolve_model_path
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
from minitransfer.models.pretrained import pretrained_config


class _AutoBase:
    registry: dict[str, type] = {}
    task = ""

    @classmethod
    def model_class(cls, model_type: str) -> type:
        if model_type not in cls.registry:
            raise ConfigError(f"no {cls.__name__} for model_type {model_type!r}; supported: {sorted(cls.registry)}")
        return cls.registry[model_type]

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **kwargs):
        """Load the model class registered for the model_type of the checkpoint's config (or of `config=`).

        Takes the keywords of PreTrainedModel.from_pretrained (cache_dir, revision, config, dtype,
        ignore_mismatched_sizes, ..., and config overrides).
        """
        hub = pop_hub_kwargs(dict(kwargs))  # a copy: every keyword goes on to the model class
        path = resolve_model_path(name_or_path, **hub)
        hub.pop("local_files_only", None)
        model_type = pretrained_config(path, kwargs.get("config"), **hub).model_type
        return cls.model_class(model_type).from_pretrained(name_or_path, **kwargs)

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
    def from_pretrained(name_or_path: str | os.PathLike, **overrides) -> ModelConfig:
        """The config.json of a model folder, alias or cached hub id (resolved as in from_pretrained, with its
        cache_dir / revision / local_files_only), with the other keywords applied as overrides; token, proxies,
        trust_remote_code etc. are accepted and have nothing to do."""
        path = resolve_model_path(name_or_path, **pop_hub_kwargs(overrides))
        return pretrained_config(path).update(overrides)
