"""pipeline(): each task's output against transformers' own on the same checkpoint directory.

Checkpoints: the real MiniLM (feature-extraction); MiniLM with a fresh seeded head saved by minitransfer's
save_pretrained (text-classification, question-answering; transformers loads the same directory); tiny random
masked LMs written by transformers itself (fill-mask). Labels, tokens, sequences and spans must be identical;
scores agree to rtol 1e-4 (float32 logits agree to ~1e-6 relative; probabilities inherit that).

transformers 5 has no question-answering pipeline, so `reference_qa` restates the rule of its last one (4.57) over
transformers' tokenizer and torch model. During development it and minitransfer's pipeline were both checked
against transformers 4.57.6's own QuestionAnsweringPipeline on this checkpoint (short and multi-window contexts,
top_k, doc_stride, handle_impossible_answer, align_to_words=False): identical spans, scores within 6e-6.
"""
import shutil

import numpy as np
import pytest

import minitransfer as mt
from minitransfer.errors import CheckpointError, InputError

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
LABELS = {0: "negative", 1: "neutral", 2: "positive"}
SHORT = ("The Normans were the people who in the 10th and 11th centuries gave their name to Normandy, a region in "
         "France. They were descended from Norse raiders and pirates from Denmark, Iceland and Norway who, under "
         "their leader Rollo, agreed to swear fealty to King Charles III of West Francia.")
# About 1,000 tokens: four 384-token windows at doc_stride 128, the brotherhood sentence in the middle ones.
LONG = " ".join([SHORT] * 7 + ["The brotherhood was led by an abbot named Wulfstan, who built the great hall in "
                               "1066 and played chess every evening."] + [SHORT] * 7)


def copy_tokenizer(source, target):
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copy(source / name, target / name)


def save_with_head(model, path, minilm_path, seed=0, std=0.1):
    """Give the fresh head larger seeded weights (so labels and spans differ between inputs) and save it."""
    rng = np.random.default_rng(seed)
    head = model.classifier if hasattr(model, "classifier") else model.qa_outputs
    head.weight.data[...] = rng.normal(0.0, std, head.weight.data.shape).astype(np.float32)
    head.bias.data[...] = rng.normal(0.0, std, head.bias.data.shape).astype(np.float32)
    model.save_pretrained(path)
    copy_tokenizer(minilm_path, path)
    return path


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory, minilm_path):
    mt.manual_seed(0)
    model = mt.AutoModelForSequenceClassification.from_pretrained(
        minilm_path, num_labels=3, id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    return save_with_head(model, tmp_path_factory.mktemp("classifier"), minilm_path, std=0.1)


@pytest.fixture(scope="module")
def one_label_dir(tmp_path_factory, minilm_path):
    mt.manual_seed(1)
    model = mt.AutoModelForSequenceClassification.from_pretrained(minilm_path, num_labels=1)
    return save_with_head(model, tmp_path_factory.mktemp("one-label"), minilm_path, seed=1, std=0.1)


@pytest.fixture(scope="module")
def qa_dir(tmp_path_factory, minilm_path):
    mt.manual_seed(0)
    model = mt.AutoModelForQuestionAnswering.from_pretrained(minilm_path)
    return save_with_head(model, tmp_path_factory.mktemp("qa"), minilm_path, std=0.3)


@pytest.fixture(scope="module", params=["bert-mlm", "distilbert-mlm"])
def mlm_dir(request, tmp_path_factory, minilm_path):
    from tests.models.conftest import make_checkpoint

    path = tmp_path_factory.mktemp(request.param)
    make_checkpoint(path, request.param, "safetensors")
    copy_tokenizer(minilm_path, path)
    return path


def assert_same(ours, theirs, where="result"):
    """Same nesting, same keys, equal values; scores (and hidden states) to rtol 1e-4."""
    assert type(ours) is type(theirs), f"{where}: {type(ours).__name__} vs {type(theirs).__name__}"
    if isinstance(ours, list):
        assert len(ours) == len(theirs), f"{where}: {len(ours)} vs {len(theirs)} items"
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert_same(a, b, f"{where}[{i}]")
    elif isinstance(ours, dict):
        assert ours.keys() == theirs.keys(), where
        for key in ours:
            assert_same(ours[key], theirs[key], f"{where}[{key!r}]")
    elif isinstance(ours, float):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, err_msg=where)
    else:
        assert ours == theirs, f"{where}: {ours!r} vs {theirs!r}"


# ---------------------------------------------------------------- feature-extraction
@pytest.fixture(scope="module")
def extractors(minilm_path):
    return (mt.pipeline("feature-extraction", model=str(minilm_path)),
            transformers.pipeline("feature-extraction", model=str(minilm_path)))


def test_feature_extraction_matches_transformers(extractors, sentences):
    ours, theirs = extractors
    got, expected = ours(sentences[0]), theirs(sentences[0])
    assert isinstance(got, list) and isinstance(got[0][0][0], float)
    assert np.shape(got) == np.shape(expected)  # [1, seq, 384]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_feature_extraction_batch_keeps_each_length(extractors, sentences):
    ours, theirs = extractors
    got = ours(sentences, batch_size=4, return_tensors=True)
    assert len(got) == len(sentences)
    for text, array in zip(sentences, got):
        expected = theirs(text, return_tensors=True).numpy()  # one text alone: no padding
        assert isinstance(array, np.ndarray) and array.shape == expected.shape
        np.testing.assert_allclose(array, expected, rtol=1e-4, atol=1e-5)


def test_feature_extraction_of_a_head_model_is_its_body(minilm_path, classifier_dir, extractors, sentences):
    model = mt.AutoModelForSequenceClassification.from_pretrained(classifier_dir)
    pipe = mt.pipeline("feature-extraction", model=model, tokenizer=str(minilm_path))
    np.testing.assert_allclose(pipe(sentences[1]), extractors[1](sentences[1]), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- text-classification
@pytest.fixture(scope="module")
def classifiers(classifier_dir):
    return (mt.pipeline("text-classification", model=str(classifier_dir)),
            transformers.pipeline("text-classification", model=str(classifier_dir)))


@pytest.mark.parametrize("options", [{}, {"top_k": None}, {"top_k": 2}, {"top_k": 1},
                                     {"function_to_apply": "sigmoid"}, {"function_to_apply": "none"}])
def test_text_classification_matches_transformers(classifiers, sentences, options):
    ours, theirs = classifiers
    assert_same(ours(sentences[0], **options), theirs(sentences[0], **options))
    assert_same(ours(sentences, **options), theirs(sentences, **options))
    pair = {"text": sentences[3], "text_pair": sentences[2]}
    assert_same(ours(pair, **options), theirs(pair, **options))
    assert_same(ours([pair, pair], **options), theirs([pair, pair], **options))


def test_text_classification_labels_differ_between_texts(classifiers, sentences):
    # Otherwise the label comparison above could not fail.
    assert len({r["label"] for r in classifiers[0](sentences)}) > 1


def test_text_classification_batch_size_4(classifier_dir, classifiers, sentences):
    batched = mt.pipeline("sentiment-analysis", model=str(classifier_dir), batch_size=4)
    assert_same(batched(sentences, top_k=None), classifiers[1](sentences, top_k=None))


def test_text_classification_top_k_given_to_the_constructor(classifier_dir, sentences):
    # transformers' quirk, kept: top_k=None at construction, a str called without top_k -> one more list.
    ours = mt.pipeline("text-classification", model=str(classifier_dir), top_k=None)
    theirs = transformers.pipeline("text-classification", model=str(classifier_dir), top_k=None)
    assert_same(ours(sentences[0]), theirs(sentences[0]))
    assert_same(ours(sentences[:2]), theirs(sentences[:2]))
    assert_same(ours(sentences[0], top_k=2), theirs(sentences[0], top_k=2))


def test_text_classification_one_label_is_a_sigmoid(one_label_dir, sentences):
    ours = mt.pipeline("text-classification", model=str(one_label_dir))
    theirs = transformers.pipeline("text-classification", model=str(one_label_dir))
    assert_same(ours(sentences), theirs(sentences))
    assert ours(sentences[0])[0]["label"] == "LABEL_0"


# ---------------------------------------------------------------- fill-mask
@pytest.fixture(scope="module")
def fillers(mlm_dir):
    return mt.pipeline("fill-mask", model=str(mlm_dir)), transformers.pipeline("fill-mask", model=str(mlm_dir))


@pytest.mark.parametrize("text, options", [
    ("The movie was [MASK].", {}),
    ("The movie was [MASK].", {"top_k": 2}),
    ("[MASK] is the capital of [MASK] .", {}),  # several masks: a list per mask, sequences with [CLS]/[SEP]
    ("[MASK] is the capital of [MASK] .", {"top_k": 3, "targets": "good"}),  # top_k capped by the targets
    ("The movie was [MASK].", {"targets": ["good", "bad", "zzzqqq", "Paris", "paris"]}),  # two not in the vocab
    (["a [MASK] day"], {}),  # a list of one: as one text
])
def test_fill_mask_matches_transformers(fillers, text, options):
    ours, theirs = fillers
    assert_same(ours(text, **options), theirs(text, **options))


def test_fill_mask_batch_size_4(mlm_dir, fillers):
    texts = ["a [MASK] day", "the [MASK] end of [MASK]", "[MASK]", "The movie was [MASK].", "x [MASK] y z w v"]
    batched = mt.pipeline("fill-mask", model=str(mlm_dir), batch_size=4, top_k=3)
    assert_same(batched(texts), fillers[1](texts, top_k=3))


def test_fill_mask_errors(mlm_dir, minilm_path, fillers):
    with pytest.raises(InputError, match=r"no \[MASK\] token"):
        fillers[0]("no mask here")
    with pytest.raises(CheckpointError, match="no masked-LM head"):  # MiniLM was saved without its MLM head
        mt.pipeline("fill-mask", model=str(minilm_path))
    with pytest.raises(InputError, match="none of the targets"):
        fillers[0]("a [MASK]", targets=[" "])


# ---------------------------------------------------------------- question-answering
def reference_qa(model_dir, question, context, top_k=1, max_answer_len=15, max_seq_len=384, doc_stride=128,
                 handle_impossible_answer=False, align_to_words=True):
    """transformers 4.57's QuestionAnsweringPipeline rule over transformers' tokenizer and torch model."""
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.AutoModelForQuestionAnswering.from_pretrained(model_dir).eval()
    enc = tok(question, context, truncation="only_second", max_length=max_seq_len, stride=doc_stride,
              return_overflowing_tokens=True, return_offsets_mapping=True, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                    token_type_ids=enc["token_type_ids"])
    answers, null_score = [], 1e6
    for w in range(len(enc["input_ids"])):
        n = int(enc["attention_mask"][w].sum())
        sequence_ids = enc.sequence_ids(w)
        usable = torch.tensor([sequence_ids[i] == 1 or int(enc["input_ids"][w, i]) == tok.cls_token_id
                               for i in range(n)])
        p_start = torch.where(usable, out.start_logits[w, :n], -10000.0).softmax(-1)
        p_end = torch.where(usable, out.end_logits[w, :n], -10000.0).softmax(-1)
        null_score = min(null_score, (p_start[0] * p_end[0]).item())
        p_start[0] = p_end[0] = 0.0
        spans = [((p_start[s] * p_end[e]).item(), s, e) for s in range(n)
                 for e in range(s, min(n, s + max_answer_len))]
        spans.sort(key=lambda span: -span[0])
        encoding = enc.encodings[w]
        for score, s, e in spans[:top_k * 2 + 10 if align_to_words else top_k]:
            if score <= 0:
                continue
            if align_to_words:
                begin = encoding.word_to_chars(encoding.token_to_word(s), sequence_index=1)[0]
                end = encoding.word_to_chars(encoding.token_to_word(e), sequence_index=1)[1]
            else:
                begin, end = encoding.offsets[s][0], encoding.offsets[e][1]
            text = context[begin:end]
            for answer in answers:
                if answer["answer"].lower() == text.lower():
                    answer["score"] += score
                    break
            else:
                answers.append({"score": score, "start": begin, "end": end, "answer": text})
    if handle_impossible_answer:
        answers.append({"score": null_score, "start": 0, "end": 0, "answer": ""})
    answers = sorted(answers, key=lambda a: a["score"], reverse=True)[:top_k]
    return answers[0] if len(answers) == 1 else answers


@pytest.fixture(scope="module")
def qa(qa_dir):
    return mt.pipeline("question-answering", model=str(qa_dir))


@pytest.mark.parametrize("question, context, options", [
    ("Who led the brotherhood?", SHORT, {}),
    ("Who led the brotherhood?", LONG, {}),  # four windows: the best span over all of them
    ("Who led the brotherhood?", LONG, {"top_k": 5}),
    ("Where is Normandy?", SHORT, {"top_k": 3, "max_answer_len": 5}),
    ("Where is Normandy?", LONG, {"doc_stride": 64, "max_seq_len": 128, "top_k": 2}),
    ("Where is Normandy?", SHORT, {"handle_impossible_answer": True, "top_k": 2}),
    ("Where is Normandy?", SHORT, {"align_to_words": False, "top_k": 3}),
])
def test_question_answering_matches_transformers(qa, qa_dir, question, context, options):
    got = qa(question=question, context=context, **options)
    assert_same(got, reference_qa(str(qa_dir), question, context, **options))
    for answer in got if isinstance(got, list) else [got]:
        assert context[answer["start"]:answer["end"]] == answer["answer"]


def test_question_answering_long_context_has_several_windows(qa_dir):
    tok = mt.AutoTokenizer.from_pretrained(qa_dir)
    windows = tok("Who led the brotherhood?", LONG, truncation="only_second", max_length=384, stride=128,
                  return_overflowing_tokens=True)["input_ids"]
    assert len(windows) >= 3


def test_question_answering_batch_of_examples(qa_dir, qa):
    examples = [{"question": "Who led the brotherhood?", "context": LONG},
                {"question": "Where is Normandy?", "context": SHORT},
                {"question": "Who was Rollo?", "context": SHORT}]
    expected = [reference_qa(str(qa_dir), ex["question"], ex["context"], top_k=2) for ex in examples]
    batched = mt.pipeline("question-answering", model=str(qa_dir), batch_size=4)
    assert_same(batched(examples, top_k=2), expected)
    assert_same(qa(question=[ex["question"] for ex in examples], context=[ex["context"] for ex in examples],
                   top_k=2), expected)
    pairs = [(ex["question"], ex["context"]) for ex in examples]
    assert_same(batched(pairs, top_k=2), expected)
    assert_same(qa(examples[1]), reference_qa(str(qa_dir), examples[1]["question"], SHORT))  # one dict: one result
    assert_same(qa("Where is Normandy?", SHORT), qa(question="Where is Normandy?", context=SHORT))


def test_question_answering_errors(qa):
    with pytest.raises(InputError, match="question-answering needs question"):
        qa()
    with pytest.raises(InputError, match="context must be a non-empty str"):
        qa(question="Who?", context="")
    with pytest.raises(InputError, match="3 questions but 2 contexts"):
        qa(question=["a", "b", "c"], context=["x", "y"])
    with pytest.raises(InputError, match="top_k must be an int >= 1"):
        qa(question="Who?", context=SHORT, top_k=0)


# ---------------------------------------------------------------- construction
def test_unknown_task_lists_the_supported_ones(classifier_dir):
    with pytest.raises(InputError, match="text-classification, fill-mask, question-answering, feature-extraction"):
        mt.pipeline("summarization", model=str(classifier_dir))


def test_a_model_without_the_task_head_is_refused(minilm_path, classifier_dir):
    with pytest.raises(CheckpointError, match="needs a fine-tuned sequence classifier.*classifier.weight"):
        mt.pipeline("text-classification", model=str(minilm_path))
    with pytest.raises(CheckpointError, match="needs a fine-tuned span-QA model.*qa_outputs"):
        mt.pipeline("question-answering", model=str(classifier_dir))
    body = mt.AutoModel.from_pretrained(minilm_path)
    with pytest.raises(InputError, match="needs a fine-tuned sequence classifier .*, got a BertModel"):
        mt.pipeline("text-classification", model=body, tokenizer=str(minilm_path))


def test_a_loaded_model_and_tokenizer(classifier_dir, classifiers, sentences):
    model = mt.AutoModelForSequenceClassification.from_pretrained(classifier_dir).train()
    with pytest.raises(InputError, match="pass tokenizer="):
        mt.pipeline("text-classification", model=model)
    pipe = mt.pipeline("text-classification", model=model, tokenizer=mt.AutoTokenizer.from_pretrained(classifier_dir),
                       device=-1)
    assert not model.training  # eval mode: dropout off, or scores would be random
    assert_same(pipe(sentences, top_k=None), classifiers[1](sentences, top_k=None))


def test_devices_and_options(classifier_dir, classifiers):
    for device in (None, -1, "cpu"):
        assert mt.pipeline("text-classification", model=str(classifier_dir), device=device).device == "cpu"
    try:
        import cupy  # noqa: F401
    except ImportError:
        for device in (0, "cuda", "cuda:1"):
            with pytest.raises(InputError, match="CuPy"):
                mt.pipeline("text-classification", model=str(classifier_dir), device=device)
    with pytest.raises(InputError, match="unknown device"):
        mt.pipeline("text-classification", model=str(classifier_dir), device="tpu")
    with pytest.raises(InputError, match="no option 'topk'.*top_k"):
        classifiers[0]("text", topk=2)
    with pytest.raises(InputError, match="batch_size must be an int >= 1"):
        classifiers[0](["a", "b"], batch_size=0)


PIPELINE_SCRIPT = '''
from {library} import pipeline

unmasker = pipeline("fill-mask", model=mlm_checkpoint)
fills = unmasker("the movie was [MASK] .", top_k=3)
{qa_lines}
'''
QA_LINES = '''
question_answerer = pipeline("question-answering", model=qa_checkpoint)
answer = question_answerer(question="what was the movie?", context="the movie was a charming journey .")
'''


@pytest.mark.parametrize("library", ["minitransfer", "transformers"])
def test_pipeline_scripts_run_with_only_the_import_line_changed(mlm_dir, qa_dir, library):
    """fill-mask on both libraries; question-answering on minitransfer (transformers 5 has no QA pipeline)."""
    qa_lines = QA_LINES if library == "minitransfer" else ""
    names = {"mlm_checkpoint": str(mlm_dir), "qa_checkpoint": str(qa_dir)}
    exec(PIPELINE_SCRIPT.format(library=library, qa_lines=qa_lines), names)  # noqa: S102
    assert names["pipeline"].__module__.split(".")[0] == library, "the script ran the library it imports"
    fills = names["fills"]
    assert len(fills) == 3 and {"score", "token", "token_str", "sequence"} <= set(fills[0])
    assert fills[0]["score"] >= fills[1]["score"] >= fills[2]["score"]
    if library == "minitransfer":
        answer = names["answer"]
        context = "the movie was a charming journey ."
        assert context[answer["start"]:answer["end"]] == answer["answer"] and 0 < answer["score"] <= 1
