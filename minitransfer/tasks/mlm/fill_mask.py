"""Fill-mask: the masked-LM head's top-k tokens for each [MASK], as transformers' fill-mask pipeline."""
from __future__ import annotations

import numpy as np

from minitransfer.autograd import no_grad
from minitransfer.errors import InputError


def fill_mask(model, tokenizer, text: str, top_k: int = 5) -> list[list[dict]]:
    """For each [MASK] in `text` (in order), the top_k predictions.

    Each prediction: {"score": probability, "token": id, "token_str": decoded token, "sequence": the text
    with this token filled in (other masks left as they are)}.
    """
    mask_id = tokenizer.mask_token_id
    enc = tokenizer([text], truncation=True, max_length=min(tokenizer.model_max_length, 512),
                    return_tensors="np")
    ids = enc["input_ids"][0]
    positions = np.flatnonzero(ids == mask_id)
    if len(positions) == 0:
        raise InputError(f"no {tokenizer.mask_token} token in {text!r}: "
                         f"put {tokenizer.mask_token} where a word should be predicted")
    model.eval()
    with no_grad():
        inputs = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        logits = model(**inputs).logits.numpy()[0]
    return mask_predictions(tokenizer, ids, positions, logits[positions], top_k)


def mask_predictions(tokenizer, ids: np.ndarray, positions: np.ndarray, logits: np.ndarray, top_k: int = 5,
                     target_ids: np.ndarray | None = None, skip_special_tokens: bool = True) -> list[list[dict]]:
    """The top_k predictions at each mask of `ids` (its positions; logits (n_masks, vocab)), scored by the softmax
    over the vocabulary; target_ids: only those tokens. Shared with the fill-mask pipeline."""
    logits = logits.astype(np.float64)
    probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    if target_ids is not None:
        probs, top_k = probs[:, target_ids], min(top_k, len(target_ids))
    results = []
    for position, row in zip(positions, probs):
        predictions = []
        for j in np.argsort(-row, kind="stable")[:top_k]:
            token = int(j if target_ids is None else target_ids[j])
            filled = ids.copy()
            filled[position] = token
            filled = filled[filled != tokenizer.pad_token_id]
            predictions.append({"score": float(row[j]), "token": token, "token_str": tokenizer.decode([token]),
                                "sequence": tokenizer.decode(filled.tolist(), skip_special_tokens=skip_special_tokens)})
        results.append(predictions)
    return results
