"""prepare_train_features / prepare_eval_features against the tokenizer's own pair call and run_qa.py's loop."""
import itertools
import logging

import numpy as np
import pytest

from minitransfer.errors import InputError
from minitransfer.tasks.squad import SquadExample, prepare_eval_features, prepare_train_features
from minitransfer.tasks.squad import features as features_module

# (max_length, doc_stride): the run_qa.py default, and small windows so most contexts need several.
LENGTHS = [(384, 128), (96, 32), (64, 0)]


def run_qa_reference(examples, tok, max_length, doc_stride):
    """Hugging Face run_qa.py's prepare_train/validation_features, written out plainly, one example at a time.

    Returns (input_ids, attention_mask, token_type_ids, example_index, start, end, offsets) stacked over windows.
    """
    rows = {k: [] for k in ("ids", "mask", "types", "index", "start", "end", "offsets")}
    for index, ex in enumerate(examples):
        enc = tok(ex.question.lstrip(), ex.context, truncation="only_second", max_length=max_length,
                  stride=doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True,
                  padding="max_length", return_tensors="np")
        for i in range(len(enc["input_ids"])):
            sequence_ids = enc.sequence_ids(i)
            offsets = [tuple(int(x) for x in o) for o in enc["offset_mapping"][i]]
            start_char = ex.answers[0]["answer_start"]
            end_char = start_char + len(ex.answers[0]["text"])
            token_start = 0
            while sequence_ids[token_start] != 1:
                token_start += 1
            token_end = len(offsets) - 1
            while sequence_ids[token_end] != 1:
                token_end -= 1
            if not (offsets[token_start][0] <= start_char and offsets[token_end][1] >= end_char):
                start = end = 0  # the [CLS] index
            else:
                while token_start < len(offsets) and offsets[token_start][0] <= start_char:
                    token_start += 1
                start = token_start - 1
                while offsets[token_end][1] >= end_char:
                    token_end -= 1
                end = token_end + 1
            rows["ids"].append(list(enc["input_ids"][i]))
            rows["mask"].append(list(enc["attention_mask"][i]))
            rows["types"].append(list(enc["token_type_ids"][i]))
            rows["index"].append(index)
            rows["start"].append(start)
            rows["end"].append(end)
            rows["offsets"].append([o if sequence_ids[k] == 1 else (-1, -1) for k, o in enumerate(offsets)])
    return tuple(np.array(rows[k]) for k in ("ids", "mask", "types", "index", "start", "end", "offsets"))


def check_against_reference(examples, train, ev, reference):
    ids, mask, types, index, start, end, offsets = reference
    for ours in (train, ev):
        np.testing.assert_array_equal(ours.input_ids, ids)
        np.testing.assert_array_equal(ours.attention_mask, mask)
        np.testing.assert_array_equal(ours.token_type_ids, types)
        np.testing.assert_array_equal(ours.example_index, index)
        assert list(ours.example_id) == [examples[i].id for i in index]
    np.testing.assert_array_equal(ev.offset_mapping, offsets)
    # Same positions, except where run_qa.py's scan runs past the window's last context token into [SEP]:
    # there it gives start > end, and we give that last context token.
    quirk = start > end
    np.testing.assert_array_equal(train.start_positions[~quirk], start[~quirk])
    np.testing.assert_array_equal(train.end_positions[~quirk], end[~quirk])
    last_context = (ev.offset_mapping[:, :, 0] >= 0).cumsum(axis=1).argmax(axis=1)
    np.testing.assert_array_equal(train.start_positions[quirk], last_context[quirk])
    np.testing.assert_array_equal(train.end_positions[quirk], end[quirk])


@pytest.mark.parametrize("max_length, doc_stride", LENGTHS)
def test_equal_to_run_qa_on_our_tokenizer(sample_examples, tokenizer, max_length, doc_stride):
    train = prepare_train_features(sample_examples, tokenizer, max_length, doc_stride)
    ev = prepare_eval_features(sample_examples, tokenizer, max_length, doc_stride)
    check_against_reference(sample_examples, train, ev,
                            run_qa_reference(sample_examples, tokenizer, max_length, doc_stride))
    assert len(train) > len(sample_examples) if max_length < 384 else len(train) >= len(sample_examples)
    assert train.offset_mapping is None and ev.start_positions is None
    assert train.input_ids.dtype == np.int32 and ev.offset_mapping.shape == (len(ev), max_length, 2)


def test_equal_to_run_qa_on_transformers_tokenizer(sample_examples, tokenizer, minilm_path):
    transformers = pytest.importorskip("transformers")
    hf_tok = transformers.AutoTokenizer.from_pretrained(str(minilm_path))

    def hf_call(*args, **kwargs):  # transformers returns lists; the reference wants arrays
        enc = hf_tok(*args, **kwargs)
        enc["offset_mapping"] = np.array(enc["offset_mapping"])
        return enc

    train = prepare_train_features(sample_examples, tokenizer, 96, 32)
    ev = prepare_eval_features(sample_examples, tokenizer, 96, 32)
    check_against_reference(sample_examples, train, ev, run_qa_reference(sample_examples, hf_call, 96, 32))


@pytest.mark.parametrize("max_length, doc_stride", LENGTHS)
def test_positions_point_at_the_answer(sample_examples, tokenizer, max_length, doc_stride):
    train = prepare_train_features(sample_examples, tokenizer, max_length, doc_stride)
    offsets = prepare_eval_features(sample_examples, tokenizer, max_length, doc_stride).offset_mapping
    aligned = answerable = 0
    found = set()
    for w, index in enumerate(train.example_index):
        ex = sample_examples[index]
        begin = ex.answers[0]["answer_start"]
        end = begin + len(ex.answers[0]["text"])
        context = np.nonzero(offsets[w, :, 0] >= 0)[0]
        inside = offsets[w, context[0], 0] <= begin and offsets[w, context[-1], 1] >= end
        s, e = train.start_positions[w], train.end_positions[w]
        assert (s > 0) == inside and (e > 0) == inside
        if not inside:
            continue
        answerable += 1
        found.add(index)
        assert s <= e and s in context and e in context
        # s is the token holding the answer's first character, e the one holding its last.
        assert offsets[w, s, 0] <= begin and (s == context[-1] or offsets[w, s + 1, 0] > begin)
        assert offsets[w, e, 1] >= end and (e == context[0] or offsets[w, e - 1, 1] < end)
        span = ex.context[offsets[w, s, 0]:offsets[w, e, 1]]
        assert ex.answers[0]["text"] in span
        if offsets[w, s, 0] == begin and offsets[w, e, 1] == end:
            aligned += 1
            assert span == ex.answers[0]["text"]
    if doc_stride >= 32:  # overlapping windows hold every (short) answer whole at least once
        assert len(found) == len(sample_examples)
    assert aligned >= 0.95 * answerable  # SQuAD answers nearly always start and end on token boundaries


@pytest.mark.filterwarnings("ignore:Token indices sequence length")  # whole contexts, tokenized for reference
@pytest.mark.parametrize("max_length, doc_stride", LENGTHS[1:])
def test_windows_cover_the_context_with_stride_overlap(sample_examples, tokenizer, max_length, doc_stride):
    ev = prepare_eval_features(sample_examples, tokenizer, max_length, doc_stride)
    multi = 0
    for index, ex in enumerate(sample_examples):
        whole = tokenizer(ex.context, add_special_tokens=False, return_offsets_mapping=True,
                          return_tensors="np")["offset_mapping"][0]
        rows = np.nonzero(ev.example_index == index)[0]
        windows = [ev.offset_mapping[w][ev.offset_mapping[w, :, 0] >= 0] for w in rows]
        np.testing.assert_array_equal(windows[0][0], whole[0])
        np.testing.assert_array_equal(windows[-1][-1], whole[-1])
        for previous, current in itertools.pairwise(windows):
            # The next window starts doc_stride tokens before the previous one ends, and they agree on those.
            first = np.nonzero((whole == previous[-1]).all(axis=1))[0][0] - doc_stride + 1
            np.testing.assert_array_equal(current[0], whole[first])
            np.testing.assert_array_equal(current[:doc_stride], previous[len(previous) - doc_stride:])
        covered = np.unique(np.concatenate(windows), axis=0)
        np.testing.assert_array_equal(covered, np.unique(whole, axis=0))
        multi += len(windows) > 1
    assert multi > 50  # the small windows do split most contexts


def _bad_examples():
    context = "The flag has thirteen horizontal stripes, seven red alternating with six white."
    ok = {"title": "t", "context": context, "answers": [{"text": "thirteen", "answer_start": 13}]}
    return [
        SquadExample(id="ok", question="How many stripes?", **ok),
        SquadExample(id="empty-context", title="t", context="  \n", question="What?",
                     answers=[{"text": "x", "answer_start": 0}]),
        SquadExample(id="empty-question", question=" \t", **ok),
        SquadExample(id="long-question", question="stripes " * 80, **ok),
        SquadExample(id="mismatch", title="t", context=context, question="How many stripes?",
                     answers=[{"text": "fourteen", "answer_start": 13}]),
        SquadExample(id="ok2", question="   How many red stripes?", title="t", context=context,
                     answers=[{"text": "seven", "answer_start": 42}]),
    ]


def test_bad_examples_are_skipped_and_counted(tokenizer, caplog):
    examples = _bad_examples()
    with caplog.at_level(logging.WARNING, logger="minitransfer"):
        train = prepare_train_features(examples, tokenizer, max_length=64, doc_stride=16)
    assert train.skipped == {"empty_context": 1, "empty_question": 1, "question_too_long": 1, "answer_mismatch": 1}
    assert sorted(set(train.example_id)) == ["ok", "ok2"]
    assert set(train.example_index) == {0, 5}
    assert "skipped 4 of 6 SQuAD examples" in caplog.text and "raise max_length" in caplog.text
    # The left-stripped question of ok2 tokenizes like the plain one; its answer is found.
    w = list(train.example_id).index("ok2")
    assert tokenizer.decode(train.input_ids[w, train.start_positions[w]:train.end_positions[w] + 1]) == "seven"

    ev = prepare_eval_features(examples, tokenizer, max_length=64, doc_stride=16)
    assert ev.skipped["answer_mismatch"] == 0  # evaluation does not read answers
    assert sorted(set(ev.example_id)) == ["mismatch", "ok", "ok2"]


def test_nothing_usable_is_an_error(tokenizer):
    long_only = [ex for ex in _bad_examples() if ex.id == "long-question"]
    with pytest.raises(InputError, match="1 question too long.*raise max_length"):
        prepare_eval_features(long_only, tokenizer, max_length=64, doc_stride=16)
    # With room for it, the same question is fine.
    assert len(prepare_eval_features(long_only, tokenizer, max_length=384, doc_stride=16)) == 1
    with pytest.raises(InputError, match="no SQuAD examples"):
        prepare_train_features([], tokenizer)


@pytest.mark.parametrize("kwargs", [{"max_length": 3}, {"doc_stride": -1}, {"max_length": 128.0}])
def test_bad_lengths(tokenizer, sample_examples, kwargs):
    with pytest.raises(InputError, match="must be an int"):
        prepare_eval_features(sample_examples[:2], tokenizer, **kwargs)


def test_cache_round_trip(tmp_path, tokenizer, sample_examples, monkeypatch, caplog):
    examples = _bad_examples() + sample_examples[:20]
    fresh = prepare_train_features(examples, tokenizer, 96, 32, cache_dir=tmp_path)
    files = list(tmp_path.glob("squad-train-*.npz"))
    assert len(files) == 1

    def no_rebuild(*args):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(features_module, "_build", no_rebuild)
    with caplog.at_level(logging.WARNING, logger="minitransfer"):
        cached = prepare_train_features(examples, tokenizer, 96, 32, cache_dir=tmp_path)
    for name in ("input_ids", "attention_mask", "token_type_ids", "example_index", "example_id",
                 "start_positions", "end_positions"):
        np.testing.assert_array_equal(getattr(cached, name), getattr(fresh, name))
    assert cached.offset_mapping is None and cached.skipped == fresh.skipped
    assert "skipped 4 of 26" in caplog.text  # a cache hit still reports what was skipped
    monkeypatch.undo()

    # Other lengths, other examples or the eval kind are other files; a corrupt file is rebuilt.
    prepare_train_features(examples, tokenizer, 96, 16, cache_dir=tmp_path)
    prepare_train_features(examples[:-1], tokenizer, 96, 32, cache_dir=tmp_path)
    ev = prepare_eval_features(examples, tokenizer, 96, 32, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 4
    np.testing.assert_array_equal(prepare_eval_features(examples, tokenizer, 96, 32, cache_dir=tmp_path)
                                  .offset_mapping, ev.offset_mapping)
    files[0].write_bytes(b"not a zip file")
    with caplog.at_level(logging.WARNING, logger="minitransfer"):
        rebuilt = prepare_train_features(examples, tokenizer, 96, 32, cache_dir=tmp_path)
    assert "unreadable feature cache" in caplog.text
    np.testing.assert_array_equal(rebuilt.input_ids, fresh.input_ids)
