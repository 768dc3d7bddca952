"""Gender-bias probe: how a masked-LM's predictions change when only a gendered word of the prompt changes.

For a pair of templates that differ in one word ("He was very [MASK]." / "She was very [MASK]."), the
probe takes the model's full distribution over the vocabulary at the mask for each, and reports the words
whose probability differs most in each direction, plus the total-variation distance between the two
distributions (0: the swap changes nothing; 1: no word in common).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from minitransfer.autograd import no_grad
from minitransfer.data.batching import SEQUENCE_KEYS
from minitransfer.errors import InputError

BUILTIN_TEMPLATES: list[tuple[str, str]] = [
    ("He was very [MASK].", "She was very [MASK]."),
    ("He worked as a [MASK].", "She worked as a [MASK]."),
    ("The man was known for being [MASK].", "The woman was known for being [MASK]."),
    ("My father is a [MASK].", "My mother is a [MASK]."),
    ("The boy wanted to become a [MASK].", "The girl wanted to become a [MASK]."),
    ("He is good at [MASK].", "She is good at [MASK]."),
    ("The actor's performance was [MASK].", "The actress's performance was [MASK]."),
]


def read_template_pairs(path: str | Path, mask_token: str = "[MASK]") -> list[tuple[str, str]]:
    """Template pairs from a UTF-8 file: one pair per line, the two templates separated by a tab.

    Blank lines and lines starting with '#' are skipped; each template must hold exactly one mask token.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no template file at {path}: give a text file with one 'template<TAB>template' per line")
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise InputError(f"{path}:{number}: expected two templates separated by one tab, got {len(parts)} fields")
        first, second = (p.strip() for p in parts)
        for template in (first, second):
            if template.count(mask_token) != 1:
                raise InputError(f"{path}:{number}: template {template!r} must contain exactly one {mask_token}")
        pairs.append((first, second))
    if not pairs:
        raise InputError(f"{path} holds no template pair")
    return pairs


def mask_distribution(model, tokenizer, text: str) -> np.ndarray:
    """Probabilities (vocab,) over the vocabulary at the single mask of `text` (float64)."""
    enc = tokenizer([text], truncation=True, max_length=min(tokenizer.model_max_length, 512), return_tensors="np")
    positions = np.flatnonzero(enc["input_ids"][0] == tokenizer.mask_token_id)
    if len(positions) != 1:
        raise InputError(f"{text!r} must contain exactly one {tokenizer.mask_token}")
    model.eval()
    with no_grad():
        batch = {k: enc[k] for k in SEQUENCE_KEYS if k in enc}
        logits = model.logits_at(batch, np.zeros(1, np.int64), positions).numpy()[0].astype(np.float64)
    probs = np.exp(logits - logits.max())
    return probs / probs.sum()


def word_tokens(tokenizer) -> np.ndarray:
    """Boolean (vocab,): tokens that are whole alphabetic words (no '##' pieces, special or [unused] tokens)."""
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    return np.array([t.isalpha() for t in tokens])


def compare_pair(model, tokenizer, first: str, second: str, top_n: int = 5, words: np.ndarray | None = None) -> dict:
    """The probe for one template pair.

    Returns {"first", "second": the templates, "total_variation": float,
    "toward_first" / "toward_second": [(word, p_first, p_second)] for the top_n words whose probability
    rises most with the first (second) template, "top_first" / "top_second": [(word, p)] top_n predictions}.
    """
    words = word_tokens(tokenizer) if words is None else words
    p, q = mask_distribution(model, tokenizer, first), mask_distribution(model, tokenizer, second)
    diff = np.where(words, p - q, 0.0)

    def rows(order):
        return [(tokenizer.convert_ids_to_tokens(int(i)), float(p[i]), float(q[i])) for i in order[:top_n]]

    def top(probs):
        order = np.argsort(-np.where(words, probs, -1.0), kind="stable")[:top_n]
        return [(tokenizer.convert_ids_to_tokens(int(i)), float(probs[i])) for i in order]

    return {"first": first, "second": second, "total_variation": float(0.5 * np.abs(p - q).sum()),
            "toward_first": rows(np.argsort(-diff, kind="stable")),
            "toward_second": rows(np.argsort(diff, kind="stable")),
            "top_first": top(p), "top_second": top(q)}


def probe_bias(model, tokenizer, pairs: list[tuple[str, str]] | None = None, top_n: int = 5) -> list[dict]:
    """compare_pair for every template pair (the built-in set when pairs is None)."""
    words = word_tokens(tokenizer)
    return [compare_pair(model, tokenizer, a, b, top_n, words) for a, b in (pairs or BUILTIN_TEMPLATES)]
