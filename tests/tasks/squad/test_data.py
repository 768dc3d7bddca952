"""read_squad / write_squad / article_split on the shipped slice and on broken files."""
import json

import pytest

from minitransfer.errors import InputError
from minitransfer.tasks.squad import SquadExample, article_split, read_squad, sample_path, write_squad


def test_read_sample(sample_examples):
    assert len(sample_examples) == 204
    assert [t for t in dict.fromkeys(ex.title for ex in sample_examples)] == [
        "Armenian_Apostolic_Church", "Flag_of_the_United_States"]
    first = sample_examples[0]
    assert first.id == "5d6571572b22cd4dfcfbc8ea"
    assert first.question == "is there a delegate?"
    assert first.context.startswith("The Monastic Brotherhood consists of")
    assert first.answers[1] == {"text": "two delegates", "answer_start": 594}
    for ex in sample_examples:  # the slice is clean: every gold span is where it says
        for a in ex.answers:
            assert ex.context[a["answer_start"]:a["answer_start"] + len(a["text"])] == a["text"]


def _write(tmp_path, obj, name="bad.json"):
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj), encoding="utf-8")
    return path


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_squad(tmp_path / "nope.json")


def test_not_json(tmp_path):
    with pytest.raises(InputError, match="not valid UTF-8 JSON"):
        read_squad(_write(tmp_path, "id,question\n1,why"))


@pytest.mark.parametrize("broken, message", [
    ({"version": "1.1"}, r"the top level has no key 'data'"),
    ({"data": [{"title": "t", "paragraphs": [{"context": "c"}]}]}, r"data\[0\]\.paragraphs\[0\] has no key 'qas'"),
    ({"data": [{"title": "t", "paragraphs": [{"context": "c", "qas": [{"id": "1", "answers": []}]}]}]},
     r"qas\[0\] has no key 'question'"),
    ({"data": [{"title": "t", "paragraphs": [{"context": "c", "qas": [
        {"id": "1", "question": "q", "answers": [{"text": "c", "answer_start": "0"}]}]}]}]},
     r"answers\[0\]\['answer_start'\] should be a int, found str"),
    ({"data": [[1, 2]]}, r"data\[0\] should be a JSON object"),
])
def test_missing_or_wrong_key_is_named(tmp_path, broken, message):
    with pytest.raises(InputError, match=message):
        read_squad(_write(tmp_path, broken))


def test_duplicate_ids(tmp_path):
    qa = {"id": "same", "question": "q", "answers": []}
    data = {"data": [{"title": "t", "paragraphs": [{"context": "c", "qas": [qa, qa]}]}]}
    with pytest.raises(InputError, match="'same' occurs twice"):
        read_squad(_write(tmp_path, data))


def test_write_read_round_trip(tmp_path, sample_examples):
    subset = sample_examples[::3]
    path = write_squad(subset, tmp_path / "sub" / "dev.json")
    assert read_squad(path) == subset
    assert json.loads(path.read_text())["version"] == "1.1"
    # The whole slice comes back with the source's article and paragraph structure.
    original = json.loads(sample_path().read_text())
    rewritten = json.loads(write_squad(sample_examples, tmp_path / "all.json").read_text())
    assert [[p["context"] for p in a["paragraphs"]] for a in rewritten["data"]] == \
        [[p["context"] for p in a["paragraphs"]] for a in original["data"]]


def _examples(sizes):
    """Articles named a0, a1, ... with the given numbers of questions."""
    return [SquadExample(id=f"{t}-{q}", title=f"a{t}", context=f"context {t}", question="q")
            for t, n in enumerate(sizes) for q in range(n)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_article_split_keeps_articles_whole(seed):
    examples = _examples([5, 9, 3, 12, 7, 4, 8, 6, 10, 2])  # 66 questions
    train, dev = article_split(examples, dev_fraction=0.2, seed=seed)
    assert {ex.title for ex in train}.isdisjoint({ex.title for ex in dev})
    assert sorted(train + dev, key=examples.index) == examples
    assert train == [ex for ex in examples if ex in train]  # order kept
    assert 0 < len(dev) <= 0.2 * len(examples)
    assert article_split(examples, 0.2, seed) == (train, dev)  # deterministic


def test_article_split_seed_changes_the_split():
    examples = _examples([3] * 20)
    dev_titles = {frozenset(ex.title for ex in article_split(examples, 0.25, seed)[1]) for seed in range(5)}
    assert len(dev_titles) > 1


def test_article_split_falls_back_to_smallest_article(sample_examples):
    train, dev = article_split(sample_examples, dev_fraction=0.1)
    assert {ex.title for ex in dev} == {"Armenian_Apostolic_Church"}  # 97 < 107 questions; neither fits 10%
    assert len(train) == 107


def test_article_split_one_article():
    examples = _examples([30])
    with pytest.raises(InputError, match="by='context'"):
        article_split(examples)
    train, dev = article_split(examples[:1] + [SquadExample("x", "a0", "other", "q")], 0.5, by="context")
    assert {ex.context for ex in train}.isdisjoint({ex.context for ex in dev})
    with pytest.raises(InputError, match="dev_fraction"):
        article_split(examples, dev_fraction=1.0)
