"""minitransfer.tokenization against transformers' fast BertTokenizer on the real MiniLM vocabulary."""
import copy
import json
import pickle
import shutil
import warnings

import numpy as np
import pytest

from minitransfer.errors import CheckpointError, InputError
from minitransfer.io.hub import resolve_model_path
from minitransfer.tokenization import AutoTokenizer, BatchEncoding, BertTokenizer

# A few lines of SST-2 dev and MRPC dev, copied here so the tests don't need the data folder.
SST2 = [
    "it 's a charming and often affecting journey . ",
    "unflinchingly bleak and desperate ",
    "allows us to hope that nolan is poised to embark a major career as a commercial yet inventive filmmaker . ",
    ("the acting , costumes , music , cinematography and sound are all astounding given the production 's austere "
    "locales . "),
    "it 's slow -- very , very slow . ",
]
MRPC = [
    (
        ('"I think you\'ll see a lot of job growth in the next two years," he said, adding the growth could replace '
        "jobs lost."),
        '"I think you\'ll see a lot of job growth in the next two years," said Mankiw.',
    ),
    (
        ("The new Finder puts a user's folders, hard drive, network servers, iDisk and removable media in one "
        "location, providing one-click access."),
        ("Panther's redesigned Finder navigation tool puts a user's favourite folders, hard drive, network servers, "
        "iDisk and removable media in one location."),
    ),
    (
        "The largest gains were seen in prices, new orders, inventories and exports.",
        "Sub-indexes measuring prices, new orders, inventories and exports increased.",
    ),
    (
        ("The group will be headed by State Department official John S. Wolf, who has served in Australia, "
        "Vietnam, Greece and Pakistan."),
        ("The group will be headed by John S. Wolf, an assistant secretary of state who has served in Australia, "
        "Vietnam, Greece and Pakistan."),
    ),
]
# Accents, CJK, a dash and an over-long word: the normalizer and max_input_chars_per_word paths.
ODD = ["Café Déjà-vu – naïve 東京 résumé", "x" * 150 + " ok", "Hello [MASK] world!\tTabs\nand  spaces"]
# A SQuADShifts paragraph, repeated so it needs several 384-token windows.
PARAGRAPH = (
    "The Monastic Brotherhood consists of the celibate clergy of the monastery who are led by an abbot. As of "
    "2010, there were three brotherhoods in the Armenian Church – the brotherhood of the Mother See of Holy "
    "Etchmiadzin, the brotherhood of St. James at the Armenian Patriarchate of Jerusalem and the brotherhood of "
    "the See of Cilicia. Each Armenian celibate priest becomes a member of the brotherhood in which he has "
    "studied and ordained in or under the jurisdiction of which he has served. The brotherhood makes decisions "
    "concerning the inner affairs of the monastery. Each brotherhood elects two delegates who take part in the "
    "National Ecclesiastical Assembly.\n"
)
CONTEXT = PARAGRAPH * 4
QUESTIONS = ["is there a delegate?", "Who leads the celibate clergy of the monastery?"]


@pytest.fixture(scope="module")
def model_dir():
    try:
        return resolve_model_path("minilm")
    except CheckpointError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def tok(model_dir):
    return AutoTokenizer.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def ref(model_dir):
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(str(model_dir))


def assert_same(ours: BatchEncoding, theirs, keys=None):
    """Every key of transformers' output equals ours, as int64 arrays of the same shape."""
    keys = keys or list(theirs.keys())
    for key in keys:
        expected = np.asarray(theirs[key])
        got = ours[key]
        assert isinstance(got, np.ndarray) and got.dtype == np.int64, key
        if expected.ndim == got.ndim - 1:  # transformers drops the batch axis for a single str
            expected = expected[None]
        np.testing.assert_array_equal(got, expected, err_msg=key)


def test_single_sentences_match_transformers(tok, ref):
    for text in SST2 + ODD:
        ours = tok(text, return_tensors="np")
        assert ours["input_ids"].shape[0] == 1
        assert_same(ours, ref(text))
        assert tok.encode(text) == ref.encode(text)
        assert tok.tokenize(text) == ref.tokenize(text)


def test_batch_padding_longest(tok, ref):
    ours = tok(SST2, padding=True, return_tensors="np")
    assert ours["input_ids"].shape == (len(SST2), max(len(ref.encode(t)) for t in SST2))
    assert_same(ours, ref(SST2, padding=True))
    assert_same(tok(SST2, padding="longest", return_tensors="np"), ref(SST2, padding="longest"))


def test_pairs_with_padding(tok, ref):
    a, b = [p[0] for p in MRPC], [p[1] for p in MRPC]
    ours = tok(a, b, padding=True, return_special_tokens_mask=True, return_tensors="np")
    assert_same(ours, ref(a, b, padding=True, return_special_tokens_mask=True))
    assert set(np.unique(ours["token_type_ids"])) == {0, 1}
    for i in range(len(a)):
        assert ours.sequence_ids(i) == ref(a, b, padding=True).sequence_ids(i)
    assert tok.encode(a[0], b[0]) == ref.encode(a[0], b[0])


@pytest.mark.parametrize("truncation", [True, "longest_first", "only_second"])
def test_truncation_with_max_length(tok, ref, truncation):
    a, b = [p[0] for p in MRPC], [p[1] for p in MRPC]
    kw = {"truncation": truncation, "max_length": 40, "padding": "max_length"}
    ours = tok(a, b, **kw, return_tensors="np")
    assert ours["input_ids"].shape == (len(a), 40)
    assert_same(ours, ref(a, b, **kw))


def test_truncation_only_first_and_max_length_alone(tok, ref):
    kw = {"truncation": "only_first", "max_length": 12, "padding": True}
    assert_same(tok(SST2, **kw, return_tensors="np"), ref(SST2, **kw))
    # transformers: max_length without padding/truncation switches truncation on.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = ref(SST2[2], max_length=10)
    assert_same(tok(SST2[2], max_length=10, return_tensors="np"), theirs)


def test_padding_max_length_defaults_to_model_max_length(tok, ref):
    ours = tok(SST2[:2], padding="max_length", return_tensors="np")
    assert ours["input_ids"].shape == (2, tok.model_max_length)
    assert_same(ours, ref(SST2[:2], padding="max_length"))


def test_offsets_mapping(tok, ref):
    texts = SST2 + ODD
    ours = tok(texts, padding=True, return_offsets_mapping=True, return_tensors="np")
    assert ours["offset_mapping"].shape == (*ours["input_ids"].shape, 2)
    assert_same(ours, ref(texts, padding=True, return_offsets_mapping=True))


@pytest.mark.parametrize("max_length,stride", [(384, 128), (64, 16)])
def test_overflow_windows_like_squad(tok, ref, max_length, stride):
    kw = {
        "truncation": "only_second",
        "max_length": max_length,
        "stride": stride,
        "return_overflowing_tokens": True,
        "return_offsets_mapping": True,
        "padding": "max_length",
    }
    contexts = [CONTEXT, PARAGRAPH]
    ours, theirs = tok(QUESTIONS, contexts, **kw, return_tensors="np"), ref(QUESTIONS, contexts, **kw)
    assert len(ours["input_ids"]) > len(contexts)  # the long context did overflow
    assert ours["overflow_to_sample_mapping"].shape == (len(ours["input_ids"]),)
    assert_same(ours, theirs)
    for i in range(len(ours["input_ids"])):
        assert ours.sequence_ids(i) == theirs.sequence_ids(i)
        assert ours.word_ids(i) == theirs.word_ids(i)


def test_single_str_with_overflow(tok, ref):
    kw = {"truncation": True, "max_length": 32, "stride": 8, "return_overflowing_tokens": True, "padding": True}
    ours = tok(PARAGRAPH, **kw, return_tensors="np")
    assert ours["overflow_to_sample_mapping"].tolist() == [0] * len(ours["input_ids"])
    assert_same(ours, ref(PARAGRAPH, **kw))


def test_decode_and_conversions(tok, ref):
    ids = tok(MRPC[0][0], MRPC[0][1], return_tensors="np")["input_ids"][0]
    assert tok.decode(ids) == ref.decode(ids.tolist())
    assert tok.decode(ids, skip_special_tokens=True) == ref.decode(ids.tolist(), skip_special_tokens=True)
    ours = tok.batch_decode(tok(SST2, padding=True, return_tensors="np")["input_ids"], skip_special_tokens=True)
    assert ours == ref.batch_decode(ref(SST2, padding=True)["input_ids"], skip_special_tokens=True)
    tokens = tok.convert_ids_to_tokens(ids.tolist())
    assert tokens == ref.convert_ids_to_tokens(ids.tolist())
    assert tok.convert_tokens_to_ids(tokens) == ids.tolist()
    assert tok.convert_tokens_to_ids("notawordpiece!!") == tok.unk_token_id
    assert tok.convert_ids_to_tokens(int(ids[1])) == tokens[1]


def test_properties_match(tok, ref):
    assert tok.vocab_size == ref.vocab_size == 30522
    assert len(tok) == len(ref)
    assert tok.model_max_length == ref.model_max_length == 512
    for name in ("pad_token_id", "cls_token_id", "sep_token_id", "mask_token_id", "unk_token_id", "mask_token"):
        assert getattr(tok, name) == getattr(ref, name), name
    assert tok.all_special_ids == ref.all_special_ids
    assert tok.get_vocab() == ref.get_vocab()


def test_from_vocab_txt_alone_matches_tokenizer_json(tok, model_dir, tmp_path):
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(model_dir / name, tmp_path / name)
    plain = AutoTokenizer.from_pretrained(tmp_path)
    texts = SST2 + ODD + [p[0] for p in MRPC]
    for key in ("input_ids", "token_type_ids", "attention_mask", "offset_mapping"):
        np.testing.assert_array_equal(
            plain(texts, padding=True, return_offsets_mapping=True, return_tensors="np")[key],
            tok(texts, padding=True, return_offsets_mapping=True, return_tensors="np")[key],
        )
    assert plain.decode(tok.encode(ODD[2])) == tok.decode(tok.encode(ODD[2]))
    assert plain.all_special_ids == tok.all_special_ids and len(plain) == len(tok)


def test_save_pretrained_round_trip(tok, ref, tmp_path):
    transformers = pytest.importorskip("transformers")
    written = tok.save_pretrained(tmp_path / "saved")
    assert {p.name for p in written} == {
        "tokenizer.json",
        "vocab.txt",
        "tokenizer_config.json",
        "special_tokens_map.json",
    }
    texts = SST2 + ODD
    ours_again = AutoTokenizer.from_pretrained(tmp_path / "saved")
    theirs_again = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "saved"))
    expected = ref(texts, padding=True, return_offsets_mapping=True)
    assert_same(ours_again(texts, padding=True, return_offsets_mapping=True, return_tensors="np"), expected)
    assert_same(tok(texts, padding=True, return_offsets_mapping=True, return_tensors="np"),
                theirs_again(texts, padding=True, return_offsets_mapping=True))
    assert theirs_again.model_max_length == 512 and theirs_again.all_special_ids == ref.all_special_ids
    # vocab.txt alone from the saved folder still gives the same ids.
    (tmp_path / "saved" / "tokenizer.json").unlink()
    np.testing.assert_array_equal(
        AutoTokenizer.from_pretrained(tmp_path / "saved")(texts, padding=True, return_tensors="np")["input_ids"],
        tok(texts, padding=True, return_tensors="np")["input_ids"],
    )


def test_batch_encoding_access_and_pickle(tok):
    enc = tok(SST2[:2], padding=True, return_tensors="np")
    assert enc.input_ids is enc["input_ids"]
    with pytest.raises(AttributeError, match="keys"):
        _ = enc.offset_mapping
    assert enc.tokens(0)[0] == "[CLS]" and enc.sequence_ids(0)[0] is None
    again = pickle.loads(pickle.dumps(enc))
    np.testing.assert_array_equal(again["input_ids"], enc["input_ids"])
    tok2 = pickle.loads(pickle.dumps(tok))
    assert tok2.encode(SST2[0]) == tok.encode(SST2[0])


def test_too_long_without_truncation_warns_not_raises(tok):
    long_text = "word " * 600
    fresh = BertTokenizer.from_pretrained(tok.name_or_path)
    with pytest.warns(UserWarning, match="longer than the specified maximum"):
        enc = fresh(long_text, return_tensors="np")
    assert enc["input_ids"].shape[1] > fresh.model_max_length


def test_from_pretrained_options(model_dir):
    cased = AutoTokenizer.from_pretrained(model_dir, do_lower_case=False, model_max_length=128, use_fast=True)
    assert cased.model_max_length == 128
    assert cased.tokenize("Hello") != ["hello"]
    with pytest.raises(InputError, match="unknown tokenizer option"):
        AutoTokenizer.from_pretrained(model_dir, revison="main")  # a typo; revision= itself is accepted
    with pytest.raises(TypeError, match="from_pretrained"):
        AutoTokenizer()


def test_input_errors(tok):
    with pytest.raises(InputError, match="empty list"):
        tok([])
    with pytest.raises(InputError, match=r"text\[1\]"):
        tok(["ok", 3])
    with pytest.raises(InputError, match="str or a list"):
        tok(42)
    with pytest.raises(InputError, match="padding=True"):
        tok(SST2[:2], return_tensors="np")
    with pytest.raises(InputError, match="pair up"):
        tok(SST2[:2], SST2[:3], padding=True)
    with pytest.raises(InputError, match="text_pair must be a str"):
        tok("a", ["b"])
    with pytest.raises(InputError, match="padding="):
        tok("a", padding="everything")
    with pytest.raises(InputError, match="truncation="):
        tok("a", truncation="middle")
    with pytest.raises(InputError, match="stride"):
        tok(SST2[0], truncation=True, max_length=8, stride=6)
    # only_second can't help when the question alone is longer than max_length.
    with pytest.raises(InputError, match="only_second"):
        tok(PARAGRAPH, "short", truncation="only_second", max_length=20)
    with pytest.raises(InputError, match="batch_decode"):
        tok.decode(np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(InputError, match="outside the vocabulary"):
        tok.convert_ids_to_tokens(10**6)


def test_checkpoint_errors(tmp_path, model_dir):
    with pytest.raises(CheckpointError, match="never downloads"):
        AutoTokenizer.from_pretrained(tmp_path / "nope")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(CheckpointError, match="is a file"):
        AutoTokenizer.from_pretrained(tmp_path / "file.txt")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="neither tokenizer.json nor vocab.txt"):
        AutoTokenizer.from_pretrained(empty)
    (empty / "tokenizer_config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        AutoTokenizer.from_pretrained(empty)
    (empty / "tokenizer_config.json").write_text('{"tokenizer_class": "GPT2Tokenizer"}')
    with pytest.raises(CheckpointError, match="only WordPiece"):
        AutoTokenizer.from_pretrained(empty)


# ---- transformers' call conventions: lists by default, "np" on request, pad(), padding_side, pre-split words
WORDS = [s.split() for s in SST2] + [["Hello", "world", "don't", "Café", "東京"], ["x" * 150, "ok"]]


def lists_of(encoding) -> dict:
    """A tokenizer output as a plain dict, values untouched (lists stay lists)."""
    return {key: encoding[key] for key in encoding.keys()}


def test_return_tensors_none_gives_lists_like_transformers(tok, ref):
    for text in SST2 + ODD:  # a single str: flat lists
        ours = tok(text, return_special_tokens_mask=True, return_offsets_mapping=True)
        assert isinstance(ours["input_ids"], list) and isinstance(ours["input_ids"][0], int)
        assert lists_of(ours) == lists_of(ref(text, return_special_tokens_mask=True, return_offsets_mapping=True))
    ragged = tok(SST2)  # a batch without padding: one list per text, of different lengths
    assert len({len(row) for row in ragged["input_ids"]}) > 1
    assert lists_of(ragged) == lists_of(ref(SST2))
    a, b = [p[0] for p in MRPC], [p[1] for p in MRPC]
    assert lists_of(tok(a, b)) == lists_of(ref(a, b))
    assert lists_of(tok(a, b, padding=True)) == lists_of(ref(a, b, padding=True))
    kw = {"truncation": True, "max_length": 32, "stride": 8, "return_overflowing_tokens": True}
    windows = tok(PARAGRAPH, **kw)  # overflow windows stay a batch, as in transformers
    assert isinstance(windows["input_ids"][0], list) and windows["overflow_to_sample_mapping"][0] == 0
    assert lists_of(windows) == lists_of(ref(PARAGRAPH, **kw))
    assert ragged.word_ids(1) == ref(SST2).word_ids(1) and ragged.tokens(0) == ref(SST2).tokens(0)


def test_return_tensors_np_like_transformers(tok, ref):
    single = tok(SST2[0], return_tensors="np")
    theirs = ref(SST2[0], return_tensors="np")
    assert single["input_ids"].shape == theirs["input_ids"].shape == (1, len(ref.encode(SST2[0])))
    for key in theirs:
        np.testing.assert_array_equal(single[key], theirs[key], err_msg=key)
        assert single[key].dtype == np.int64
    batch = tok(SST2, padding=True, return_offsets_mapping=True, return_tensors="np")
    assert_same(batch, ref(SST2, padding=True, return_offsets_mapping=True, return_tensors="np"))
    assert batch.sequence_ids(0) == ref(SST2, padding=True).sequence_ids(0) and len(batch.encodings) == len(SST2)
    with pytest.raises(InputError, match="padding=True"):  # ragged rows make no array
        tok(SST2, return_tensors="np")
    for kind in ("pt", "tf", "jax"):
        with pytest.raises(InputError, match="'np'.*None"):
            tok(SST2[0], return_tensors=kind)
        with pytest.raises(InputError, match="'np'.*None"):
            tok.pad([{"input_ids": [1, 2]}], return_tensors=kind)


def test_pad_to_multiple_of_in_call(tok, ref):
    for kw in ({"padding": True, "pad_to_multiple_of": 8},
               {"padding": True, "truncation": True, "max_length": 16, "pad_to_multiple_of": 8},
               {"padding": "max_length", "max_length": 30, "pad_to_multiple_of": 8}):
        ours = tok(SST2, **kw, return_tensors="np")
        assert ours["input_ids"].shape[1] % 8 == 0, kw
        assert_same(ours, ref(SST2, **kw))
    with pytest.raises(ValueError, match="multiple"):
        ref(SST2, padding=True, truncation=True, max_length=30, pad_to_multiple_of=8)
    with pytest.raises(InputError, match="multiple"):
        tok(SST2, padding=True, truncation=True, max_length=30, pad_to_multiple_of=8)
    with pytest.raises(InputError, match="pad_to_multiple_of"):
        tok(SST2, padding=True, pad_to_multiple_of=0)


def test_padding_side_left_from_call_attribute_kwarg_and_config(tok, ref, model_dir, tmp_path):
    transformers = pytest.importorskip("transformers")
    a, b = [p[0] for p in MRPC], [p[1] for p in MRPC]
    kw = {"padding": True, "return_special_tokens_mask": True, "return_offsets_mapping": True}
    left = tok(a, b, **kw, padding_side="left", return_tensors="np")
    assert left["attention_mask"][:, 0].min() == 0 and left["attention_mask"][:, -1].min() == 1
    assert_same(left, ref(a, b, **kw, padding_side="left"))
    assert tok.padding_side == "right"  # a per-call side leaves the tokenizer's alone
    by_kwarg = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    theirs = transformers.AutoTokenizer.from_pretrained(str(model_dir), padding_side="left")
    assert by_kwarg.padding_side == theirs.padding_side == "left"
    assert_same(by_kwarg(SST2, padding=True, return_tensors="np"), theirs(SST2, padding=True))
    by_attribute = AutoTokenizer.from_pretrained(model_dir)
    by_attribute.padding_side = "left"
    assert_same(by_attribute(SST2, padding=True, return_tensors="np"), theirs(SST2, padding=True))
    # tokenizer_config.json's padding_side, and save_pretrained writes it back for both libraries
    for name in ("vocab.txt", "tokenizer.json"):
        shutil.copy(model_dir / name, tmp_path / name)
    config = json.loads((model_dir / "tokenizer_config.json").read_text()) | {"padding_side": "left"}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    assert AutoTokenizer.from_pretrained(tmp_path).padding_side == "left"
    assert transformers.AutoTokenizer.from_pretrained(str(tmp_path)).padding_side == "left"
    by_kwarg.save_pretrained(tmp_path / "saved")
    assert AutoTokenizer.from_pretrained(tmp_path / "saved").padding_side == "left"
    assert transformers.AutoTokenizer.from_pretrained(str(tmp_path / "saved")).padding_side == "left"
    with pytest.raises(InputError, match="padding_side"):
        by_attribute.padding_side = "middle"
    with pytest.raises(InputError, match="padding_side"):
        tok(SST2, padding=True, padding_side="top")


def features_of(tokenizer, texts, **kw):
    """One unpadded feature dict (lists) per text, with a label, as a datasets.map would make them."""
    return [dict(tokenizer(t, **kw)) | {"label": i % 2} for i, t in enumerate(texts)]


@pytest.mark.parametrize("kw", [{}, {"pad_to_multiple_of": 8}, {"padding": "max_length", "max_length": 48},
                                {"padding_side": "left"}, {"padding_side": "left", "pad_to_multiple_of": 16},
                                {"return_attention_mask": False}, {"padding": False}])
def test_pad_features_like_transformers(tok, ref, kw):
    features = features_of(ref, SST2[:3] if kw.get("padding") is False else SST2, return_special_tokens_mask=True)
    if kw.get("return_attention_mask") is False:  # then neither library makes one
        features = [{k: v for k, v in f.items() if k != "attention_mask"} for f in features]
    theirs = ref.pad(copy.deepcopy(features), **kw)
    assert lists_of(tok.pad(copy.deepcopy(features), **kw)) == lists_of(theirs)
    if kw.get("padding") is False:
        with pytest.raises(InputError, match="padding=True"):
            tok.pad(features, **kw, return_tensors="np")
        return
    ours = tok.pad(features, **kw, return_tensors="np")
    expected = ref.pad(copy.deepcopy(features), **kw, return_tensors="np")
    assert set(ours) == set(expected)
    for key in expected:
        np.testing.assert_array_equal(ours[key], expected[key], err_msg=key)
        assert ours[key].dtype == expected[key].dtype, key
    if "pad_to_multiple_of" in kw:
        assert ours["input_ids"].shape[1] % kw["pad_to_multiple_of"] == 0


def test_pad_other_input_forms(tok, ref):
    features = features_of(ref, SST2)
    columns = {key: [f[key] for f in features] for key in features[0]}  # a dict of lists
    assert lists_of(tok.pad(copy.deepcopy(columns))) == lists_of(ref.pad(copy.deepcopy(columns)))
    one = {"input_ids": ref.encode(SST2[1])}  # one feature, no attention_mask: made, and padded to a multiple
    assert lists_of(tok.pad(dict(one), pad_to_multiple_of=8)) == lists_of(ref.pad(dict(one), pad_to_multiple_of=8))
    arrays = [{"input_ids": np.asarray(ref.encode(t))} for t in SST2]  # arrays in: arrays out, as transformers
    ours, theirs = tok.pad(arrays), ref.pad(copy.deepcopy(arrays))
    assert isinstance(ours["input_ids"], np.ndarray)
    for key in theirs:
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)
    with pytest.raises(InputError, match="input_ids"):
        tok.pad([{"attention_mask": [1, 1]}])
    with pytest.raises(InputError, match="nothing to pad"):
        tok.pad([])


def test_is_split_into_words_like_transformers(tok, ref):
    kw = {"is_split_into_words": True, "return_offsets_mapping": True}
    for words in WORDS:  # one text as a list of words: lists, word_ids index the given words
        ours, theirs = tok(words, **kw), ref(words, **kw)
        assert lists_of(ours) == lists_of(theirs)
        assert ours.word_ids() == theirs.word_ids()
    ours = tok(WORDS, padding=True, return_tensors="np", **kw)
    theirs = ref(WORDS, padding=True, **kw)
    assert_same(ours, theirs)
    for i in range(len(WORDS)):
        assert ours.word_ids(i) == theirs.word_ids(i)
        assert max(w for w in ours.word_ids(i) if w is not None) == len(WORDS[i]) - 1
    pairs = (WORDS[:3], WORDS[3:6])  # pre-split pairs, truncated
    pair_kw = {"is_split_into_words": True, "truncation": True, "max_length": 24, "padding": True}
    ours, theirs = tok(*pairs, **pair_kw), ref(*pairs, **pair_kw)
    assert lists_of(ours) == lists_of(theirs)
    assert [ours.word_ids(i) for i in range(3)] == [theirs.word_ids(i) for i in range(3)]
    assert [ours.sequence_ids(i) for i in range(3)] == [theirs.sequence_ids(i) for i in range(3)]
    with pytest.raises(InputError, match="list of words"):
        tok(SST2[0], is_split_into_words=True)
    with pytest.raises(InputError, match="is_split_into_words"):
        tok(WORDS[:2])
