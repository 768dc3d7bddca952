"""ModelOutput: what a model call returns, readable by attribute (`out.logits`), key (`out["logits"]`) or position
(`out[0]`), as transformers' ModelOutput."""
from __future__ import annotations

from minitransfer.autograd import Tensor
from minitransfer.backend import get_array_module, to_numpy
from minitransfer.errors import InputError

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


FLATTENED_KEYS = ("cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k", "seq_idx")


def flattened_bounds(kwargs: dict):
    """The sequence bounds of a flattened batch, from transformers' keyword names (DataCollatorWithFlattening's
    `return_flash_attn_kwargs=True`): cu_seq_lens_q, or None. Self-attention has one set of bounds, so
    cu_seq_lens_k must equal it; the max lengths and seq_idx follow from the bounds and are not needed."""
    unknown = sorted(set(kwargs) - set(FLATTENED_KEYS))
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {unknown}")
    q, k = kwargs.get("cu_seq_lens_q"), kwargs.get("cu_seq_lens_k")
    if q is None:
        q, k = k, None
    if q is not None and k is not None:
        if to_numpy(q).tolist() != to_numpy(k).tolist():
            raise InputError("cu_seq_lens_k differs from cu_seq_lens_q: self-attention needs one set of bounds")
    return q


def label_array(labels, like):
    """labels as an array on `like`'s device: a Tensor's data, or a list / tuple / array (as a user passes them)."""
    data = labels.data if isinstance(labels, Tensor) else labels
    return get_array_module(like.data).asarray(data)


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
