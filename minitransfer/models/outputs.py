"""ModelOutput: what a model call returns, readable by attribute (`out.logits`) or key (`out["logits"]`)."""
from __future__ import annotations


class ModelOutput(dict):
    """A dict of Tensors with attribute access; only the fields a model produced are present."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"this output has no {name!r}; it has {list(self)}") from None

    def __setattr__(self, name, value):
        self[name] = value
