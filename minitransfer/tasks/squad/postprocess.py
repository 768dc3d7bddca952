"""Start/end logits over windows -> answer text per question, as Hugging Face's run_qa.py post-processes.

    predictions = postprocess_predictions(examples, features, start_logits, end_logits)   # {id: text}

For each window: the n_best_size highest start logits and end logits among the context tokens; every pair
with start <= end and at most max_answer_length tokens is a candidate scored start_logit + end_logit. An
example's answer is its best candidate over all its windows, cut from the original context by the token
offsets; "" when no window has a valid pair. One difference from run_qa.py: it takes the top logits over
all tokens and then drops the non-context ones, so a weak model with its top logits on the question or
padding gets no answer ("empty"); picking among context tokens first answers from the context instead
(identical whenever the top logits are context tokens, as for any trained model).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from minitransfer.errors import InputError
from minitransfer.tasks.squad.data import SquadExample
from minitransfer.tasks.squad.features import SquadFeatures


def window_candidates(start_logits: np.ndarray, end_logits: np.ndarray, context_mask: np.ndarray, n_best_size: int = 20,
                      max_answer_length: int = 30) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The candidate spans of every window at once.

    start_logits, end_logits: (n_windows, seq) floats; context_mask: (n_windows, seq) bool, True on context tokens.
    Returns (scores, starts, ends), each (n_windows, k, k) with k = min(n_best_size, seq): pair (i, j) joins the
    window's i-th best start token with its j-th best end token; an invalid pair scores -inf.
    """
    start_logits = np.asarray(start_logits, dtype=np.float64)
    end_logits = np.asarray(end_logits, dtype=np.float64)
    if start_logits.shape != context_mask.shape or end_logits.shape != context_mask.shape:
        raise InputError(
            f"start_logits {start_logits.shape} and end_logits {end_logits.shape} must both have the features' "
            f"shape (n_windows, max_length) = {context_mask.shape}"
        )
    k = min(n_best_size, context_mask.shape[1])
    masked_start = np.where(context_mask, start_logits, -np.inf)
    masked_end = np.where(context_mask, end_logits, -np.inf)
    starts = np.argpartition(-masked_start, k - 1, axis=1)[:, :k]  # the k best, in no particular order
    ends = np.argpartition(-masked_end, k - 1, axis=1)[:, :k]
    start_scores = np.take_along_axis(masked_start, starts, axis=1)
    end_scores = np.take_along_axis(masked_end, ends, axis=1)
    starts, ends = np.broadcast_arrays(starts[:, :, None], ends[:, None, :])
    scores = start_scores[:, :, None] + end_scores[:, None, :]  # -inf wherever either token is not context
    valid = (ends >= starts) & (ends - starts + 1 <= max_answer_length)
    return np.where(valid, scores, -np.inf), starts, ends


def _check_features(examples: Sequence[SquadExample], features: SquadFeatures) -> None:
    if features.offset_mapping is None:
        raise InputError("these features have no offset_mapping; post-processing needs prepare_eval_features")
    if len(features) and (features.example_index.max() >= len(examples) or
                          any(examples[i].id != wid for i, wid in zip(features.example_index, features.example_id))):
        raise InputError("the features were not made from these examples; pass the same list to "
                         "prepare_eval_features and postprocess_predictions")


def postprocess_predictions(examples: Sequence[SquadExample], features: SquadFeatures, start_logits: np.ndarray,
                            end_logits: np.ndarray, n_best_size: int = 20, max_answer_length: int = 30,
                            return_nbest: bool = False) -> dict[str, str] | tuple[dict[str, str], dict[str, list]]:
    """The answer text of every example, {id: text}; "" for an example with no valid span (or no window).

    examples: the list given to prepare_eval_features; features: its result;
    start_logits, end_logits: (n_windows, max_length) model outputs for those windows, in order.
    With return_nbest, also {id: up to n_best_size candidates, best first}, each
    {"text", "score", "probability", "start", "end"} (start/end: character offsets into the context;
    probability: softmax of the scores over the list; a span found in two windows is listed once).
    """
    _check_features(examples, features)
    if n_best_size < 1 or max_answer_length < 1:
        raise InputError(f"n_best_size ({n_best_size}) and max_answer_length ({max_answer_length}) must be >= 1")
    offsets = features.offset_mapping
    scores, starts, ends = window_candidates(start_logits, end_logits, offsets[:, :, 0] >= 0,
                                             n_best_size, max_answer_length)
    n = len(features)
    flat = scores.reshape(n, -1)
    best = flat.argmax(axis=1)  # each window's best pair
    best_score = flat[np.arange(n), best]

    windows_of: dict[int, list[int]] = {}
    for w, i in enumerate(features.example_index.tolist()):
        windows_of.setdefault(i, []).append(w)

    predictions: dict[str, str] = {}
    nbest: dict[str, list[dict]] = {}
    for i, ex in enumerate(examples):
        windows = windows_of.get(i, [])
        predictions[ex.id] = ""
        if windows and np.isfinite(best_score[windows]).any():
            w = windows[int(np.argmax(best_score[windows]))]
            s, e = np.unravel_index(best[w], scores.shape[1:])
            char_start, char_end = offsets[w, starts[w, s, e], 0], offsets[w, ends[w, s, e], 1]
            predictions[ex.id] = ex.context[char_start:char_end]
        if return_nbest:
            nbest[ex.id] = _nbest(ex, windows, scores, starts, ends, offsets, n_best_size)
    return (predictions, nbest) if return_nbest else predictions


def _nbest(ex: SquadExample, windows: list[int], scores, starts, ends, offsets, n_best_size: int) -> list[dict]:
    """The best n_best_size distinct spans of one example over its windows."""
    candidates = []
    for w in windows:
        valid = np.nonzero(np.isfinite(scores[w]))
        for score, s, e in zip(scores[w][valid], starts[w][valid], ends[w][valid]):
            candidates.append((float(score), int(offsets[w, s, 0]), int(offsets[w, e, 1])))
    candidates.sort(key=lambda c: -c[0])
    seen: set[tuple[int, int]] = set()
    kept = []
    for score, char_start, char_end in candidates:
        if (char_start, char_end) not in seen:
            seen.add((char_start, char_end))
            kept.append({"text": ex.context[char_start:char_end], "score": score, "start": char_start, "end": char_end})
        if len(kept) == n_best_size:
            break
    if kept:
        weights = np.exp(np.array([c["score"] for c in kept]) - kept[0]["score"])
        for c, p in zip(kept, weights / weights.sum()):
            c["probability"] = float(p)
    return kept
