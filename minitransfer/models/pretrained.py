"""PreTrainedModel: from_pretrained / save_pretrained for every model, in the Hugging Face layout.

Loading maps checkpoint names onto ours through one readable table per architecture (models/name_map.py),
reports by name which weights were newly initialized and which checkpoint weights were dropped, and
re-ties shared weights (the MLM decoder and the word embeddings).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from minitransfer.backend import to_numpy
from minitransfer.errors import CheckpointError, ConfigError
from minitransfer.io.checkpoint import DEFAULT_MAX_SHARD_SIZE, load_config, load_state_dict, save_checkpoint
from minitransfer.io.hub import drop_download_kwargs, resolve_model_path
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

    @property
    def body(self) -> PreTrainedModel:
        """The body (BertModel, DistilBertModel): this model, or a head model's `base_model_prefix` child."""
        return getattr(self, self.base_model_prefix) if self.is_head_model else self

    # ---- loading ----
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        config: ModelConfig | dict | str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None,
        revision: str | None = None,
        local_files_only: bool = True,
        ignore_mismatched_sizes: bool = False,
        dtype: Any = None,
        torch_dtype: Any = None,
        output_loading_info: bool = False,
        allow_new_head: bool | None = None,
        **config_overrides,
    ) -> PreTrainedModel | tuple[PreTrainedModel, dict]:
        """Load a model folder (config.json + model.safetensors, pytorch_model.bin, or their sharded forms), a
        cached alias such as "minilm", or a hub id ("bert-base-uncased") from a Hugging Face cache on disk.

        Args:
            name_or_path: resolved by io.hub.resolve_model_path (a local folder always wins).
            config: used instead of the checkpoint's config.json: a ModelConfig (copied, not changed), a dict,
                a config.json file, or a model folder / alias / hub id whose config.json to read.
            cache_dir, revision: the Hugging Face cache to look in and the ref name or commit hash there.
            local_files_only: accepted as in transformers; nothing is ever downloaded, so False changes nothing.
            ignore_mismatched_sizes: a checkpoint tensor whose shape differs from the model's (a classifier with
                another num_labels) is skipped, left newly initialized, and listed in loading_info's
                "mismatched_keys" as (name, checkpoint shape, model shape). Without it such a tensor is an error.
            dtype, torch_dtype: None, "auto" or float32 (str, NumPy or torch dtype); parameters are float32
                whatever the checkpoint stores. Anything else is a ConfigError.
            output_loading_info: return (model, {"missing_keys", "unexpected_keys", "mismatched_keys",
                "error_msgs"}) as transformers does.
            allow_new_head: see check_new_head (the masked-LM head).
            **config_overrides: config keys (hidden_dropout_prob=0.0, num_labels=3); an unknown key is an error.
                token, proxies, resume_download and trust_remote_code are accepted and have nothing to do (no
                download, no checkpoint code is run); force_download=True is an error.
        """
        path = resolve_model_path(name_or_path, cache_dir=cache_dir, revision=revision,
                                  local_files_only=local_files_only)
        drop_download_kwargs(config_overrides)
        _check_dtype(dtype, "dtype")
        _check_dtype(torch_dtype, "torch_dtype")
        given = config is not None
        config = pretrained_config(path, config, cache_dir=cache_dir, revision=revision)
        if cls.model_type and config.model_type != cls.model_type:
            raise CheckpointError(
                f"{'config=' if given else path} holds a {config.model_type!r} config but {cls.__name__} is a "
                f"{cls.model_type!r} model: use the Auto class (e.g. AutoModel) or the {config.model_type} class"
            )
        config = config.update(config_overrides)
        model = cls(config)
        state = load_state_dict(path)
        model.load_pretrained_state(state, source=str(path), allow_new_head=allow_new_head,
                                    ignore_mismatched_sizes=ignore_mismatched_sizes)
        model.eval()
        if output_loading_info:
            info = {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": [], "error_msgs": []}
            return model, {**info, **model.loading_info}
        return model

    def load_pretrained_state(self, state: dict, source: str = "checkpoint", allow_new_head=None,
                              ignore_mismatched_sizes: bool = False) -> None:
        """Load arrays named as in a transformers checkpoint; what is missing stays freshly initialized.

        A tensor whose shape differs from the model's is an error, or with ignore_mismatched_sizes skipped
        (left freshly initialized) and listed in loading_info["mismatched_keys"] as (name, checkpoint shape,
        model shape).
        """
        own = self.state_dict()
        mapped, dropped = map_checkpoint_names(state, list(own), self.base_model_prefix)
        mismatched = [(k, tuple(mapped[k].shape), tuple(v.shape)) for k, v in own.items()  # in the model's order
                      if k in mapped and tuple(mapped[k].shape) != tuple(v.shape)]
        if mismatched and not ignore_mismatched_sizes:
            shown = "; ".join(f"{k}: {a} in the checkpoint, {b} in the model" for k, a, b in mismatched[:10])
            raise CheckpointError(
                f"{len(mismatched)} tensor(s) of {source} have another shape than {type(self).__name__} expects "
                f"({shown}): the checkpoint was made for a different config. Pass ignore_mismatched_sizes=True "
                "to from_pretrained to leave them newly initialized (e.g. a classifier with another num_labels)."
            )
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
            raise CheckpointError(f"{source} has no weights for {type(self).__name__}'s head ({', '.join(missing)}): "
                                  "its outputs would come from a random head. Fine-tune it first (`minitransfer "
                                  "train ...`) and use the folder that run writes")
        self.check_new_head(missing, source, allow_new_head)
        for name, _, _ in mismatched:
            del mapped[name]
        self.load_state_dict(mapped, strict=False)
        self.tie_weights()
        self.loading_info = {"missing_keys": missing, "unexpected_keys": dropped}
        if ignore_mismatched_sizes:
            self.loading_info["mismatched_keys"] = mismatched
        if mismatched:
            logger.warning("%s: newly initialized (another shape in %s): %s", type(self).__name__, source,
                           ", ".join(f"{k} {a} -> {b}" for k, a, b in mismatched))
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

    # ---- saving ----
    def save_pretrained(
        self, directory: str | os.PathLike, max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE,
        safe_serialization: bool = True,
    ) -> None:
        """Write config.json and the weights so this library and transformers can load them.

        Weights up to `max_shard_size` (bytes, or "5GB", "200MB", "500KB") go into model.safetensors; more
        into model-0000i-of-0000N.safetensors shards plus model.safetensors.index.json, as transformers
        writes them. safe_serialization=False (pytorch_model.bin) is not supported: minitransfer writes
        safetensors only.
        """
        if not safe_serialization:
            raise CheckpointError("save_pretrained(safe_serialization=False): minitransfer writes safetensors "
                                  "only (transformers loads them); drop the argument")
        state = {k: v for k, v in self.state_dict().items() if k not in self.tied_weights}
        config = self.config.to_dict()
        config["architectures"] = [type(self).__name__]
        save_checkpoint(directory, {k: to_numpy(v) for k, v in state.items()}, config, max_shard_size=max_shard_size)


def pretrained_config(path: Path, config: ModelConfig | dict | str | os.PathLike | None = None,
                      **hub_kwargs) -> ModelConfig:
    """The config to build a model from: `config` when given (a ModelConfig, copied; a dict; a config.json
    file; or a model folder / alias / hub id, resolved with `hub_kwargs`), else `path`'s config.json."""
    if config is None:
        return ModelConfig.from_dict(load_config(path))
    if isinstance(config, ModelConfig):
        return config.update({})  # a copy: the caller's config is not changed by overrides
    if isinstance(config, dict):
        return ModelConfig.from_dict(config)
    if isinstance(config, (str, os.PathLike)):
        file = Path(config).expanduser()
        if file.is_file():
            return ModelConfig.from_json_file(file)
        return ModelConfig.from_dict(load_config(resolve_model_path(config, **hub_kwargs)))
    raise ConfigError(f"config= takes a ModelConfig, a dict, or the path of a config.json or model folder; "
                      f"got {type(config).__name__}")


# float32 parameters everywhere (DESIGN.md): lower precision would only be GPU compute, which loading can't pick.
_FLOAT32_NAMES = {"auto", "float32", "float", "torch.float32", "torch.float"}


def _check_dtype(value: Any, keyword: str) -> None:
    """Accept None, "auto" and float32 as a str, NumPy or torch dtype (str(torch.float32) is "torch.float32")."""
    if value is None:
        return
    name = value if isinstance(value, str) else str(value)
    if name not in _FLOAT32_NAMES and not name.startswith("torch."):
        try:
            name = np.dtype(value).name
        except (TypeError, ValueError):
            pass
    if name not in _FLOAT32_NAMES:
        raise ConfigError(
            f"{keyword}={value!r}: minitransfer keeps float32 parameters on the CPU (float16, bfloat16 and "
            f"float64 weights are not supported; checkpoints stored in them are loaded as float32). "
            f"Pass {keyword}='float32' or 'auto', or leave it out."
        )
