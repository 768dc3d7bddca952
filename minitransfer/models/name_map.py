"""Checkpoint names → our names: the few renames real Hugging Face checkpoints need.

Our parameter names are transformers' own, so most keys map to themselves. What differs:
- the body prefix: a head model's body sits under `bert.` / `distilbert.`; a bare-body checkpoint
  (BertModel.save_pretrained) has no prefix, and a pretraining checkpoint loaded into a bare body has one
  to strip;
- LayerNorm parameters named `gamma` / `beta` in checkpoints written by early releases (and by Google's
  TF conversion scripts);
- buffers some releases saved that we compute on the fly.
"""
from __future__ import annotations

LEGACY_SUFFIXES = {".gamma": ".weight", ".beta": ".bias"}
# Saved by older transformers releases as persistent buffers; we build them on the fly.
IGNORED_KEYS = {"embeddings.position_ids", "bert.embeddings.position_ids", "distilbert.embeddings.position_ids"}


def rename_legacy(name: str) -> str:
    for old, new in LEGACY_SUFFIXES.items():
        if name.endswith(old):
            return name[: -len(old)] + new
    return name


def map_checkpoint_names(state: dict, model_keys: list[str], prefix: str) -> tuple[dict, list[str]]:
    """Rename checkpoint `state` to the model's key names.

    Returns (mapped state restricted to the model's keys, checkpoint keys the model does not use).
    """
    wanted = set(model_keys)
    model_has_prefix = any(k.startswith(prefix + ".") for k in model_keys)
    mapped, dropped = {}, []
    for key, array in state.items():
        if key in IGNORED_KEYS:
            continue
        name = rename_legacy(key)
        candidates = [name]
        if model_has_prefix and not name.startswith(prefix + "."):
            candidates.append(f"{prefix}.{name}")  # bare body checkpoint into a head model
        if not model_has_prefix and name.startswith(prefix + "."):
            candidates.append(name[len(prefix) + 1:])  # pretraining checkpoint into a bare body
        target = next((c for c in candidates if c in wanted), None)
        if target is None:
            dropped.append(key)
        else:
            mapped[target] = array
    return mapped, dropped
