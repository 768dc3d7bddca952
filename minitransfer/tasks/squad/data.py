"""SQuAD v1.1 JSON: read it into flat examples, split it by article, write a subset back out.

    examples = read_squad("new_wiki_v1.0.json")         # list[SquadExample], file order
    train, dev = article_split(examples, dev_fraction=0.1, seed=0)
    write_squad(dev, "dev.json")                        # a SQuAD file again, for eval-squad

The format: {"version", "data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question",
"answers": [{"text", "answer_start"}]}]}]}]}. Bad files raise one InputError naming the file and the key.
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minitransfer.data.shipped import shipped_data_path
from minitransfer.errors import InputError


@dataclass
class SquadExample:
    """One question on one paragraph; `answers` are the gold spans [{"text": str, "answer_start": int}]."""

    id: str
    title: str
    context: str
    question: str
    answers: list[dict[str, Any]] = field(default_factory=list)


def sample_path() -> Path:
    """The SQuAD slice shipped with the package (2 articles, 204 questions): minitransfer/data/squad/sample.json."""
    return shipped_data_path("squad/sample.json")


def _get(obj: Any, key: str, kind: type | tuple[type, ...], where: str, path: Path) -> Any:
    """obj[key], checked to be a `kind`, else one InputError that names the file, the place and the key."""
    if not isinstance(obj, dict):
        raise InputError(f"{path}: {where} should be a JSON object, found {type(obj).__name__}; is this SQuAD JSON?")
    if key not in obj:
        raise InputError(f"{path}: {where} has no key {key!r}; a SQuAD v1.1 file needs it (is this SQuAD JSON?)")
    value = obj[key]
    # bool is an int in Python; an answer_start of `true` is still wrong.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise InputError(f"{path}: {where}[{key!r}] should be a {names}, found {type(value).__name__}")
    return value


def read_squad(path: str | os.PathLike) -> list[SquadExample]:
    """All questions of a SQuAD v1.1 JSON file, in file order, one SquadExample each.

    Raises InputError for a missing file, invalid JSON, a missing key (named, with its place in the file)
    or a duplicate question id.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"SQuAD file {path} not found; pass the path of a SQuAD v1.1 JSON file")
    try:
        dataset = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{path} is not valid UTF-8 JSON ({e}); a SQuAD v1.1 file is one JSON object") from e
    examples: list[SquadExample] = []
    for a, article in enumerate(_get(dataset, "data", list, "the top level", path)):
        title = _get(article, "title", str, f"data[{a}]", path)
        for p, paragraph in enumerate(_get(article, "paragraphs", list, f"data[{a}]", path)):
            where = f"data[{a}].paragraphs[{p}]"
            context = _get(paragraph, "context", str, where, path)
            for q, qa in enumerate(_get(paragraph, "qas", list, where, path)):
                qa_where = f"{where}.qas[{q}]"
                answers = []
                for n, ans in enumerate(_get(qa, "answers", list, qa_where, path)):
                    ans_where = f"{qa_where}.answers[{n}]"
                    answers.append({"text": _get(ans, "text", str, ans_where, path),
                                    "answer_start": _get(ans, "answer_start", int, ans_where, path)})
                examples.append(SquadExample(
                    id=str(_get(qa, "id", (str, int), qa_where, path)),
                    title=title,
                    context=context,
                    question=_get(qa, "question", str, qa_where, path),
                    answers=answers,
                ))
    seen: set[str] = set()
    for ex in examples:
        if ex.id in seen:
            raise InputError(f"{path}: question id {ex.id!r} occurs twice; ids must be unique to match predictions")
        seen.add(ex.id)
    return examples


def to_squad_json(examples: list[SquadExample], version: str = "1.1") -> dict[str, Any]:
    """The SQuAD JSON object of `examples`: articles by title and paragraphs by context, in first-seen order."""
    articles: dict[str, dict[str, list]] = {}
    for ex in examples:
        paragraphs = articles.setdefault(ex.title, {})
        paragraphs.setdefault(ex.context, []).append(
            {"id": ex.id, "question": ex.question, "answers": [dict(a) for a in ex.answers]}
        )
    data = [
        {"title": title, "paragraphs": [{"context": c, "qas": qas} for c, qas in paragraphs.items()]}
        for title, paragraphs in articles.items()
    ]
    return {"version": version, "data": data}


def write_squad(examples: list[SquadExample], path: str | os.PathLike, version: str = "1.1") -> Path:
    """Write `examples` as a SQuAD v1.1 JSON file that read_squad (and the official evaluator) read back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_squad_json(examples, version)), encoding="utf-8")
    return path


def article_split(examples: list[SquadExample], dev_fraction: float = 0.1, seed: int = 0,
                  by: str = "title") -> tuple[list[SquadExample], list[SquadExample]]:
    """Split into (train, dev) so that no article is in both; each keeps the input order.

    Articles (by="title"), or paragraphs (by="context", for a file that is one big "article", such as
    SQuADShifts' Reddit set), are shuffled with `random.Random(seed)`; dev takes each one in turn that keeps
    its question count at or under dev_fraction of all questions. If none fits, dev is the smallest one.
    """
    if not 0.0 < dev_fraction < 1.0:
        raise InputError(f"dev_fraction must lie strictly between 0 and 1, got {dev_fraction}")
    if by not in ("title", "context"):
        raise InputError(f"by must be 'title' (split articles) or 'context' (split paragraphs), got {by!r}")
    sizes: dict[str, int] = {}
    for ex in examples:
        key = getattr(ex, by)
        sizes[key] = sizes.get(key, 0) + 1
    if len(sizes) < 2:
        unit = "article" if by == "title" else "paragraph"
        raise InputError(
            f"all {len(examples)} questions belong to {len(sizes)} {unit}; a split needs at least 2"
            + ("; split by paragraph instead (by='context')" if by == "title" else "")
        )
    groups = list(sizes)
    random.Random(seed).shuffle(groups)
    target = dev_fraction * len(examples)
    dev_groups: set[str] = set()
    count = 0
    for key in groups:
        if count + sizes[key] <= target:
            dev_groups.add(key)
            count += sizes[key]
    if not dev_groups:
        dev_groups.add(min(groups, key=lambda k: sizes[k]))
    train = [ex for ex in examples if getattr(ex, by) not in dev_groups]
    dev = [ex for ex in examples if getattr(ex, by) in dev_groups]
    return train, dev
