"""Layer freezing recipes for fine-tuning: full, embeddings frozen, lower N layers frozen, head only.

Frozen parameters get requires_grad=False, so they get no gradient buffer, the optimizer skips them,
and — because nothing below them needs a gradient — backward stops at the lowest trainable layer.
"""
from __future__ import annotations

from minitransfer.errors import ConfigError
from minitransfer.models.pretrained import PreTrainedModel


def body_of(model: PreTrainedModel) -> PreTrainedModel:
    return getattr(model, model.base_model_prefix) if model.is_head_model else model


def apply_freezing(model: PreTrainedModel, freeze_embeddings: bool = False, freeze_layers: int = 0,
                   head_only: bool = False) -> list[str]:
    """Freeze parts of `model`'s body in place; returns the names of the frozen parameters.

    freeze_embeddings: the embedding block.
    freeze_layers: the lowest N encoder layers, and the embeddings with them: training embeddings under
        frozen layers would make backward run through every frozen layer, which is what freezing saves.
    head_only: the whole body (a linear probe on frozen features).
    """
    body = body_of(model)
    layers = body.encoder_layers()
    if not 0 <= freeze_layers <= len(layers):
        raise ConfigError(f"freeze_layers={freeze_layers}, but the model has {len(layers)} encoder layers")
    modules = []
    if head_only:
        modules = [body]
    else:
        if freeze_embeddings or freeze_layers:
            modules += body.embedding_layers()
        modules += layers[:freeze_layers]
    for module in modules:
        module.requires_grad_(False)
    ids = {id(p) for m in modules for p in m.parameters()}
    frozen = [name for name, p in model.named_parameters() if id(p) in ids]
    return frozen
