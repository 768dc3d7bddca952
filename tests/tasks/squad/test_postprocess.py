"""postprocess_predictions on hand-placed logits, and against a brute-force search on random logits."""
import numpy as np
import pytest

from minitransfer.errors import InputError
from minitransfer.tasks.squad import (
    SquadExample,
    postprocess_predictions,
    prepare_eval_features,
    prepare_train_features,
)

CONTEXT = "The quick brown fox jumps over the lazy dog near the old river bank."


@pytest.fixture(scope="module")
def fox(tokenizer):
    """One example, its single window and the window index of each context word."""
    examples = [SquadExample(id="fox", title="t", context=CONTEXT, question="Who jumps?")]
    feats = prepare_eval_features(examples, tokenizer, max_length=64, doc_stride=16)
    tokens = tokenizer.convert_ids_to_tokens(feats.input_ids[0].tolist())
    context = feats.offset_mapping[0, :, 0] >= 0
    position = {tok: i for i, tok in enumerate(tokens) if context[i]}
    return examples, feats, position, tokens


def logits_for(feats, peaks_start, peaks_end):
    start = np.zeros(feats.input_ids.shape, dtype=np.float32)
    end = np.zeros(feats.input_ids.shape, dtype=np.float32)
    for (w, i), v in peaks_start.items():
        start[w, i] = v
    for (w, i), v in peaks_end.items():
        end[w, i] = v
    return start, end


def test_picks_the_peak_span(fox):
    examples, feats, pos, _ = fox
    start, end = logits_for(feats, {(0, pos["brown"]): 5.0}, {(0, pos["jumps"]): 5.0})
    assert postprocess_predictions(examples, feats, start, end) == {"fox": "brown fox jumps"}


def test_context_only(fox):
    examples, feats, pos, tokens = fox
    question_token = tokens.index("who")
    start, end = logits_for(feats, {(0, question_token): 50.0, (0, 0): 40.0, (0, pos["lazy"]): 3.0},
                            {(0, question_token): 50.0, (0, 0): 40.0, (0, pos["dog"]): 3.0})
    assert postprocess_predictions(examples, feats, start, end)["fox"] == "lazy dog"


def test_end_before_start_and_max_answer_length(fox):
    examples, feats, pos, _ = fox
    # The best start comes after the best end: the best valid pair mixes in second choices.
    start, end = logits_for(feats, {(0, pos["river"]): 9.0, (0, pos["quick"]): 5.0}, {(0, pos["fox"]): 9.0})
    assert postprocess_predictions(examples, feats, start, end)["fox"] == "quick brown fox"
    # "quick ... river" is 12 tokens: too long at max_answer_length=5, so the runner-up end is used.
    start, end = logits_for(feats, {(0, pos["quick"]): 9.0}, {(0, pos["river"]): 9.0, (0, pos["fox"]): 4.0})
    longest = "quick brown fox jumps over the lazy dog near the old river"
    assert postprocess_predictions(examples, feats, start, end)["fox"] == longest
    assert postprocess_predictions(examples, feats, start, end, max_answer_length=5)["fox"] == "quick brown fox"


def test_best_window_wins_and_text_comes_from_the_context(tokenizer, sample_examples):
    long = max(sample_examples, key=lambda ex: len(ex.context))
    feats = prepare_eval_features([long], tokenizer, max_length=96, doc_stride=32)
    assert len(feats) >= 4
    start, end = logits_for(feats, {}, {})
    context_tokens = [np.nonzero(feats.offset_mapping[w, :, 0] >= 0)[0] for w in range(len(feats))]
    w_low, w_high = 1, len(feats) - 1
    i = context_tokens[w_low][5]
    start[w_low, i], end[w_low, i + 2] = 4.0, 4.0
    j = context_tokens[w_high][-4]
    start[w_high, j], end[w_high, j + 1] = 5.0, 5.0
    expected = long.context[feats.offset_mapping[w_high, j, 0]:feats.offset_mapping[w_high, j + 1, 1]]
    assert postprocess_predictions([long], feats, start, end) == {long.id: expected}


def brute_force(examples, feats, start, end, n_best_size, max_answer_length):
    """Every pair of the n_best_size best context starts and ends of every window, checked one by one."""
    best = {ex.id: (-np.inf, "") for ex in examples}
    for w, index in enumerate(feats.example_index):
        ex = examples[index]
        context = [i for i in range(feats.max_length) if feats.offset_mapping[w, i, 0] >= 0]
        top_starts = sorted(context, key=lambda i: -start[w, i])[:n_best_size]
        top_ends = sorted(context, key=lambda i: -end[w, i])[:n_best_size]
        for s in top_starts:
            for e in top_ends:
                if s <= e < s + max_answer_length and start[w, s] + end[w, e] > best[ex.id][0]:
                    text = ex.context[feats.offset_mapping[w, s, 0]:feats.offset_mapping[w, e, 1]]
                    best[ex.id] = (start[w, s] + end[w, e], text)
    return {qid: text for qid, (_, text) in best.items()}


@pytest.mark.parametrize("n_best_size, max_answer_length", [(20, 30), (5, 4), (1, 1)])
def test_matches_brute_force_on_random_logits(tokenizer, sample_examples, n_best_size, max_answer_length):
    examples = sample_examples[::4]
    feats = prepare_eval_features(examples, tokenizer, max_length=96, doc_stride=32)
    rng = np.random.default_rng(n_best_size)
    start, end = (rng.normal(size=feats.input_ids.shape).astype(np.float32) for _ in range(2))
    predictions = postprocess_predictions(examples, feats, start, end, n_best_size, max_answer_length)
    assert predictions == brute_force(examples, feats, start, end, n_best_size, max_answer_length)


def test_nbest(tokenizer, sample_examples):
    examples = sample_examples[:30]
    feats = prepare_eval_features(examples, tokenizer, max_length=96, doc_stride=32)
    rng = np.random.default_rng(0)
    start, end = (rng.normal(size=feats.input_ids.shape) for _ in range(2))
    predictions, nbest = postprocess_predictions(examples, feats, start, end, n_best_size=7, return_nbest=True)
    for ex in examples:
        ranked = nbest[ex.id]
        assert 0 < len(ranked) <= 7 and ranked[0]["text"] == predictions[ex.id]
        scores = [c["score"] for c in ranked]
        assert scores == sorted(scores, reverse=True)
        assert len({(c["start"], c["end"]) for c in ranked}) == len(ranked)
        assert all(ex.context[c["start"]:c["end"]] == c["text"] for c in ranked)
        assert sum(c["probability"] for c in ranked) == pytest.approx(1.0)


def test_example_without_window_gets_empty_answer(tokenizer, fox):
    examples = [fox[0][0], SquadExample(id="blank", title="t", context=" ", question="Who?")]
    feats = prepare_eval_features(examples, tokenizer, max_length=64, doc_stride=16)
    start, end = logits_for(feats, {(0, 5): 1.0}, {(0, 5): 1.0})
    predictions, nbest = postprocess_predictions(examples, feats, start, end, return_nbest=True)
    assert predictions["blank"] == "" and nbest["blank"] == [] and predictions["fox"] != ""


def test_bad_inputs(tokenizer, fox, sample_examples):
    examples, feats, _, _ = fox
    start, end = logits_for(feats, {}, {})
    with pytest.raises(InputError, match="shape"):
        postprocess_predictions(examples, feats, start[:, :10], end)
    with pytest.raises(InputError, match="not made from these examples"):
        postprocess_predictions(sample_examples[:1], feats, start, end)
    train = prepare_train_features([SquadExample("a", "t", CONTEXT, "Who?", [{"text": "fox", "answer_start": 16}])],
                                   tokenizer, max_length=64, doc_stride=16)
    with pytest.raises(InputError, match="prepare_eval_features"):
        postprocess_predictions(examples, train, start, end)
