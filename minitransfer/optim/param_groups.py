"""Which parameters get weight decay: transformers' recipe (none on biases and LayerNorm weights)."""
from __future__ import annotations

from minitransfer.nn import LayerNorm, Module

# Name fragments that mean "no decay": biases and LayerNorm scales under BERT's and DistilBERT's names
# (DistilBERT's sa_layer_norm, output_layer_norm and vocab_layer_norm end in "layer_norm.weight").
NO_DECAY_FRAGMENTS = ("bias", "LayerNorm.weight", "layer_norm.weight")


def decay_parameter_names(model: Module) -> list[str]:
    """Names of the trainable parameters of `model` that should get weight decay, in definition order."""
    layer_norm_weights = {id(m.weight) for _, m in model.named_modules() if isinstance(m, LayerNorm)}
    return [name for name, p in model.named_parameters()
            if p.requires_grad and id(p) not in layer_norm_weights
            and not any(fragment in name for fragment in NO_DECAY_FRAGMENTS)]


def param_groups_for_weight_decay(model: Module, weight_decay: float) -> list[dict]:
    """Two AdamW param groups over the trainable parameters of `model`:
    `[{"params": decayed, "weight_decay": weight_decay}, {"params": the rest, "weight_decay": 0.0}]`."""
    decay = set(decay_parameter_names(model))
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    return [
        {"params": [p for name, p in trainable if name in decay], "weight_decay": weight_decay},
        {"params": [p for name, p in trainable if name not in decay], "weight_decay": 0.0},
    ]
