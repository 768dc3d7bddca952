"""fill-mask: the masked-LM head's best tokens for each [MASK], as transformers' fill-mask pipeline gives them.

    fill = pipeline("fill-mask", model="runs/mlm")
    fill("The movie was [MASK].")                       # [{"score", "token", "token_str", "sequence"}] * 5
    fill("[MASK] is the capital of [MASK].")           # one such list per [MASK]
    fill("The movie was [MASK].", targets=["good", "bad"])    # scores of those words only
    fill(["a [MASK] day", "the [MASK] end"])           # one result per text

Each mask's probabilities are its own softmax (several masks are not scored jointly, as in transformers).
"sequence" is the text with the token filled in, special tokens dropped when there is one mask; with several,
decoded with [CLS]/[SEP] and the other masks left in place, as transformers does.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from minitransfer.errors import InputError
from minitransfer.models import AutoModelForMaskedLM
from minitransfer.models.heads import MaskedLM
from minitransfer.pipelines.base import Pipeline, check_positive_int
from minitransfer.tasks.mlm.fill_mask import mask_predictions

logger = logging.getLogger("minitransfer")
TOKENIZER_OPTIONS = ("truncation", "max_length")


class FillMaskPipeline(Pipeline):
    """top_k (5) predictions per [MASK] of a masked-LM model; `targets` restricts them to given words."""

    task = "fill-mask"
    option_names = ("top_k", "targets", "tokenizer_kwargs")
    auto_class, model_kind, new_head_allowed = AutoModelForMaskedLM, MaskedLM, None  # None: its own clear error
    needs = "a model with its masked-LM head (BertForMaskedLM, DistilBertForMaskedLM)"

    def __call__(self, inputs: str | list[str], batch_size: int | None = None,
                 **options) -> list[dict[str, Any]] | list[list[dict[str, Any]]] | list[list[list[dict[str, Any]]]]:
        """inputs: a text with one or more [MASK] tokens, or a list of such texts (a list of one: as one text).
        Options: top_k (5), targets (a word or list of words), tokenizer_kwargs ({"truncation": True, ...})."""
        if isinstance(inputs, list):
            if not inputs:
                raise InputError("inputs is an empty list: pass at least one text")
            results = self.run(inputs, options, batch_size)
            return results[0] if len(inputs) == 1 else results
        return self.run([inputs], options, batch_size)[0]

    def sanitize(self, **options) -> dict[str, Any]:
        out = {}
        if "top_k" in options:
            out["top_k"] = check_positive_int("top_k", options["top_k"])
        if options.get("targets") is not None:
            out["target_ids"] = self.target_ids(options["targets"])
        kwargs = options.get("tokenizer_kwargs")
        if kwargs is not None:
            if not isinstance(kwargs, dict) or set(kwargs) - set(TOKENIZER_OPTIONS):
                raise InputError(f"tokenizer_kwargs must be a dict of {TOKENIZER_OPTIONS}, got {kwargs!r}")
            out["tokenizer_kwargs"] = dict(kwargs)
        return out

    def target_ids(self, targets: str | list[str]) -> np.ndarray:
        """Vocabulary ids of the target words, sorted; a word not in the vocabulary stands for its first piece."""
        targets = [targets] if isinstance(targets, str) else list(targets)
        vocab = self.tokenizer.get_vocab()
        ids = set()
        for target in targets:
            if not isinstance(target, str):
                raise InputError(f"targets must be words (str), got {target!r}")
            if target in vocab:
                ids.add(vocab[target])
                continue
            pieces = self.tokenizer.encode(target, add_special_tokens=False)
            if not pieces:
                logger.warning("The target %r is not in the model vocabulary and tokenizes to nothing; ignoring it",
                               target)
                continue
            logger.warning("The target %r is not in the model vocabulary; using its first piece %r instead",
                           target, self.tokenizer.convert_ids_to_tokens(pieces[0]))
            ids.add(pieces[0])
        if not ids:
            raise InputError(f"none of the targets {targets!r} gives a token: pass at least one word")
        return np.array(sorted(ids), dtype=np.int64)

    def preprocess(self, item, options):
        if not isinstance(item, str):
            raise InputError(f"fill-mask takes a str or a list of str, got {type(item).__name__}")
        rows = self.tokenize(item, **options.get("tokenizer_kwargs", {}))
        ids = rows[0]["input_ids"]
        positions = np.flatnonzero(ids == self.tokenizer.mask_token_id)
        if len(positions) == 0:
            raise InputError(f"no {self.tokenizer.mask_token} token in {item!r}: "
                             f"put {self.tokenizer.mask_token} where a word should be predicted")
        return rows, (ids, positions)

    def forward(self, batch, lengths):
        logits = self.model(**batch).logits.numpy()  # (batch, seq, vocab)
        masks = batch["input_ids"] == self.tokenizer.mask_token_id
        return [logits[i, masks[i]] for i in range(len(lengths))]  # (n_masks, vocab) per row

    def postprocess(self, state, outputs, options):
        ids, positions = state
        single = len(positions) == 1
        results = mask_predictions(self.tokenizer, ids, positions, outputs[0], options.get("top_k", 5),
                                   options.get("target_ids"), skip_special_tokens=single)
        return results[0] if single else results
