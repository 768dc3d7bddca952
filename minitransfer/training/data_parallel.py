"""Data parallelism for the Trainer: every rank holds rank 0's weights and the same data and settings, takes its
slice of each global batch, and averages gradients through a GradientReducer (the word embedding by the rows its
batches touched). One process is rank 0 of 1, and each step below does nothing."""
from __future__ import annotations

import contextlib
import os

import numpy as np

from minitransfer import backend
from minitransfer.distributed import GradientReducer, broadcast_parameters, check_identical
from minitransfer.errors import ConfigError


class DataParallel:
    """This process's part of a run over comm's ranks, for one train() call (close() at its end)."""

    def __init__(self, comm, model, args, num_examples: int, data_fingerprint: str | None):
        self.comm, self.model = comm, model
        self.reducer: GradientReducer | None = None
        self.sparse_embedding = None  # the word embedding, averaged by its touched rows (row_sparse)
        self.check_every = 0  # MINITRANSFER_CHECK_REPLICAS=N: compare every rank's weights each N steps (debug)
        self._token_ids: list[np.ndarray] = []
        if comm.size == 1:
            return
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
        self.sparse_embedding = row_sparse_embedding(model)
        self.reducer = GradientReducer([p for p in model.parameters() if p.requires_grad], comm,
                                       row_sparse=[self.sparse_embedding] if self.sparse_embedding else [])
        self.check_every = int(os.environ.get("MINITRANSFER_CHECK_REPLICAS", "0") or 0)

    def share(self, indices: np.ndarray) -> np.ndarray:
        """This rank's slice of a global batch of example indices."""
        return np.array_split(indices, self.comm.size)[self.comm.rank] if self.comm.size > 1 else indices

    def accumulating(self, last: bool):
        """The context of one micro-batch's backward: gradients are averaged only after the step's last one."""
        return contextlib.nullcontext() if self.reducer is None or last else self.reducer.no_sync()

    def saw(self, batch: dict) -> None:
        """Note the batch's token ids: the rows of the word embedding whose gradient is averaged."""
        if self.sparse_embedding is not None:
            self._token_ids.append(np.asarray(backend.to_numpy(batch["input_ids"])).ravel())

    def average_gradients(self) -> None:
        if self.reducer is None:
            return
        rows = {}
        if self.sparse_embedding is not None:
            ids = np.concatenate(self._token_ids) if self._token_ids else np.zeros(0, dtype=np.int64)
            rows[id(self.sparse_embedding)] = ids
        self._token_ids = []
        self.reducer.finish(rows)

    def sum(self, total: float, count: int) -> tuple[float, int]:
        """(loss sum, examples) over every rank."""
        if self.comm.size == 1:
            return total, count
        sums = np.array([total, count], dtype=np.float64)
        self.comm.allreduce(sums)
        return float(sums[0]), int(sums[1])

    def check_replicas(self, step: int) -> None:
        if self.reducer is not None and self.check_every and step % self.check_every == 0:
            check_identical(self.model.named_parameters(), self.comm)

    def close(self) -> None:
        if self.reducer is not None:
            self.reducer.remove()
            self.reducer = None


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
