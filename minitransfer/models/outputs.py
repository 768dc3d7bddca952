"""ModelOutput: what a model call returns, readable by attribute (`out.logits`), key (`out["logits"]`) or position
(`out[0]`), as transformers' ModelOutput."""
from __future__ import annotations

from minitransfer import ops
from minitransfer.models.inputs import label_array

# The fields a model may produce, in transformers' order (loss first): a field a model did not produce reads as
# None by attribute, and positions (`out[0]`, to_tuple) count only the fields present.
FIELDS = ("loss", "logits", "start_logits", "end_logits", "last_hidden_state", "pooler_output", "hidden_states",
          "attentions")


class ModelOutput(dict):
    """A dict of Tensors with attribute access; only the fields a model produced are keys.

    `out.loss` is None when no loss was computed (as transformers); a name that is no model field at all is an
    AttributeError, so a typo does not read as None. `out[0]` is the first present field in FIELDS order.
    """

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            if name in FIELDS:
                return None
            raise AttributeError(f"this output has no {name!r}; it has {list(self)}") from None

    def __setattr__(self, name, value):
        self[name] = value

    def __getitem__(self, key):
        if isinstance(key, (int, slice)):
            return self.to_tuple()[key]
        return super().__getitem__(key)

    def to_tuple(self) -> tuple:
        """The present fields' values: FIELDS order first, then any others in insertion order."""
        known = [self[k] for k in FIELDS if k in self]
        return tuple(known + [v for k, v in self.items() if k not in FIELDS])


def body_output(hidden, packed, extras: dict) -> ModelOutput:
    """A body's ModelOutput in the padded layout (B, S, H), from its packed rows (T, H) when `packed` is set, with
    hidden_states and attentions when the call asked for them."""
    out = ModelOutput(last_hidden_state=hidden if packed is None else packed.to_padded(hidden))
    out.update(padded_extras(packed, extras))
    return out


def padded_extras(packed, extras: dict) -> dict:
    """hidden_states (each (B, S, H)) and attentions (each (B, heads, S, S)) for a model's output."""
    out = {}
    if "hidden_states" in extras:
        states = extras["hidden_states"]
        out["hidden_states"] = states if packed is None else tuple(packed.to_padded(s) for s in states)
    if "attentions" in extras:
        out["attentions"] = extras["attentions"]
    return out


def per_token_output(logits, packed, labels, extras: dict) -> ModelOutput:
    """A per-token head's output (token classification, masked LM): logits (B, S, n) in the padded layout, from
    packed rows (T, n) when `packed` is set; with labels (B, S), the mean cross-entropy over the tokens whose label
    is not -100, as transformers computes it (on the packed path over real tokens: padding carries -100 anyway)."""
    out = ModelOutput(logits=logits if packed is None else packed.to_padded(logits), **padded_extras(packed, extras))
    if labels is not None:
        labels = label_array(labels, logits)
        if packed is not None:
            labels = packed.pack(labels)
        out.loss = ops.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
    return out
