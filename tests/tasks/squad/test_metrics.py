"""SQuAD v1.1 EM/F1: hand-computed cases, and the official evaluate-v1.1.py logic as a reference."""
import json
import logging
import re
import string
from collections import Counter

import pytest

from minitransfer.errors import InputError
from minitransfer.tasks.squad import (
    SquadExample,
    evaluate,
    exact_match_score,
    f1_score,
    normalize_answer,
    overlap_sentence_baseline,
    sample_path,
)


def official_evaluate(dataset, predictions):
    """evaluate-v1.1.py (Rajpurkar et al.), its functions inlined as published."""
    def normalize(s):
        s = s.lower()
        s = "".join(ch for ch in s if ch not in set(string.punctuation))
        s = re.sub(r"\b(a|an|the)\b", " ", s)
        return " ".join(s.split())

    def f1(prediction, ground_truth):
        p, g = normalize(prediction).split(), normalize(ground_truth).split()
        num_same = sum((Counter(p) & Counter(g)).values())
        if num_same == 0:
            return 0
        precision, recall = 1.0 * num_same / len(p), 1.0 * num_same / len(g)
        return (2 * precision * recall) / (precision + recall)

    em = f = total = 0
    for article in dataset:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                total += 1
                if qa["id"] not in predictions:
                    continue
                golds = [a["text"] for a in qa["answers"]]
                em += max(normalize(predictions[qa["id"]]) == normalize(g) for g in golds)
                f += max(f1(predictions[qa["id"]], g) for g in golds)
    return {"exact_match": 100.0 * em / total, "f1": 100.0 * f / total}


@pytest.mark.parametrize("text, normalized", [
    ("The  Cat!", "cat"),
    ("an apple, a pear and THE plum.", "apple pear and plum"),
    ("theatre anthem", "theatre anthem"),  # articles only as whole words
    ("A", ""),
    ("U.S. $1,000", "us 1000"),
    ("  tab\tand\nnewline ", "tab and newline"),
    ("“curly” quotes – dash", "“curly” quotes – dash"),  # only ASCII punctuation is removed
])
def test_normalize_answer(text, normalized):
    assert normalize_answer(text) == normalized


def test_exact_match_and_f1_by_hand():
    assert exact_match_score("The Cat.", "cat")
    assert not exact_match_score("black cat", "cat")
    # pred {cat, sat} vs gold {cat, sat, down}: precision 1, recall 2/3.
    assert f1_score("the cat sat", "cat sat down") == pytest.approx(0.8)
    # Shared tokens count with multiplicity: x x y vs x y y share one x and one y.
    assert f1_score("x x y", "x y y") == pytest.approx(2 / 3)
    assert f1_score("dog", "cat") == 0.0
    assert f1_score("the", "a") == 0.0  # both normalize to nothing: no shared token, F1 0 (as the official script)


def _dataset():
    qas = [
        {"id": "q1", "question": "Who sat?", "answers": [{"text": "The cat", "answer_start": 0},
                                                         {"text": "cat", "answer_start": 4}]},
        {"id": "q2", "question": "What did it do?", "answers": [{"text": "sat down", "answer_start": 8}]},
    ]
    return {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": "The cat sat down by the door.",
                                                                      "qas": qas}]}]}


def test_evaluate_by_hand(tmp_path, caplog):
    # q2: "sat down by door" vs "sat down": precision 2/4, recall 1, F1 2/3.
    predictions = {"q1": "cat", "q2": "sat down by the door"}
    expected = {"exact_match": 50.0, "f1": pytest.approx(100 * (1 + 2 / 3) / 2)}
    assert evaluate(_dataset(), predictions) == expected
    path = tmp_path / "d.json"
    path.write_text(json.dumps(_dataset()))
    pred_path = tmp_path / "p.json"
    pred_path.write_text(json.dumps(predictions))
    assert evaluate(path, pred_path) == expected
    assert evaluate(str(path), predictions) == expected
    assert evaluate(_dataset()["data"], predictions) == expected
    with caplog.at_level(logging.WARNING, logger="minitransfer"):
        assert evaluate(_dataset(), {"q1": "the cat", "other": "x"}) == {"exact_match": 50.0, "f1": 50.0}
    assert "1 of 2 questions have no prediction" in caplog.text and "q2" in caplog.text


def test_gold_answers_score_100(sample_examples):
    gold = {ex.id: ex.answers[0]["text"] for ex in sample_examples}
    assert evaluate(sample_examples, gold) == {"exact_match": 100.0, "f1": 100.0}
    # One crowd answer in the slice is just "A": it normalizes to nothing, so (officially) its F1 with itself is 0.
    gold = {ex.id: ex.answers[-1]["text"] for ex in sample_examples}
    assert [text for text in gold.values() if not normalize_answer(text)] == ["A"]
    assert evaluate(sample_examples, gold) == {"exact_match": 100.0, "f1": pytest.approx(100 * 203 / 204)}
    assert evaluate(sample_examples, {}) == {"exact_match": 0.0, "f1": 0.0}


def test_matches_official_script(sample_examples):
    dataset = json.loads(sample_path().read_text())["data"]
    predictions = overlap_sentence_baseline(sample_examples)
    predictions.update({ex.id: ex.answers[-1]["text"].upper() + "!" for ex in sample_examples[::7]})
    del predictions[sample_examples[3].id]
    ours, official = evaluate(sample_examples, predictions), official_evaluate(dataset, predictions)
    assert ours == pytest.approx(official, abs=1e-12)
    assert 0 < ours["exact_match"] < ours["f1"] < 100


def test_evaluate_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="no 'data' key"):
        evaluate({"version": "1.1"}, {})
    with pytest.raises(InputError, match="not SQuAD v1.1 data"):
        evaluate([{"title": "t"}], {})
    with pytest.raises(InputError, match="no gold answer"):
        evaluate([SquadExample("q", "t", "c", "why?")], {"q": "c"})
    with pytest.raises(InputError, match="must be the answer text"):
        evaluate(_dataset(), {"q1": ["cat"]})
    bad = tmp_path / "p.json"
    bad.write_text("[1, 2]")
    with pytest.raises(InputError, match="JSON object"):
        evaluate(_dataset(), bad)


def test_overlap_sentence_baseline(sample_examples):
    ex = SquadExample("s", "t", "Grass is green. The sky is blue today!  Water is wet.", "What color is the sky?")
    assert overlap_sentence_baseline([ex]) == {"s": "The sky is"}
    assert overlap_sentence_baseline([ex], n_words=1) == {"s": "The"}
    predictions = overlap_sentence_baseline(sample_examples)
    assert set(predictions) == {ex.id for ex in sample_examples}
    for ex in sample_examples:
        assert predictions[ex.id] in ex.context and 1 <= len(predictions[ex.id].split()) <= 3
