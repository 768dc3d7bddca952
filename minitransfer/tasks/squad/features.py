"""SQuAD examples -> fixed-length model windows, as Hugging Face's run_qa.py prepares them.

    feats = prepare_train_features(train_examples, tok, max_length=384, doc_stride=128)
    feats.input_ids, feats.start_positions        # (n_windows, 384), (n_windows,)
    feats = prepare_eval_features(dev_examples, tok, cache_dir="cache/")    # stored, reused when nothing changed
    feats.offset_mapping, feats.example_index     # (n_windows, 384, 2) with -1 off the context, (n_windows,)

Each window is `[CLS] question [SEP] context-slice [SEP] [PAD]...`: the question (left-stripped) whole, the
context cut into slices of the room left, consecutive slices overlapping by `doc_stride` tokens. These are
exactly the rows of `tok(questions, contexts, truncation="only_second", max_length=max_length,
stride=doc_stride, return_overflowing_tokens=True, padding="max_length")` — but each distinct context and
question is tokenized once (SQuAD asks ~5 questions per paragraph) and the windows are cut here with the
`tokenizers` rule, which is 3x faster. A training window's start/end positions are the tokens holding the
first answer's first and last characters, or 0 ([CLS]) when the answer is not wholly inside the window.
One deliberate difference from run_qa.py: when an answer starts inside a window's last context token,
run_qa.py's scan runs on past [SEP] and gives a start after the end; here it is that token.

Examples that cannot make a window are skipped and counted in `features.skipped` (logged as a warning):
an empty context or question, a question too long to leave room for the context, and (training) a gold
answer whose text is not at its answer_start in the context.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from minitransfer.data import npz_cache
from minitransfer.errors import InputError
from minitransfer.tasks.squad.data import SquadExample

logger = logging.getLogger("minitransfer")

# Texts per tokenizer call: big enough for the Rust side to batch, small enough that padding stays cheap.
CHUNK = 1000
# Longer than any text: the tokenizer then truncates nothing and does not warn that a context is long.
_NO_LIMIT = 2**31 - 1
SKIP_REASONS = ("empty_context", "empty_question", "question_too_long", "answer_mismatch")
# Bump when the feature layout or the windowing rule changes, so old cache files stop matching.
CACHE_FORMAT = 1
_ARRAYS = ("input_ids", "attention_mask", "token_type_ids", "example_index", "example_id",
           "start_positions", "end_positions", "offset_mapping")


@dataclass
class SquadFeatures:
    """Model windows for a list of SquadExample.

    input_ids, attention_mask, token_type_ids: (n_windows, max_length) int32.
    example_index: (n_windows,) int64, the position of each window's example in the examples list.
    example_id: (n_windows,) str, that example's id.
    start_positions, end_positions: (n_windows,) int64 token indices (0 = [CLS]: no answer here); training only.
    offset_mapping: (n_windows, max_length, 2) int32 character spans into the context, -1 on every token
        that is not context ([CLS], question, [SEP], padding); evaluation only.
    skipped: how many examples made no window, by reason (see SKIP_REASONS).
    """

    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray
    example_index: np.ndarray
    example_id: np.ndarray
    start_positions: np.ndarray | None = None
    end_positions: np.ndarray | None = None
    offset_mapping: np.ndarray | None = None
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SKIP_REASONS, 0))

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def max_length(self) -> int:
        return self.input_ids.shape[1]

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Every array (None ones left out) and the skip counts: what the feature cache stores."""
        arrays = {name: getattr(self, name) for name in _ARRAYS if getattr(self, name) is not None}
        return {**arrays, "skipped": np.array([self.skipped[r] for r in SKIP_REASONS], dtype=np.int64)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> SquadFeatures:
        return cls(**{name: arrays.get(name) for name in _ARRAYS},
                   skipped=dict(zip(SKIP_REASONS, (int(x) for x in arrays["skipped"]))))

    def model_inputs(self, rows: slice | np.ndarray = slice(None)) -> dict[str, np.ndarray]:
        """input_ids, attention_mask, token_type_ids of the windows `rows`: what a model call takes."""
        return {
            "input_ids": self.input_ids[rows],
            "attention_mask": self.attention_mask[rows],
            "token_type_ids": self.token_type_ids[rows],
        }


def prepare_train_features(examples: Sequence[SquadExample], tokenizer, max_length: int = 384, doc_stride: int = 128,
                           cache_dir: str | os.PathLike | None = None) -> SquadFeatures:
    """Training windows with start_positions/end_positions of each example's first answer.

    tokenizer: a minitransfer BertTokenizer (AutoTokenizer.from_pretrained). With `cache_dir`, the result is
    stored as an .npz keyed by the examples, the tokenizer and the lengths, and loaded on the next call.
    An example without answers gets [CLS] positions in every window, as run_qa.py does.
    """
    return _cached("train", examples, tokenizer, max_length, doc_stride, cache_dir)


def prepare_eval_features(examples: Sequence[SquadExample], tokenizer, max_length: int = 384, doc_stride: int = 128,
                          cache_dir: str | os.PathLike | None = None) -> SquadFeatures:
    """Evaluation windows with the context offsets post-processing needs (answers are not read)."""
    return _cached("eval", examples, tokenizer, max_length, doc_stride, cache_dir)


def _cached(kind: str, examples, tokenizer, max_length: int, doc_stride: int, cache_dir) -> SquadFeatures:
    """The features, from cache_dir/squad-{kind}-{key}.npz when one matches every input, else built (and stored)."""
    _check_lengths(max_length, doc_stride)
    if len(examples) == 0:
        raise InputError("no SQuAD examples to prepare; pass a non-empty list (read_squad gives one)")
    if cache_dir is None:
        return _build(kind, examples, tokenizer, max_length, doc_stride)
    records = ([ex.id, ex.title, ex.context, ex.question, [[a["text"], a["answer_start"]] for a in ex.answers]]
               for ex in examples)
    key = [CACHE_FORMAT, npz_cache.fingerprint(records), npz_cache.tokenizer_fingerprint(tokenizer), int(max_length),
           int(doc_stride)]
    path = npz_cache.cache_path(cache_dir, f"squad-{kind}", key)
    arrays = npz_cache.load_arrays(path, required=_ARRAYS[:5] + ("skipped",))
    if arrays is None:
        features = _build(kind, examples, tokenizer, max_length, doc_stride)
        npz_cache.save_arrays(features.to_arrays(), path)
        return features
    features = SquadFeatures.from_arrays(arrays)
    _report_skipped(features.skipped, len(examples), max_length, doc_stride, longest_question=None)
    return features


def _check_lengths(max_length: int, doc_stride: int) -> None:
    for name, value, low in (("max_length", max_length, 4), ("doc_stride", doc_stride, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise InputError(f"{name} must be an int >= {low}, got {value!r}")


def _tokenize(tokenizer, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(ids (n,), offsets (n, 2)) int32 of each text, without special tokens; CHUNK texts per tokenizer call."""
    out: list = [None] * len(texts)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths per call: little padding
    for begin in range(0, len(texts), CHUNK):
        rows = order[begin:begin + CHUNK]
        batch = tokenizer([texts[i] for i in rows], add_special_tokens=False, padding=True, truncation=True,
                          max_length=_NO_LIMIT, return_offsets_mapping=True, return_token_type_ids=False,
                          return_tensors="np")
        ids = batch["input_ids"].astype(np.int32)
        offsets = batch["offset_mapping"].astype(np.int32)
        for row, (i, length) in enumerate(zip(rows, batch["attention_mask"].sum(axis=1))):
            out[i] = (ids[row, :length], offsets[row, :length])
    return out


def _window_starts(n_question: int, n_context: int, max_length: int, doc_stride: int) -> tuple[list[int], int] | None:
    """Context-token starts of the windows and their room, by the `tokenizers` overflow rule; None if nothing fits."""
    if n_question + n_context + 3 <= max_length:  # [CLS] q [SEP] c [SEP] fits whole
        return [0], n_context
    room = max_length - n_question - 3
    if room < 1 or doc_stride >= room:  # the tokenizer itself would refuse this pair
        return None
    starts = [0]
    while starts[-1] + room < n_context:
        starts.append(starts[-1] + room - doc_stride)
    return starts, room


def _build(kind: str, examples: Sequence[SquadExample], tokenizer, max_length: int, doc_stride: int) -> SquadFeatures:
    train = kind == "train"
    skipped = dict.fromkeys(SKIP_REASONS, 0)
    usable = []
    for index, ex in enumerate(examples):
        if not ex.context.strip():
            skipped["empty_context"] += 1
        elif not ex.question.strip():
            skipped["empty_question"] += 1
        elif train and ex.answers and not _answer_matches(ex):
            skipped["answer_mismatch"] += 1
        else:
            usable.append(index)

    # Tokenize each distinct context and question once.
    context_ids = {c: i for i, c in enumerate(dict.fromkeys(examples[i].context for i in usable))}
    questions = [examples[i].question.lstrip() for i in usable]  # run_qa.py: leading spaces only waste room
    contexts = _tokenize(tokenizer, list(context_ids)) if usable else []
    question_tokens = _tokenize(tokenizer, questions) if usable else []

    plans = []  # (example index, question ids, context ids, context offsets, window starts, room)
    longest_question = 0
    for index, (q_ids, _) in zip(usable, question_tokens):
        c_ids, c_offsets = contexts[context_ids[examples[index].context]]
        if len(c_ids) == 0:  # e.g. only control characters, which the tokenizer drops
            skipped["empty_context"] += 1
            continue
        if len(q_ids) == 0:
            skipped["empty_question"] += 1
            continue
        windows = _window_starts(len(q_ids), len(c_ids), max_length, doc_stride)
        if windows is None:
            skipped["question_too_long"] += 1
            longest_question = max(longest_question, len(q_ids))
            continue
        plans.append((index, q_ids, c_ids, c_offsets, *windows))
    n = sum(len(plan[4]) for plan in plans)
    if n == 0:
        raise InputError(_skip_message(skipped, len(examples), max_length, doc_stride, longest_question))
    _report_skipped(skipped, len(examples), max_length, doc_stride, longest_question)

    cls_id, sep_id, pad_id = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
    input_ids = np.full((n, max_length), pad_id, dtype=np.int32)
    attention_mask = np.zeros((n, max_length), dtype=np.int32)
    token_type_ids = np.zeros((n, max_length), dtype=np.int32)
    example_index = np.empty(n, dtype=np.int64)
    offset_mapping = None if train else np.full((n, max_length, 2), -1, dtype=np.int32)
    start_positions = np.zeros(n, dtype=np.int64) if train else None
    end_positions = np.zeros(n, dtype=np.int64) if train else None

    w = 0
    for index, q_ids, c_ids, c_offsets, starts, room in plans:
        first = 2 + len(q_ids)  # where the context slice begins in the window
        answer_tokens = _answer_tokens(examples[index], c_offsets) if train else None
        for start in starts:
            stop = min(start + room, len(c_ids))
            last = first + stop - start  # the closing [SEP]
            input_ids[w, 0] = cls_id
            input_ids[w, 1:first - 1] = q_ids
            input_ids[w, first - 1] = sep_id
            input_ids[w, first:last] = c_ids[start:stop]
            input_ids[w, last] = sep_id
            attention_mask[w, :last + 1] = 1
            token_type_ids[w, first:last + 1] = 1
            if offset_mapping is not None:
                offset_mapping[w, first:last] = c_offsets[start:stop]
            if answer_tokens is not None:
                begin, end = answer_tokens
                if start <= begin and end < stop:  # the whole answer lies in this slice
                    start_positions[w] = first + begin - start
                    end_positions[w] = first + end - start
            example_index[w] = index
            w += 1
    example_id = np.array([examples[i].id for i in example_index], dtype=str)
    return SquadFeatures(input_ids, attention_mask, token_type_ids, example_index, example_id,
                         start_positions, end_positions, offset_mapping, skipped)


def _answer_matches(ex: SquadExample) -> bool:
    answer = ex.answers[0]
    begin = answer["answer_start"]
    return 0 <= begin and ex.context[begin:begin + len(answer["text"])] == answer["text"]


def _answer_tokens(ex: SquadExample, c_offsets: np.ndarray) -> tuple[int, int] | None:
    """Context-token indices (first, last) holding the first answer's first and last characters.

    As run_qa.py: first = the last token starting at or before the answer's start, last = the first token
    ending at or after its end (token offsets rise monotonically through a text).
    None when the example has no answer.
    """
    if not ex.answers:
        return None
    begin = ex.answers[0]["answer_start"]
    end = begin + len(ex.answers[0]["text"])
    first = int(np.searchsorted(c_offsets[:, 0], begin, side="right")) - 1
    last = int(np.searchsorted(c_offsets[:, 1], end, side="left"))
    return first, last  # first == -1 or last == len: the answer lies outside every token, so no window has it


def _skip_message(skipped: dict[str, int], total: int, max_length: int, doc_stride: int,
                  longest_question: int | None) -> str:
    counts = ", ".join(f"{count} {reason.replace('_', ' ')}" for reason, count in skipped.items() if count)
    message = f"skipped {sum(skipped.values())} of {total} SQuAD examples: {counts}"
    if skipped["question_too_long"]:
        longest = f" (the longest has {longest_question} tokens)" if longest_question else ""
        message += (f". Questions too long{longest} leave no room for the context with max_length={max_length}, "
                    f"doc_stride={doc_stride}: raise max_length (or lower doc_stride)")
    return message


def _report_skipped(skipped: dict[str, int], total: int, max_length: int, doc_stride: int,
                    longest_question: int | None) -> None:
    """Log how many examples made no window and why (never silently)."""
    if any(skipped.values()):
        logger.warning(_skip_message(skipped, total, max_length, doc_stride, longest_question))
