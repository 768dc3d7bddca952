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
    results = []
    for pos in positions:
        row = logits[pos].astype(np.float64)
        probs = np.exp(row - row.max())
        probs /= probs.sum()
        top = np.argsort(-probs, kind="stable")[:top_k]
        predictions = []
        for token in top:
            filled = ids.copy()
            filled[pos] = token
            predictions.append({
                "score": float(probs[token]),
                "token": int(token),
                "token_str": tokenizer.decode([int(token)]),
                "sequence": tokenizer.decode(filled.tolist(), skip_special_tokens=True),
            })
        results.append(predictions)
    return results
