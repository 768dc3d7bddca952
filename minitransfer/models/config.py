"""Model configs: config.json as an attribute bag, with each architecture's defaults and checks.

Keys keep Hugging Face's names (hidden_size, num_attention_heads, ... for BERT; dim, n_heads, ... for
DistilBERT) so a config round-trips through transformers unchanged.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

from minitransfer.errors import ConfigError

BERT_DEFAULTS = dict(
    vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
    hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, max_position_embeddings=512,
    type_vocab_size=2, initializer_range=0.02, layer_norm_eps=1e-12, pad_token_id=0, classifier_dropout=None,
    position_embedding_type="absolute",
)
DISTILBERT_DEFAULTS = dict(
    vocab_size=30522, dim=768, n_layers=6, n_heads=12, hidden_dim=3072, activation="gelu", dropout=0.1,
    attention_dropout=0.1, max_position_embeddings=512, initializer_range=0.02, qa_dropout=0.1,
    seq_classif_dropout=0.2, sinusoidal_pos_embds=False, pad_token_id=0,
)
# minitransfer's own key: run only the real tokens of a padded batch (nn/packing.py). False keeps the padded
# computation, transformers' own numbers to the last bit, for comparisons; transformers ignores the key.
for _defaults in (BERT_DEFAULTS, DISTILBERT_DEFAULTS):
    _defaults["padding_free"] = True
DEFAULTS = {"bert": BERT_DEFAULTS, "distilbert": DISTILBERT_DEFAULTS}
# Keys any model accepts: task-head settings and bookkeeping transformers writes.
GENERIC_KEYS = {"num_labels", "id2label", "label2id", "problem_type", "architectures", "model_type",
                "torch_dtype", "dtype", "transformers_version", "_name_or_path", "finetuning_task"}
SUPPORTED_ACTIVATIONS = {"gelu", "relu"}


class ModelConfig:
    """config.json's keys as attributes. `model_type` picks the defaults ('bert' or 'distilbert')."""

    def __init__(self, model_type: str, **values):
        if model_type not in DEFAULTS:
            raise ConfigError(f"unknown model_type {model_type!r}: minitransfer supports {sorted(DEFAULTS)}")
        self.__dict__["model_type"] = model_type
        merged = dict(DEFAULTS[model_type])
        merged.update(values)
        merged.pop("model_type", None)
        if "id2label" in merged:  # JSON stores the ids as strings; transformers turns them back into ints
            merged["id2label"] = {int(k): v for k, v in merged["id2label"].items()}
        if "num_labels" not in merged:
            merged["num_labels"] = len(merged["id2label"]) if "id2label" in merged else 2
        self.__dict__.update(merged)
        self.validate()

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        values = dict(values)
        model_type = values.pop("model_type", None)
        if model_type is None:
            raise ConfigError("config has no 'model_type': expected 'bert' or 'distilbert'")
        return cls(model_type, **values)

    @classmethod
    def from_json_file(cls, path: str | Path) -> ModelConfig:
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"cannot read config {path}: {e}") from e

    def update(self, overrides: dict) -> ModelConfig:
        """A copy with `overrides` applied; an unknown key is an error (a typo would otherwise be ignored)."""
        known = set(DEFAULTS[self.model_type]) | GENERIC_KEYS | set(self.__dict__)
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown config key(s) {unknown} for model_type {self.model_type!r}; "
                              f"known keys: {sorted(DEFAULTS[self.model_type])}")
        new = copy.deepcopy(self)
        new.__dict__.update(overrides)
        if "num_labels" in overrides and "id2label" not in overrides:
            new.__dict__.pop("id2label", None)
            new.__dict__.pop("label2id", None)
        new.validate()
        return new

    def validate(self) -> None:
        bert = self.model_type == "bert"
        hidden, heads = (self.hidden_size, self.num_attention_heads) if bert else (self.dim, self.n_heads)
        if hidden % heads:
            raise ConfigError(f"hidden size {hidden} is not a multiple of the number of attention heads {heads}")
        act = self.hidden_act if self.model_type == "bert" else self.activation
        if act not in SUPPORTED_ACTIVATIONS:
            raise ConfigError(f"activation {act!r} is not supported (supported: {sorted(SUPPORTED_ACTIVATIONS)})")
        if self.model_type == "bert" and self.position_embedding_type != "absolute":
            raise ConfigError(f"position_embedding_type {self.position_embedding_type!r} is not supported; "
                              "only 'absolute'")

    def to_dict(self) -> dict:
        out = {"model_type": self.model_type}
        out.update({k: v for k, v in self.__dict__.items() if k != "model_type"})
        if "id2label" in out:  # JSON keys are strings, as transformers writes them
            out["id2label"] = {str(k): v for k, v in out["id2label"].items()}
        return out

    def save(self, directory: str | Path) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / "config.json").write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    def __setattr__(self, name, value):
        self.__dict__[name] = value

    def __getattr__(self, name):
        raise AttributeError(f"config of model_type {self.__dict__.get('model_type')!r} has no key {name!r}")

    def __repr__(self) -> str:
        return f"ModelConfig({json.dumps(self.to_dict(), sort_keys=True)})"

    # Uniform names across architectures, for code that works with either body.
    @property
    def hidden(self) -> int:
        return self.hidden_size if self.model_type == "bert" else self.dim

    @property
    def num_layers(self) -> int:
        return self.num_hidden_layers if self.model_type == "bert" else self.n_layers
