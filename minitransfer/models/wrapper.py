"""ModelWrapper: a Module that adds a training objective around a pretrained model and saves as that model."""
from __future__ import annotations

from minitransfer.nn import Module


class ModelWrapper(Module):
    """Saving, loading and weight tying pass through to the wrapped model (the attribute named by `wrapped`),
    so checkpoints keep the wrapped model's own names and layout."""

    wrapped = "model"

    def _inner(self):
        return getattr(self, self.wrapped)

    def save_pretrained(self, directory) -> None:
        self._inner().save_pretrained(directory)

    def state_dict(self):
        return self._inner().state_dict()

    def load_state_dict(self, state: dict, strict: bool = True):
        return self._inner().load_state_dict(state, strict)

    def tie_weights(self) -> None:
        self._inner().tie_weights()
