"""PreTrainedModel: from_pretrained / save_pretrained for every model, in the Hugging Face layout.

Loading maps checkpoint names onto ours through one readable table per architecture (models/name_map.py),
reports by name which weights were newly initialized and which checkpoint weights were dropped, and
re-ties shared weights (the MLM decoder and the word embeddings).
"""
from __future__ import annotations

import logging
from pathlib import Path

from minitransfer.errors import CheckpointError
from minitransfer.io.checkpoint import load_config, load_state_dict, save_checkpoint
from minitransfer.io.hub import resolve_model_path
from minitransfer.models.config import ModelConfig
from minitransfer.models.name_map import map_checkpoint_names
from minitransfer.nn import Module

logger = logging.getLogger("minitransfer")


class PreTrainedModel(Module):
    """Base class of bodies and heads. Subclasses set `model_type` and, for heads, `base_model_prefix`.

    `tied_weights` maps a parameter name to the name of the parameter it shares storage with.
    """

    model_type: str = ""
    base_model_prefix: str = ""
    is_head_model: bool = False  # a body under `base_model_prefix` plus a task head
    tied_weights: dict[str, str] = {}

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.loading_info: dict[str, list[str]] = {"missing_keys": [], "unexpected_keys": []}

    # ---- loading ----
    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **config_overrides) -> PreTrainedModel:
        """Load a model directory (config.json + model.safetensors or pytorch_model.bin) or a cached alias
        such as "minilm". Keyword arguments override config keys (e.g. hidden_dropout_prob=0.0, num_labels=3).
        """
        path = resolve_model_path(name_or_path)
        config = ModelConfig.from_dict(load_config(path))
        if cls.model_type and config.model_type != cls.model_type:
            raise CheckpointError(
                f"{path} holds a {config.model_type!r} checkpoint but {cls.__name__} is a {cls.model_type!r} "
                f"model: use the Auto class (e.g. AutoModel) or the {config.model_type} class"
            )
        allow_new_head = config_overrides.pop("allow_new_head", None)
        config = config.update(config_overrides)
        model = cls._build(config)
        state = load_state_dict(path)
        model.load_pretrained_state(state, source=str(path), allow_new_head=allow_new_head)
        model.eval()
        return model

    @classmethod
    def _build(cls, config: ModelConfig) -> PreTrainedModel:
        return cls(config)

    def load_pretrained_state(self, state: dict, source: str = "checkpoint", allow_new_head=None) -> None:
        """Load arrays named as in a transformers checkpoint; what is missing stays freshly initialized."""
        own = self.state_dict()
        mapped, dropped = map_checkpoint_names(state, list(own), self.base_model_prefix)
        missing = [k for k in own if k not in mapped and k not in self.tied_weights]
        if missing and len(missing) == len([k for k in own if k not in self.tied_weights]):
            raise CheckpointError(
                f"no weight in {source} matches {type(self).__name__}: is it a {self.model_type} checkpoint? "
                f"(first checkpoint keys: {list(state)[:5]})"
            )
        body = [k for k in missing if not self._is_head_key(k)]
        if body:
            raise CheckpointError(f"{source} lacks weights of the {self.model_type} body: {', '.join(body[:10])}"
                                  + (f" and {len(body) - 10} more" if len(body) > 10 else ""))
        if missing and allow_new_head is False:
            raise CheckpointError(f"{source} has no weights for {type(self).__name__}'s head ({', '.join(missing)})")
        self.check_new_head(missing, source, allow_new_head)
        self.load_state_dict(mapped, strict=False)
        self.tie_weights()
        self.loading_info = {"missing_keys": missing, "unexpected_keys": dropped}
        if missing:
            logger.warning("%s: newly initialized (not in %s): %s", type(self).__name__, source, ", ".join(missing))
        if dropped:
            logger.warning("%s: checkpoint weights not used (dropped): %s", type(self).__name__,
                           ", ".join(dropped))

    def check_new_head(self, missing: list[str], source: str, allow_new_head) -> None:
        """Hook for heads that must not silently start random (the masked-LM head used for fill-mask)."""

    def _is_head_key(self, name: str) -> bool:
        """Weights a checkpoint may lack: the task head, and BERT's pooler (MLM checkpoints drop it)."""
        in_body = not self.is_head_model or name.startswith(self.base_model_prefix + ".")
        return not in_body or ".pooler." in f".{name}"

    def tie_weights(self) -> None:
        """Make each tied parameter the same object as its source, so one update moves both."""
        for name, source in self.tied_weights.items():
            owner_path, attr = name.rsplit(".", 1)
            src_path, src_attr = source.rsplit(".", 1)
            owner = self.get_submodule(owner_path)
            setattr(owner, attr, getattr(self.get_submodule(src_path), src_attr))

    def get_submodule(self, path: str) -> Module:
        module: Module = self
        for part in path.split(".") if path else []:
            module = getattr(module, part)
        return module

    # ---- saving ----
    def save_pretrained(self, directory: str | Path) -> None:
        """Write config.json and model.safetensors so this library and transformers can load them."""
        state = {k: v for k, v in self.state_dict().items() if k not in self.tied_weights}
        config = self.config.to_dict()
        config["architectures"] = [type(self).__name__]
        save_checkpoint(directory, {k: _to_host(v) for k, v in state.items()}, config)


def _to_host(array):
    from minitransfer.backend import to_numpy  # noqa: PLC0415

    return to_numpy(array)
