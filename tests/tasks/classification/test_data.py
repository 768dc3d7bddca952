"""Classification readers on small files written here, the shipped SST-2 slice, and the real data when present."""
from pathlib import Path

import numpy as np
import pytest

from minitransfer.data.shipped import shipped_data_path
from minitransfer.errors import InputError
from minitransfer.tasks.classification.data import (
    ClassificationDataset,
    Example,
    detect_format,
    read_classification_file,
)

SHARED = Path("/work/shared/data")
BOM = "\ufeff"
MSR_HEADER = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"


def write(tmp_path: Path, name: str, text: str, newline: str = "\n") -> Path:
    path = tmp_path / name
    path.write_bytes(text.replace("\n", newline).encode("utf-8"))
    return path


# ---- glue ---------------------------------------------------------------------------------------------------------

def test_glue_sst2(tmp_path):
    path = write(tmp_path, "train.tsv", "sentence\tlabel\nhide new secretions \t0\na charming journey . \t1\n")
    ds = read_classification_file(path)
    assert isinstance(ds, ClassificationDataset)
    assert ds.examples == [Example("hide new secretions", None, 0), Example("a charming journey .", None, 1)]
    assert ds.label_names == ["0", "1"] and ds.source == str(path)
    assert not ds.has_pairs and ds.text_pairs() is None
    np.testing.assert_array_equal(ds.labels(), [0, 1])


def test_glue_one_class_file_keeps_canonical_ids(tmp_path):
    # A file with only label 1 must still map "1" to id 1 (label value = id for integer labels).
    ds = read_classification_file(write(tmp_path, "a.tsv", "sentence\tlabel\ngood\t1\n"))
    assert ds.label_names == ["0", "1"] and ds[0].label == 1


def test_glue_mrpc_pairs_and_quotes(tmp_path):
    text = (f"{MSR_HEADER}\n"
            '1\t1\t2\tHe called "the witness", of course.\t"The witness" he said\n'
            "0\t3\t4\tIt's 5\" long\tno quote here\n")
    ds = read_classification_file(write(tmp_path, "train.tsv", text), format="glue")
    assert ds.has_pairs and ds.label_names == ["0", "1"]
    assert ds[0] == Example('He called "the witness", of course.', '"The witness" he said', 1)
    assert ds[1] == Example("It's 5\" long", "no quote here", 0)


@pytest.mark.parametrize("header, pair", [("sentence1\tsentence2\tlabel", True), ("question\tsentence\tlabel", True),
                                          ("index\tsentence\tlabel", False)])
def test_glue_picks_columns_by_header_name(tmp_path, header, pair):
    row = "a\tb\t1" if pair else "7\ta\t1"
    ds = read_classification_file(write(tmp_path, "x.tsv", f"{header}\n{row}\n"), format="glue")
    assert ds[0] == Example("a", "b" if pair else None, 1)


def test_glue_string_labels_sorted(tmp_path):
    text = "premise\thypothesis\tlabel\na\tb\tneutral\nc\td\tentailment\ne\tf\tcontradiction\n"
    ds = read_classification_file(write(tmp_path, "mnli.tsv", text))
    assert ds.label_names == ["contradiction", "entailment", "neutral"]
    assert [ex.label for ex in ds] == [2, 1, 0]


def test_named_columns_override(tmp_path):
    path = write(tmp_path, "x.tsv", "body\tlabel\tstars\nnice\t0\t5\n")
    ds = read_classification_file(path, format="glue", text_column="body", label_column="stars")
    assert ds[0] == Example("nice", None, 5) and ds.num_labels == 6


# ---- msr ----------------------------------------------------------------------------------------------------------

def test_msr_bom_crlf(tmp_path):
    text = f"{BOM}{MSR_HEADER}\n1\t702876\t702977\tAmrozi called \"the witness\".\tReferring to \"the witness\".\n"
    path = write(tmp_path, "msr_paraphrase_train.txt", text, newline="\r\n")
    assert detect_format(path) == "msr"
    ds = read_classification_file(path)
    assert ds.examples == [Example('Amrozi called "the witness".', 'Referring to "the witness".', 1)]


def test_msr_wrong_header(tmp_path):
    path = write(tmp_path, "m.txt", "sentence\tlabel\na\t1\n")
    with pytest.raises(InputError, match=r"MSR paraphrase file starts with the header"):
        read_classification_file(path, format="msr")


# ---- sms ----------------------------------------------------------------------------------------------------------

def test_sms(tmp_path):
    path = write(tmp_path, "sms.tsv", 'spam\tWIN a "free" prize now\nham\tOk lar... Joking wif u oni...\n')
    assert detect_format(path) == "sms"
    ds = read_classification_file(path)
    assert ds.label_names == ["ham", "spam"]
    assert ds.examples == [Example('WIN a "free" prize now', None, 1),
                           Example("Ok lar... Joking wif u oni...", None, 0)]


def test_sms_only_ham_keeps_both_labels(tmp_path):
    ds = read_classification_file(write(tmp_path, "sms.tsv", "ham\thello\n"), format="sms")
    assert ds.label_names == ["ham", "spam"] and ds.label_counts() == {"ham": 1, "spam": 0}


def test_sms_unknown_label(tmp_path):
    path = write(tmp_path, "sms.tsv", "ham\thello\nmaybe\tbye\n")
    with pytest.raises(InputError, match=r"sms\.tsv, line 2: label 'maybe'"):
        read_classification_file(path, format="sms")


def test_sms_wrong_field_count(tmp_path):
    path = write(tmp_path, "sms.tsv", "ham\thello\nham\ttab\tinside\n")
    with pytest.raises(InputError, match=r"line 2: expected 2 tab-separated fields.*found 3"):
        read_classification_file(path, format="sms")


# ---- csv and jsonl ------------------------------------------------------------------------------------------------

def test_csv_string_labels_and_pairs(tmp_path):
    text = 'text,text_pair,label\n"Hello, world",second,pos\nbye,"say ""bye""",neg\n'
    ds = read_classification_file(write(tmp_path, "d.csv", text))
    assert ds.label_names == ["neg", "pos"]
    assert ds.examples == [Example("Hello, world", "second", 1), Example("bye", 'say "bye"', 0)]


def test_csv_custom_columns_and_negative_int_labels(tmp_path):
    text = "review,polarity\ngreat,1\nawful,-1\n"
    ds = read_classification_file(write(tmp_path, "r.csv", text), text_column="review", label_column="polarity")
    assert ds.label_names == ["-1", "1"] and [ex.label for ex in ds] == [1, 0]


def test_jsonl_int_and_string_labels(tmp_path):
    text = '{"text": "a", "label": 1}\n\n{"text": "b", "label": 0}\n'
    ds = read_classification_file(write(tmp_path, "d.jsonl", text))
    assert ds.label_names == ["0", "1"] and ds.examples == [Example("a", None, 1), Example("b", None, 0)]
    text = '{"text": "a", "text_pair": "x", "label": "yes"}\n{"text": "b", "text_pair": "y", "label": "no"}\n'
    ds = read_classification_file(write(tmp_path, "p.jsonl", text))
    assert ds.label_names == ["no", "yes"] and ds[0] == Example("a", "x", 1)


@pytest.mark.parametrize("line, message", [
    ('{"text": "a"}', r"line 2: no key 'label'; keys found: \['text'\]"),
    ('{"text": "a", "label": 1.5}', r"line 2: label must be a string or an integer"),
    ('{"text": 3, "label": 1}', r"line 2: 'text' must be a string"),
    ('["a", 1]', r"line 2: expected a JSON object"),
    ('{"text": "a", "label": 1', r"line 2: not valid JSON"),
    ('{"text": "a", "text_pair": "b", "label": 1}', r"line 2: has a second text, unlike line 1"),
])
def test_jsonl_errors(tmp_path, line, message):
    path = write(tmp_path, "d.jsonl", '{"text": "ok", "label": 0}\n' + line + "\n")
    with pytest.raises(InputError, match=message):
        read_classification_file(path)


# ---- labels across files, limits ----------------------------------------------------------------------------------

def test_eval_set_uses_train_label_names(tmp_path):
    train = read_classification_file(write(tmp_path, "train.csv", "text,label\na,pos\nb,neu\nc,neg\n"))
    dev = read_classification_file(write(tmp_path, "dev.csv", "text,label\nd,pos\n"), label_names=train.label_names)
    assert dev.label_names == ["neg", "neu", "pos"] and dev[0].label == 2


def test_eval_label_unknown_to_train(tmp_path):
    train = read_classification_file(write(tmp_path, "train.csv", "text,label\na,pos\nb,neg\n"))
    dev = write(tmp_path, "dev.csv", "text,label\nd,pos\ne,meh\n")
    with pytest.raises(InputError, match=r"dev\.csv, line 3: label 'meh' is not one of the training labels"):
        read_classification_file(dev, label_names=train.label_names)


def test_max_examples(tmp_path):
    path = write(tmp_path, "a.tsv", "sentence\tlabel\na\t0\nb\t1\nc\t0\n")
    assert read_classification_file(path, max_examples=2).texts() == ["a", "b"]
    with pytest.raises(InputError, match="max_examples must be at least 1"):
        read_classification_file(path, max_examples=0)


# ---- errors -------------------------------------------------------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"nope\.tsv does not exist"):
        read_classification_file(tmp_path / "nope.tsv", format="glue")


@pytest.mark.parametrize("content", ["", "sentence\tlabel\n", "sentence\tlabel\n\n"])
def test_empty_file(tmp_path, content):
    with pytest.raises(InputError, match="has no examples"):
        read_classification_file(write(tmp_path, "e.tsv", content), format="glue")


def test_missing_column_names_it_and_lists_found(tmp_path):
    path = write(tmp_path, "d.csv", "text,gold\na,1\n")
    with pytest.raises(InputError, match=r"no column 'label'; columns found: \['text', 'gold'\]"):
        read_classification_file(path)


def test_glue_without_text_column(tmp_path):
    path = write(tmp_path, "d.tsv", "body\tlabel\na\t1\n")
    with pytest.raises(InputError, match=r"found no text column .*columns found: \['body', 'label'\]"):
        read_classification_file(path)


def test_wrong_field_count(tmp_path):
    path = write(tmp_path, "d.tsv", "sentence\tlabel\na\t1\nb\t0\textra\n")
    with pytest.raises(InputError, match=r"d\.tsv, line 3: expected 2 tab-separated fields"):
        read_classification_file(path)


def test_empty_text(tmp_path):
    path = write(tmp_path, "d.tsv", "sentence\tlabel\na\t1\n  \t0\n")
    with pytest.raises(InputError, match=r"line 3: empty text"):
        read_classification_file(path)


def test_not_utf8(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_bytes(b"sentence\tlabel\ncaf\xe9\t1\n")
    with pytest.raises(InputError, match="is not UTF-8"):
        read_classification_file(path, format="glue")


def test_unknown_format(tmp_path):
    with pytest.raises(InputError, match="unknown data format 'xml'"):
        read_classification_file(write(tmp_path, "a.tsv", "sentence\tlabel\na\t1\n"), format="xml")


@pytest.mark.parametrize("name, content, expected", [
    ("a.jsonl", "{}", "jsonl"), ("a.csv", "text,label", "csv"), ("a.tsv", "sentence\tlabel", "glue"),
    ("a.tsv", MSR_HEADER, "glue"), ("a.txt", f"{BOM}{MSR_HEADER}", "msr"), ("SMSSpamCollection", "ham\thi", "sms"),
])
def test_detect_format(tmp_path, name, content, expected):
    assert detect_format(write(tmp_path, name, content + "\n")) == expected


def test_detect_format_ambiguous(tmp_path):
    with pytest.raises(InputError, match="pass --format"):
        detect_format(write(tmp_path, "notes.txt", "just some words\n"))


# ---- shipped slice and real data ----------------------------------------------------------------------------------

def test_shipped_sst2_slice():
    train = read_classification_file(shipped_data_path("sst2/train_subset.tsv"))
    dev = read_classification_file(shipped_data_path("sst2/dev.tsv"), label_names=train.label_names)
    assert len(train) == 8000 and train.label_names == ["0", "1"]
    assert min(train.label_counts().values()) > 0
    assert len(dev) == 872 and dev.label_counts() == {"0": 428, "1": 444}


def test_shipped_data_path_unknown():
    with pytest.raises(InputError, match=r"no shipped data file 'sst2/test\.tsv'; shipped files: .*sst2/dev\.tsv"):
        shipped_data_path("sst2/test.tsv")


@pytest.mark.skipif(not SHARED.is_dir(), reason="real data in /work/shared/data is not on this machine")
@pytest.mark.parametrize("relpath, format, counts", [
    ("sst2/train.tsv", "glue", {"0": 29780, "1": 37569}),
    ("sst2/dev.tsv", "glue", {"0": 428, "1": 444}),
    ("mrpc/msr_paraphrase_train.txt", "msr", {"0": 1323, "1": 2753}),
    ("mrpc/train.tsv", "glue", {"0": 1191, "1": 2477}),
    ("mrpc/dev.tsv", "glue", {"0": 132, "1": 276}),
    ("sms_spam/train.tsv", "sms", {"ham": 3862, "spam": 598}),
])
def test_real_files_match_readme_counts(relpath, format, counts):
    assert detect_format(SHARED / relpath) == format
    ds = read_classification_file(SHARED / relpath)
    assert ds.label_counts() == counts
    assert ds.has_pairs == relpath.startswith("mrpc")
