"""question-answering: the best span of a context, as transformers 4.x's extractive QA pipeline scores it.

    qa = pipeline("question-answering", model="runs/squad")
    qa(question="Who led the brotherhood?", context=text)   # {"score", "start", "end", "answer"}
    qa(question=q, context=text, top_k=3)                    # the 3 best, a list
    qa([{"question": q1, "context": c1}, {"question": q2, "context": c2}], batch_size=4)   # one result each

transformers 5 dropped this pipeline; this is the behaviour of its last release (4.57). Per window of
`tokenizer(question, context, truncation="only_second", max_length=max_seq_len, stride=doc_stride,
return_overflowing_tokens=True)`: start and end probabilities are softmaxes over [CLS] and the context tokens
(question, [SEP] and padding masked out); [CLS] is then zeroed, and a span (s, e) with s <= e < s + max_answer_len
scores p_start[s] * p_end[e]. Each window gives its 2 * top_k + 10 best spans, each widened to whole words
(align_to_words) and cut from the context by character offsets; spans whose text is the same (ignoring case),
in one window or several, are one answer with their scores added. The top_k best answers are returned.

minitransfer's squad/ post-processing ranks logit sums over the n best starts and ends instead, without word
alignment; this module follows the pipeline's own rule so that scores and spans are transformers'.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from minitransfer.errors import InputError
from minitransfer.models import AutoModelForQuestionAnswering
from minitransfer.models.heads import QuestionAnswering
from minitransfer.pipelines.base import Pipeline, check_positive_int, encoding_rows

# transformers' fill value for tokens that may not be part of an answer: exp(-10000 - max) is 0 in float32.
_MASKED_LOGIT = -10000.0


class QuestionAnsweringPipeline(Pipeline):
    """Extractive QA over contexts of any length (split into windows by doc_stride), scores as probabilities."""

    task = "question-answering"
    auto_class, model_kind, new_head_allowed = AutoModelForQuestionAnswering, QuestionAnswering, False
    needs = "a fine-tuned span-QA model (`minitransfer train qa` makes one)"
    option_names = ("top_k", "doc_stride", "max_answer_len", "max_seq_len", "max_question_len",
                    "handle_impossible_answer", "align_to_words")

    def __call__(self, *args, question: str | list[str] | None = None, context: str | list[str] | None = None,
                 batch_size: int | None = None, **options) -> dict[str, Any] | list:
        """question=..., context=... (a str each; a list of questions on one context; or two lists), or
        positionally (question, context), a {"question", "context"} dict or a list of dicts / (question, context)
        pairs. One example gives its result; several give a list of results. A result is one answer dict, or a
        list of them when top_k > 1 finds more than one.

        Options: top_k (1), max_answer_len (15 tokens), max_seq_len (384, at most the tokenizer's
        model_max_length), doc_stride (128, at most max_seq_len // 2), handle_impossible_answer (False: adds the
        empty answer, scored by [CLS], start = end = 0), align_to_words (True), max_question_len (accepted, and
        unused as in transformers with a fast tokenizer: a question too long for max_seq_len is an error).
        """
        examples = _examples(args, question, context)
        results = self.run(examples, options, batch_size)
        return results[0] if len(results) == 1 else results

    def sanitize(self, **options) -> dict[str, Any]:
        out = dict(options)
        for name in ("top_k", "max_answer_len", "max_seq_len", "doc_stride", "max_question_len"):
            if name in options:
                out[name] = check_positive_int(name, options[name])
        return out

    def preprocess(self, example, options):
        question, context = example
        max_seq_len = options.get("max_seq_len", min(self.tokenizer.model_max_length, 384))
        doc_stride = options.get("doc_stride", min(max_seq_len // 2, 128))
        if doc_stride > max_seq_len:
            raise InputError(f"doc_stride ({doc_stride}) is larger than max_seq_len ({max_seq_len})")
        encoding = self.tokenizer(question, context, truncation="only_second", max_length=max_seq_len,
                                  stride=doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True,
                                  padding=True, return_tensors="np")
        rows = encoding_rows(encoding)
        # Each window's tokenizers.Encoding: its sequence ids, offsets and words.
        return rows, (context, encoding.encodings, [row["input_ids"] for row in rows])

    def forward(self, batch, lengths):
        out = self.model(**batch)
        start, end = out.start_logits.numpy(), out.end_logits.numpy()
        return [(start[i, :n], end[i, :n]) for i, n in enumerate(lengths)]

    def postprocess(self, state, outputs, options):
        context, windows, window_ids = state
        top_k = options.get("top_k", 1)
        max_answer_len = options.get("max_answer_len", 15)
        align_to_words = options.get("align_to_words", True)
        # Word alignment can map several token spans onto one answer; transformers takes more spans per window.
        per_window = top_k * 2 + 10 if align_to_words else top_k
        null_score = 1_000_000.0
        answers: list[dict[str, Any]] = []
        for (start_logits, end_logits), window, ids in zip(outputs, windows, window_ids):
            n = len(ids)
            allowed = np.array([s == 1 for s in window.sequence_ids[:n]]) | (ids == self.tokenizer.cls_token_id)
            p_start = _softmax(np.where(allowed, start_logits, _MASKED_LOGIT))
            p_end = _softmax(np.where(allowed, end_logits, _MASKED_LOGIT))
            null_score = min(null_score, float(p_start[0] * p_end[0]))
            p_start[0] = p_end[0] = 0.0  # [CLS] scores the empty answer only
            scores = np.tril(np.triu(np.outer(p_start, p_end)), max_answer_len - 1)  # s <= e < s + max_answer_len
            flat = scores.ravel()
            best = np.argsort(-flat, kind="stable")[:per_window]
            for index in best[flat[best] > 0]:  # spans of zero probability (masked tokens) are no answers
                s, e = divmod(int(index), n)
                char_start, char_end = _char_span(window, s, e, align_to_words)
                text = context[char_start:char_end]
                same = next((a for a in answers if a["answer"].lower() == text.lower()), None)
                if same is not None:
                    same["score"] += float(flat[index])
                else:
                    answers.append({"score": float(flat[index]), "start": char_start, "end": char_end,
                                    "answer": text})
        if options.get("handle_impossible_answer", False):
            answers.append({"score": null_score, "start": 0, "end": 0, "answer": ""})
        answers = sorted(answers, key=lambda a: a["score"], reverse=True)[:top_k]
        return answers[0] if len(answers) == 1 else answers


def _softmax(x: np.ndarray) -> np.ndarray:
    x = np.exp(x.astype(np.float64) - x.max())
    return x / x.sum()


def _char_span(window, s: int, e: int, align_to_words: bool) -> tuple[int, int]:
    """Character offsets in the context of tokens s..e; with align_to_words, of the whole words holding them."""
    if align_to_words:
        start_word, end_word = window.token_to_word(s), window.token_to_word(e)
        if start_word is not None and end_word is not None:
            start_chars = window.word_to_chars(start_word, sequence_index=1)
            end_chars = window.word_to_chars(end_word, sequence_index=1)
            if start_chars is not None and end_chars is not None:
                return start_chars[0], end_chars[1]
    return window.offsets[s][0], window.offsets[e][1]


def _examples(args: tuple, question, context) -> list[tuple[str, str]]:
    """(question, context) pairs from the ways transformers' QA pipeline takes them."""
    if args:
        if question is not None or context is not None:
            raise InputError("pass the examples either positionally or as question=/context=, not both")
        if len(args) == 2 and all(isinstance(a, str) for a in args):
            inputs = [{"question": args[0], "context": args[1]}]
        else:
            inputs = args[0] if len(args) == 1 else list(args)
    elif question is not None and context is not None:
        if isinstance(question, list) and isinstance(context, str):
            inputs = [{"question": q, "context": context} for q in question]
        elif isinstance(question, list) and isinstance(context, list):
            if len(question) != len(context):
                raise InputError(f"{len(question)} questions but {len(context)} contexts: they pair up one to one")
            inputs = [{"question": q, "context": c} for q, c in zip(question, context)]
        elif isinstance(question, str) and isinstance(context, str):
            inputs = [{"question": question, "context": context}]
        else:
            raise InputError("question and context must be str (or lists of str), "
                             f"got {type(question).__name__} and {type(context).__name__}")
    else:
        raise InputError("question-answering needs question=... and context=... (or a {'question', 'context'} dict)")
    if isinstance(inputs, (dict, tuple)):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs:
        raise InputError(f"pass an example or a non-empty list of examples, got {inputs!r}")
    return [_example(item) for item in inputs]


def _example(item) -> tuple[str, str]:
    if isinstance(item, dict):
        missing = [key for key in ("question", "context") if key not in item]
        if missing:
            raise InputError(f"an example is a dict with keys 'question' and 'context'; {missing} missing")
        pair = item["question"], item["context"]
    elif isinstance(item, (tuple, list)) and len(item) == 2:
        pair = tuple(item)
    else:
        raise InputError(f"an example is a {{'question', 'context'}} dict or a (question, context) pair, got {item!r}")
    for name, text in zip(("question", "context"), pair):
        if not isinstance(text, str) or not text:
            raise InputError(f"the {name} must be a non-empty str, got {text!r}")
    return pair
