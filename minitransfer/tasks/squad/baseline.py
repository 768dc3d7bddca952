"""A trivial, model-free SQuAD baseline, so a model's EM/F1 can be read against something.

overlap_sentence_baseline: find the context sentence sharing the most words with the question and answer
with its first few words. It knows where to look and nothing about what to pick there.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

from minitransfer.tasks.squad.data import SquadExample
from minitransfer.tasks.squad.metrics import normalize_answer

# A sentence ends at . ! or ? followed by whitespace.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"\S+")


def _sentences(context: str) -> list[tuple[int, int]]:
    """(start, end) character spans of the sentences of `context`."""
    spans, begin = [], 0
    for match in _SENTENCE_END.finditer(context):
        spans.append((begin, match.start()))
        begin = match.end()
    spans.append((begin, len(context)))
    return [(s, e) for s, e in spans if context[s:e].strip()]


def overlap_sentence_baseline(examples: Sequence[SquadExample], n_words: int = 3) -> dict[str, str]:
    """{id: the first n_words words of the context sentence with the most (normalized) words in common
    with the question}; ties go to the earlier sentence. Each answer is a substring of its context."""
    predictions = {}
    for ex in examples:
        question_words = set(normalize_answer(ex.question).split())
        best, best_overlap = None, -1
        for begin, end in _sentences(ex.context):
            overlap = len(question_words & set(normalize_answer(ex.context[begin:end]).split()))
            if overlap > best_overlap:
                best, best_overlap = (begin, end), overlap
        if best is None:
            predictions[ex.id] = ""
            continue
        words = list(_WORD.finditer(ex.context, *best))[:n_words]
        predictions[ex.id] = ex.context[words[0].start():words[-1].end()]
    return predictions
