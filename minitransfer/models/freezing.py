"""Layer freezing recipes for fine-tuning: full, embeddings frozen, lower N layers frozen, head only.

Freezing is Module.requires_grad_(False): a frozen parameter gets no gradient buffer, the optimizer skips it,
and, because nothing below it needs a gradient, backward stops at the lowest trainable layer.
"""
from __future__ import annotations

from minitransfer.errors import ConfigError
from minitransfer.models.pretrained import PreTrainedModel


def apply_freezing(model: PreTrainedModel, freeze_embeddings: bool = False, freeze_layers: int = 0,
                   head_only: bool = False) -> list[str]:
    """Freeze parts of `model`'s body in place; returns the names of the frozen parameters.

    freeze_embeddings: the embedding block.
    freeze_layers: the lowest N encoder layers, and the embeddings with them: training embeddings under
        frozen layers would make backward run through every frozen layer, which is what freezing saves.
    head_only: the whole body (a linear probe on frozen features).
    """
    body = model.body
    blocks = body.blocks()
    if not 0 <= freeze_layers <= len(blocks):
        raise ConfigError(f"freeze_layers={freeze_layers}, but the model has {len(blocks)} encoder layers")
    if head_only:
        modules = [body]
    else:
        modules = ([body.embeddings] if freeze_embeddings or freeze_layers else []) + blocks[:freeze_layers]
    for module in modules:
        module.requires_grad_(False)
    ids = {id(p) for m in modules for p in m.parameters()}
    return [name for name, p in model.named_parameters() if id(p) in ids]
