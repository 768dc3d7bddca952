"""Data parallelism for the Trainer: every rank starts from rank 0's weights with the same data and settings; it
then takes its slice of each global batch (Trainer._accumulate) and averages gradients through a GradientReducer,
the word embedding by the rows its batches touched."""
from __future__ import annotations

import os

from minitransfer.distributed import GradientReducer, broadcast_parameters
from minitransfer.errors import ConfigError


def start_ranks(model, args, num_examples: int, data_fingerprint: str | None, comm):
    """(reducer, row-sparse word embedding, check-replicas interval) once every rank holds the same model, data and
    settings; (None, None, 0) for one process. MINITRANSFER_CHECK_REPLICAS=N: compare the weights every N steps."""
    if comm.size == 1:
        return None, None, 0
    mine = {"examples": num_examples, "data": data_fingerprint,
            "parameters": [(n, tuple(p.shape)) for n, p in model.named_parameters()],
            "args": {k: v for k, v in args.to_dict().items() if k not in ("output_dir",)}}
    everyone = comm.allgather_object(mine)
    for rank, theirs in enumerate(everyone):
        for key in mine:
            if theirs[key] != everyone[0][key]:
                raise ConfigError(f"rank {rank} differs from rank 0 in its {key} (model, data and settings must "
                                  "be the same on every rank): start every rank with the same command")
    broadcast_parameters(model.parameters(), comm)
    sparse = row_sparse_embedding(model)
    reducer = GradientReducer([p for p in model.parameters() if p.requires_grad], comm,
                              row_sparse=[sparse] if sparse else [])
    return reducer, sparse, int(os.environ.get("MINITRANSFER_CHECK_REPLICAS", "0") or 0)


def row_sparse_embedding(model):
    """The word-embedding weight when its gradient lives only on the rows of the batch's token ids: it is trained,
    not tied to another parameter (an MLM decoder's gradient covers the whole vocabulary) and read by input_ids."""
    inner = model._inner() if hasattr(model, "_inner") else model  # a wrapper (prompting, distillation)
    if getattr(inner, "tied_weights", None):
        return None
    body = getattr(inner, getattr(inner, "base_model_prefix", ""), None) or inner
    if not hasattr(body, "get_input_embeddings"):
        return None
    weight = body.get_input_embeddings().weight
    return weight if weight.requires_grad else None
