"""Readers for text-classification data: GLUE TSV, the MSR paraphrase release, SMS Spam, generic CSV and JSONL.

    train = read_classification_file("sst2/train.tsv")                       # format sniffed: "glue"
    dev = read_classification_file("sst2/dev.tsv", label_names=train.label_names)
    dev[0]               # Example(text="it 's a charming ...", text_pair=None, label=1)
    dev.labels()         # (872,) int64 label ids; dev.label_names[i] names id i

Every reader returns a ClassificationDataset. Label ids come from `label_names` (index = id):
- pass the training set's `label_names` when reading an evaluation set, so ids agree;
- otherwise non-negative integer labels keep their value as id ("0", "1" → 0, 1, even if one class is absent),
  SMS Spam uses ["ham", "spam"], and any other labels are sorted (numerically when they are all integers).
Bad input raises one InputError naming the file, the line and what to do.
"""
from __future__ import annotations

import csv
import itertools
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from minitransfer.errors import InputError

FORMATS = ("glue", "msr", "sms", "csv", "jsonl")

# Column pairs GLUE's tasks use, tried in order when no text column is named: (text, text_pair or None).
# Pairs come first so that QNLI's (question, sentence) is not read as the single text "sentence".
GLUE_TEXT_COLUMNS = (
    ("#1 String", "#2 String"),
    ("sentence1", "sentence2"),
    ("question", "sentence"),
    ("question1", "question2"),
    ("premise", "hypothesis"),
    ("text", "text_pair"),
    ("sentence", None),
    ("text", None),
)
GLUE_LABEL_COLUMNS = ("label", "Quality", "gold_label")
MSR_HEADER = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
SMS_LABELS = ["ham", "spam"]

# Above this many classes, integer labels are ids by rank rather than by value (guards against an id column).
_MAX_LABEL_VALUE = 1000
_INT_LABEL = re.compile(r"-?(0|[1-9][0-9]*)")


class Example(NamedTuple):
    """One classification example: a text (or a text pair) and its label id."""

    text: str
    text_pair: str | None
    label: int


@dataclass
class ClassificationDataset:
    """Examples with label ids, the names of those ids (index = id) and the file they came from."""

    examples: list[Example]
    label_names: list[str]
    source: str

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> Example:
        return self.examples[index]

    def __iter__(self) -> Iterator[Example]:
        return iter(self.examples)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def has_pairs(self) -> bool:
        """True when every example is a (text, text_pair) pair, as in MRPC."""
        return bool(self.examples) and self.examples[0].text_pair is not None

    def texts(self) -> list[str]:
        return [ex.text for ex in self.examples]

    def text_pairs(self) -> list[str] | None:
        """The second texts, or None for single-text data."""
        return [ex.text_pair for ex in self.examples] if self.has_pairs else None

    def labels(self) -> np.ndarray:
        """Label ids, shape (n,), int64."""
        return np.array([ex.label for ex in self.examples], dtype=np.int64)

    def label_counts(self) -> dict[str, int]:
        """Examples per label name, in label-id order (0 for a label with no example)."""
        counts = Counter(ex.label for ex in self.examples)
        return {name: counts.get(i, 0) for i, name in enumerate(self.label_names)}


class _RawRow(NamedTuple):
    line: int
    text: str
    text_pair: str | None
    label: str


def detect_format(path: str | Path) -> str:
    """Guess a file's format ("glue", "msr", "sms", "csv" or "jsonl") from its extension and first line."""
    path = _existing_file(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    with open(path, "rb") as f:
        first = f.readline()
    has_bom = first.startswith(b"\xef\xbb\xbf")
    fields = first.decode("utf-8-sig", errors="replace").rstrip("\r\n").split("\t")
    if fields == MSR_HEADER:
        # The original MSR release is a BOM'd .txt; GLUE's MRPC TSV has the same header without the BOM.
        return "msr" if has_bom or suffix == ".txt" else "glue"
    if len(fields) == 2 and fields[0] in SMS_LABELS:
        return "sms"
    if len(fields) >= 2 and any(name in GLUE_LABEL_COLUMNS for name in fields):
        return "glue"
    raise InputError(
        f"cannot tell the format of {path} from its name and first line {first[:80]!r}; "
        f"pass --format (one of {', '.join(FORMATS)})"
    )


def read_classification_file(path: str | Path, format: str | None = None, label_names: list[str] | None = None,
                             max_examples: int | None = None, *, text_column: str | None = None,
                             text_pair_column: str | None = None, label_column: str | None = None
                             ) -> ClassificationDataset:
    """Read a classification file into a ClassificationDataset.

    format: one of FORMATS; sniffed by detect_format when None.
    label_names: the ids to map labels onto (pass the train set's for an eval set); a label outside them is an error.
    max_examples: keep only the first this many examples.
    text_column / text_pair_column / label_column: column (or JSON key) names for glue, csv and jsonl files.
        csv and jsonl default to "text", "text_pair" (used when present) and "label"; glue picks by header name.
    """
    path = _existing_file(path)
    format = detect_format(path) if format is None else format
    if format not in FORMATS:
        raise InputError(f"unknown data format {format!r}; use one of {', '.join(FORMATS)}")
    if max_examples is not None and max_examples < 1:
        raise InputError(f"max_examples must be at least 1, got {max_examples}")
    columns = (text_column, text_pair_column, label_column)
    try:
        if format in ("glue", "msr"):
            rows = _read_glue(path, format, *columns)
        elif format == "sms":
            rows = _read_sms(path)
        elif format == "csv":
            rows = _read_csv(path, *columns)
        else:
            rows = _read_jsonl(path, *columns)
        rows = list(itertools.islice(rows, max_examples))  # the readers are generators: no line past the limit
    except UnicodeDecodeError as e:
        raise InputError(f"{path} is not UTF-8 text ({e}); convert it to UTF-8") from None
    if not rows:
        raise InputError(f"{path} has no examples; it is empty or holds only a header")
    if label_names is None:
        label_names = SMS_LABELS if format == "sms" else _default_label_names([r.label for r in rows])
    return ClassificationDataset(_to_examples(rows, list(label_names), path), list(label_names), str(path))


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"data file {path} does not exist (or is not a file); check the path")
    return path


def _default_label_names(labels: list[str]) -> list[str]:
    distinct = set(labels)
    if all(_INT_LABEL.fullmatch(label) for label in distinct):
        values = sorted(int(label) for label in distinct)
        if values[0] >= 0 and values[-1] < _MAX_LABEL_VALUE:
            return [str(i) for i in range(max(values[-1] + 1, 2))]
        return [str(v) for v in values]
    return sorted(distinct)


def _to_examples(rows: list[_RawRow], label_names: list[str], path: Path) -> list[Example]:
    """Check texts and map label strings to ids (the checks shared by every format)."""
    label_ids = {name: i for i, name in enumerate(label_names)}
    has_pairs = rows[0].text_pair is not None
    examples = []
    for row in rows:
        if not row.text.strip():
            raise InputError(f"{path}, line {row.line}: empty text; remove the line or fill in its text")
        if (row.text_pair is not None) != has_pairs:
            which = "has no" if row.text_pair is None else "has a"
            raise InputError(f"{path}, line {row.line}: {which} second text, unlike line {rows[0].line}; "
                             "give every example one text or every example two")
        if has_pairs and not row.text_pair.strip():
            raise InputError(f"{path}, line {row.line}: empty second text; remove the line or fill in its text")
        if row.label not in label_ids:
            raise InputError(f"{path}, line {row.line}: label {row.label!r} is not one of the training labels "
                             f"{label_names}; remove the line or add the label to the training data")
        pair = row.text_pair.strip() if has_pairs else None
        examples.append(Example(row.text.strip(), pair, label_ids[row.label]))
    return examples


def _missing_column(path: Path, name: str, found: list[str]) -> InputError:
    return InputError(f"{path}: no column {name!r}; columns found: {found}")


def _find_columns(path: Path, header: list[str], text: str | None, pair: str | None,
                  label: str | None) -> tuple[int, int | None, int]:
    """Indices of the text, text-pair and label columns in a header (named ones, else GLUE's usual names)."""
    if not header:
        raise InputError(f"{path} has no examples; it is empty")
    if text is None:
        for text_name, pair_name in GLUE_TEXT_COLUMNS:
            if text_name in header and (pair_name is None or pair_name in header):
                text, pair = text_name, pair_name
                break
        else:
            expected = sorted({name for names in GLUE_TEXT_COLUMNS for name in names if name})
            raise InputError(f"{path}: found no text column (expected one of {expected}); columns found: {header}")
    if label is None:
        label = next((name for name in GLUE_LABEL_COLUMNS if name in header), "label")
    for name in (text, pair, label):
        if name is not None and name not in header:
            raise _missing_column(path, name, header)
    return header.index(text), None if pair is None else header.index(pair), header.index(label)


def _read_table(path: Path, reader, header: list[str], text: str | None, pair: str | None,
                label: str | None, sep: str) -> Iterator[_RawRow]:
    """Rows of a delimited file whose header has already been read from `reader`."""
    i_text, i_pair, i_label = _find_columns(path, header, text, pair, label)
    for fields in reader:
        if not fields:  # blank line
            continue
        if len(fields) != len(header):
            raise InputError(f"{path}, line {reader.line_num}: expected {len(header)} {sep}-separated fields "
                             f"({header}), found {len(fields)}")
        yield _RawRow(reader.line_num, fields[i_text], None if i_pair is None else fields[i_pair],
                      fields[i_label].strip())


def _read_glue(path: Path, format: str, text: str | None, pair: str | None, label: str | None) -> Iterator[_RawRow]:
    # QUOTE_NONE as GLUE's loaders do: MRPC sentences contain '"' that are text, not CSV quoting.
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = [name.strip() for name in next(reader, [])]
        if format == "msr" and header and header != MSR_HEADER:
            raise InputError(f"{path}: an MSR paraphrase file starts with the header {MSR_HEADER}, found {header}; "
                             "pass --format glue for other TSV files")
        yield from _read_table(path, reader, header, text, pair, label, "tab")


def _read_sms(path: Path) -> Iterator[_RawRow]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        for fields in reader:
            if not fields:
                continue
            if len(fields) != 2:
                raise InputError(f"{path}, line {reader.line_num}: expected 2 tab-separated fields "
                                 f"(ham|spam, text), found {len(fields)}")
            yield _RawRow(reader.line_num, fields[1], None, fields[0].strip())


def _read_csv(path: Path, text: str | None, pair: str | None, label: str | None) -> Iterator[_RawRow]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = [name.strip() for name in next(reader, [])]
        if pair is None and "text_pair" in header and text in (None, "text"):
            pair = "text_pair"
        yield from _read_table(path, reader, header, text or "text", pair, label or "label", "comma")


def _read_jsonl(path: Path, text: str | None, pair: str | None, label: str | None) -> Iterator[_RawRow]:
    text, label = text or "text", label or "label"
    with open(path, encoding="utf-8-sig") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}, line {line_no}: not valid JSON ({e.msg}); each line must be one object") \
                    from None
            if not isinstance(obj, dict):
                raise InputError(f"{path}, line {line_no}: expected a JSON object, found {type(obj).__name__}")
            for name in (text, label):
                if name not in obj:
                    raise InputError(f"{path}, line {line_no}: no key {name!r}; keys found: {sorted(obj)}")
            second = obj.get(pair or "text_pair")
            if pair is not None and second is None:
                raise InputError(f"{path}, line {line_no}: no key {pair!r}; keys found: {sorted(obj)}")
            for name, value in ((text, obj[text]), (pair or "text_pair", second)):
                if value is not None and not isinstance(value, str):
                    raise InputError(f"{path}, line {line_no}: {name!r} must be a string, found {value!r}")
            value = obj[label]
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise InputError(f"{path}, line {line_no}: label must be a string or an integer, found {value!r}")
            yield _RawRow(line_no, obj[text], second, str(value).strip())
