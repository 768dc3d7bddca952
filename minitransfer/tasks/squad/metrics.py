"""The official SQuAD v1.1 evaluation (evaluate-v1.1.py, Rajpurkar et al. 2016), same logic, our style.

    evaluate("dev.json", {"5733be28...": "Saint Bernadette Soubirous", ...})   # {"exact_match": 81.2, "f1": 88.5}

An answer is normalized (lower case, punctuation removed, articles a/an/the removed, whitespace collapsed);
exact match and token-overlap F1 take the best over a question's gold answers; both are averaged over all
questions of the dataset in percent. A question without a prediction scores 0, as in the official script.
"""
from __future__ import annotations

import json
import logging
import os
import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from minitransfer.errors import InputError
from minitransfer.tasks.squad.data import SquadExample, read_squad

logger = logging.getLogger("minitransfer")

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lower case, drop ASCII punctuation, drop the articles a/an/the, collapse whitespace: "The  Cat!" -> "cat"."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match_score(prediction: str, ground_truth: str) -> bool:
    """True when the two answers are equal after normalize_answer."""
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def f1_score(prediction: str, ground_truth: str) -> float:
    """F1 of the normalized tokens the two answers share (counted with multiplicity), in [0, 1]."""
    predicted = normalize_answer(prediction).split()
    gold = normalize_answer(ground_truth).split()
    same = sum((Counter(predicted) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision = same / len(predicted)
    recall = same / len(gold)
    return 2 * precision * recall / (precision + recall)


def metric_max_over_ground_truths(metric: Callable[[str, str], float], prediction: str,
                                  ground_truths: Iterable[str]) -> float:
    """The best score of `prediction` against any of the gold answers."""
    return max(metric(prediction, gold) for gold in ground_truths)


def _questions(dataset: Any) -> list[tuple[str, list[str]]]:
    """(id, gold answer texts) of every question, from a path, a SQuAD JSON object or its "data" list,
    or a list of SquadExample."""
    if isinstance(dataset, (str, os.PathLike)):
        return [(ex.id, [a["text"] for a in ex.answers]) for ex in read_squad(Path(dataset))]
    if isinstance(dataset, Mapping):
        if "data" not in dataset:
            raise InputError("the dataset object has no 'data' key; pass SQuAD v1.1 JSON, its 'data' list, "
                             "a path or a list of SquadExample")
        dataset = dataset["data"]
    if isinstance(dataset, list) and all(isinstance(ex, SquadExample) for ex in dataset):
        return [(ex.id, [a["text"] for a in ex.answers]) for ex in dataset]
    try:
        return [(str(qa["id"]), [a["text"] for a in qa["answers"]])
                for article in dataset for paragraph in article["paragraphs"] for qa in paragraph["qas"]]
    except (KeyError, TypeError) as e:
        raise InputError(f"the dataset is not SQuAD v1.1 data (missing or wrong {e}); pass SQuAD v1.1 JSON, "
                         f"its 'data' list, a path or a list of SquadExample") from e


def _read_predictions(path: Path) -> dict[str, str]:
    try:
        predictions = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"cannot read predictions from {path} ({e}); it should be a JSON object {{id: answer}}") from e
    if not isinstance(predictions, dict):
        raise InputError(f"{path} holds a {type(predictions).__name__}; predictions are a JSON object {{id: answer}}")
    return predictions


def evaluate(dataset: Any, predictions: Mapping[str, str] | str | os.PathLike) -> dict[str, float]:
    """{"exact_match", "f1"} in percent over every question of `dataset`.

    dataset: a SQuAD v1.1 file path, the parsed JSON (or its "data" list), or a list of SquadExample.
    predictions: {question id: answer text}, or the path of such a JSON file; ids not in the dataset are
    ignored, as in the official script.
    """
    if isinstance(predictions, (str, os.PathLike)):
        predictions = _read_predictions(Path(predictions))
    questions = _questions(dataset)
    if not questions:
        raise InputError("the dataset has no questions to evaluate")
    exact_match = f1 = 0.0
    unanswered = []
    for qid, gold in questions:
        if not gold:
            raise InputError(f"question {qid!r} has no gold answer; SQuAD v1.1 evaluation needs at least one")
        if qid not in predictions:
            unanswered.append(qid)
            continue
        prediction = predictions[qid]
        if not isinstance(prediction, str):
            raise InputError(f"the prediction for {qid!r} is a {type(prediction).__name__}; it must be the answer text")
        exact_match += metric_max_over_ground_truths(exact_match_score, prediction, gold)
        f1 += metric_max_over_ground_truths(f1_score, prediction, gold)
    if unanswered:
        logger.warning(f"{len(unanswered)} of {len(questions)} questions have no prediction and score 0 "
                       f"(first: {', '.join(unanswered[:3])})")
    return {"exact_match": 100.0 * exact_match / len(questions), "f1": 100.0 * f1 / len(questions)}
