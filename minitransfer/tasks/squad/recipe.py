"""Span question answering recipes: fine-tune on SQuAD-format data, predict a file, answer a question."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from minitransfer import seeding
from minitransfer.data.batching import ArrayDataset
from minitransfer.errors import InputError
from minitransfer.models import AutoModelForQuestionAnswering
from minitransfer.tasks.squad.baseline import overlap_sentence_baseline
from minitransfer.tasks.squad.data import article_split, read_squad
from minitransfer.tasks.squad.features import prepare_eval_features, prepare_train_features
from minitransfer.tasks.squad.inference import answer, run_model
from minitransfer.tasks.squad.metrics import evaluate
from minitransfer.tasks.squad.postprocess import postprocess_predictions
from minitransfer.tokenization import AutoTokenizer
from minitransfer.training import Trainer, TrainingArguments
from minitransfer.training.trainer_utils import run_summary

QA_ARGS_FILE = "qa_args.json"  # the window settings a run used, so prediction reuses them


def read_squad_files(paths: str | list[str], max_examples: int | None = None) -> list:
    """Examples of one or more SQuAD JSON files (comma-separated), the first `max_examples` of them."""
    paths = paths.split(",") if isinstance(paths, str) else paths
    examples = [ex for path in paths for ex in read_squad(path.strip())]
    return examples[:max_examples] if max_examples else examples


def train_qa(model: str, train_file: str, eval_file: str | None, args: TrainingArguments, max_length: int = 384,
             doc_stride: int = 128, max_train_examples: int | None = None, max_eval_examples: int | None = None,
             dev_fraction: float = 0.1, split_by: str = "title", cache_dir: str | None = None,
             resume: bool = False, callbacks: list | None = None) -> dict:
    """Fine-tune `model` for span QA; evaluates EM/F1 on `eval_file`, or on an article-level split of the
    training data when no eval file is given. Returns the final metrics."""
    examples = read_squad_files(train_file)
    if eval_file:
        train_examples, dev_examples = examples, read_squad_files(eval_file)
    else:
        train_examples, dev_examples = article_split(examples, dev_fraction, seed=args.seed, by=split_by)
        print(f"no --eval: {len(dev_examples)} questions of whole {split_by}s held out for validation")
    train_examples = train_examples[:max_train_examples] if max_train_examples else train_examples
    dev_examples = dev_examples[:max_eval_examples] if max_eval_examples else dev_examples
    tokenizer = AutoTokenizer.from_pretrained(model)
    train_features = prepare_train_features(train_examples, tokenizer, max_length, doc_stride, cache_dir)
    dev_features = prepare_eval_features(dev_examples, tokenizer, max_length, doc_stride, cache_dir)
    print(f"{len(train_examples)} training questions → {len(train_features)} windows; "
          f"{len(dev_examples)} validation questions → {len(dev_features)} windows")
    # What the validation EM/F1 should be read against: a model-free answer on the same questions.
    baseline = evaluate(dev_examples, overlap_sentence_baseline(dev_examples))
    print(f"trivial baseline on these validation questions (first 3 words of the context sentence sharing most "
          f"words with the question): EM {baseline['exact_match']:.2f}, F1 {baseline['f1']:.2f}")
    seeding.manual_seed(args.seed)
    qa_model = AutoModelForQuestionAnswering.from_pretrained(model)
    dataset = ArrayDataset({**train_features.model_inputs(), "start_positions": train_features.start_positions,
                            "end_positions": train_features.end_positions})

    def evaluate_fn(trainer: Trainer) -> dict:
        was_training = trainer.model.training
        start, end = run_model(trainer.model.eval(), dev_features, args.per_device_eval_batch_size)
        trainer.model.train(was_training)
        return evaluate(dev_examples, postprocess_predictions(dev_examples, dev_features, start, end))

    args = dataclasses.replace(args, metric_for_best_model="f1", greater_is_better=True)
    trainer = Trainer(qa_model, args, train_dataset=dataset, processing_class=tokenizer, evaluate_fn=evaluate_fn,
                      callbacks=callbacks)
    Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    (Path(args.output_dir) / QA_ARGS_FILE).write_text(json.dumps({"max_length": max_length, "doc_stride": doc_stride}))
    output = trainer.train(resume_from_checkpoint=True if resume else None)
    trainer.save_model(args.output_dir)
    return run_summary(trainer, output)


def window_settings(model_dir: str, max_length: int | None, doc_stride: int | None) -> tuple[int, int]:
    """The run's max_length/doc_stride unless overridden (defaults 384/128 for models trained elsewhere)."""
    saved = Path(model_dir) / QA_ARGS_FILE
    settings = json.loads(saved.read_text()) if saved.exists() else {"max_length": 384, "doc_stride": 128}
    return max_length or settings["max_length"], doc_stride or settings["doc_stride"]


def predict_squad(model_dir: str, data_file: str, max_length: int | None = None, doc_stride: int | None = None,
                  batch_size: int = 32, device: str = "cpu") -> dict[str, str]:
    """{question id: answer text} for every question of a SQuAD-format file (the official predictions format),
    the model run on `device`."""
    max_length, doc_stride = window_settings(model_dir, max_length, doc_stride)
    examples = read_squad_files(data_file)
    if not examples:
        raise InputError(f"{data_file} holds no questions")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForQuestionAnswering.from_pretrained(model_dir, allow_new_head=False).eval().to(device)
    features = prepare_eval_features(examples, tokenizer, max_length, doc_stride)
    start, end = run_model(model, features, batch_size)
    return postprocess_predictions(examples, features, start, end)


class QuestionAnswerer:
    """A fine-tuned QA directory ready to answer: `QuestionAnswerer(dir).answer(question, context)`.

    Contexts longer than one window are split with the run's doc stride; the best span over all windows wins.
    """

    def __init__(self, model_dir: str, max_length: int | None = None, doc_stride: int | None = None):
        self.max_length, self.doc_stride = window_settings(model_dir, max_length, doc_stride)
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForQuestionAnswering.from_pretrained(model_dir, allow_new_head=False).eval()

    def answer(self, question: str, context: str) -> dict:
        """{"answer", "score", "probability", "start", "end"} with context[start:end] == answer."""
        return answer(question, context, self.model, self.tokenizer, self.max_length, self.doc_stride)
