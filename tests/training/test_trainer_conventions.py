"""transformers' Trainer conventions: a course-style script runs with only its import line changed; callbacks,
early stopping, the best model at the end, checkpoint rotation, datasets-shaped rows, eval_-prefixed metrics."""
import importlib.util

import numpy as np
import pytest

from minitransfer.seeding import manual_seed
from minitransfer.training import (
    EarlyStoppingCallback,
    EvalPrediction,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from tests.conftest import save_tiny_bert

WORDS = {1: ["good", "great", "fine", "lovely"], 0: ["bad", "awful", "dull", "poor"]}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, minilm_path):
    """A tiny random BERT body with MiniLM's tokenizer, loadable by both libraries."""
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), minilm_path)


def raw_rows(n, seed):
    """datasets-shaped rows: a sentence, a label, an idx (columns the model does not take)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = int(rng.integers(0, 2))
        words = rng.choice(WORDS[label], size=int(rng.integers(1, 6)))
        rows.append({"sentence": "the film was " + " ".join(words), "label": label, "idx": i})
    return rows


COURSE_SCRIPT = '''
import numpy as np
from {library} import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,
                       EarlyStoppingCallback, Trainer, TrainingArguments)

tokenizer = AutoTokenizer.from_pretrained(checkpoint)
def tokenize_function(example):
    return tokenizer(example["sentence"], truncation=True)
train_dataset = [{{**row, **tokenize_function(row)}} for row in raw_train]   # what datasets' map() gives
eval_dataset = [{{**row, **tokenize_function(row)}} for row in raw_eval]
data_collator = DataCollatorWithPadding(tokenizer=tokenizer)
model = AutoModelForSequenceClassification.from_pretrained(checkpoint, num_labels=2)

def compute_metrics(eval_preds):
    logits, labels = eval_preds
    predictions = np.argmax(logits, axis=-1)
    return {{"accuracy": float((predictions == labels).mean())}}

training_args = TrainingArguments(output_dir, eval_strategy="epoch", save_strategy="epoch", num_train_epochs=3,
                                  per_device_train_batch_size=8, learning_rate=1e-3, load_best_model_at_end=True,
                                  metric_for_best_model="accuracy", save_total_limit=1, report_to="none",
                                  logging_steps=5, seed=0, use_cpu=True)
trainer = Trainer(model, training_args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                  data_collator=data_collator, processing_class=tokenizer, compute_metrics=compute_metrics,
                  callbacks=[EarlyStoppingCallback(early_stopping_patience=2)])
train_output = trainer.train()
metrics = trainer.evaluate()
predictions = trainer.predict(eval_dataset)
preds = np.argmax(predictions.predictions, axis=-1)
trainer.save_model(output_dir + "/final")
'''


@pytest.mark.parametrize("library", ["minitransfer", "transformers"])
def test_course_script_runs_with_only_the_import_line_changed(tiny_dir, tmp_path, library):
    if library == "transformers":  # proves the script is transformers' own idiom, not ours
        pytest.importorskip("transformers")
        if importlib.util.find_spec("accelerate") is None:
            pytest.skip("transformers' Trainer needs accelerate")
    names = {"checkpoint": str(tiny_dir), "raw_train": raw_rows(48, 0), "raw_eval": raw_rows(16, 1),
             "output_dir": str(tmp_path / "run")}
    exec(COURSE_SCRIPT.format(library=library), names)  # noqa: S102 (the script under test)
    assert names["Trainer"].__module__.split(".")[0] == library, "the script ran the library it imports"
    metrics, predictions = names["metrics"], names["predictions"]
    assert {"eval_loss", "eval_accuracy", "epoch"} <= set(metrics)
    assert names["preds"].shape == (16,) and predictions.label_ids.tolist() == [r["label"] for r in raw_rows(16, 1)]
    assert names["train_output"].global_step > 0
    assert (tmp_path / "run" / "final" / "config.json").exists()
    if library == "minitransfer":
        import minitransfer

        pipe_out = minitransfer.AutoModelForSequenceClassification.from_pretrained(tmp_path / "run" / "final")
        assert pipe_out.config.num_labels == 2


def tiny_trainer(tiny_dir, tmp_path, metrics=None, callbacks=None, **overrides):
    from minitransfer import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_dir, num_labels=2)

    def tokenized(rows):
        return [{**r, **{k: v[0].tolist() for k, v in tokenizer(r["sentence"], return_tensors="np").items()}}
                for r in rows]

    values = iter(metrics) if metrics is not None else None

    def compute_metrics(eval_pred):
        logits, labels = eval_pred
        if values is not None:
            return {"accuracy": next(values)}
        return {"accuracy": float((logits.argmax(-1) == labels).mean())}

    settings = dict(output_dir=str(tmp_path), per_device_train_batch_size=8, learning_rate=1e-3, disable_tqdm=True,
                    seed=0, logging_steps=1)
    settings.update(overrides)
    return Trainer(model, TrainingArguments(**settings), train_dataset=tokenized(raw_rows(40, 0)),
                   eval_dataset=tokenized(raw_rows(16, 1)), processing_class=tokenizer,
                   compute_metrics=compute_metrics, callbacks=callbacks)


def steps_args(**more):
    return dict(eval_strategy="steps", save_strategy="steps", eval_steps=1, save_steps=1, max_steps=20,
                load_best_model_at_end=True, metric_for_best_model="accuracy", **more)


def test_early_stopping_stops_after_patience_evaluations_without_improvement(tiny_dir, tmp_path):
    trainer = tiny_trainer(tiny_dir, tmp_path, metrics=[0.5, 0.6, 0.6, 0.55, 0.9, 0.9],
                           callbacks=[EarlyStoppingCallback(early_stopping_patience=2)], **steps_args())
    output = trainer.train()
    assert output.global_step == 4, "best at step 2, then steps 3 and 4 without improvement"
    assert trainer.state.best_metric == 0.6


def test_load_best_model_at_end_restores_the_best_and_the_limit_keeps_best_and_latest(tiny_dir, tmp_path):
    from minitransfer.io.safetensors_io import load_safetensors

    trainer = tiny_trainer(tiny_dir, tmp_path, metrics=[0.5, 0.9, 0.6, 0.7], **steps_args(save_total_limit=1)
                           | {"max_steps": 4})
    trainer.train()
    assert trainer.state.best_model_checkpoint == str(tmp_path / "checkpoint-2")
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    best = load_safetensors(tmp_path / "checkpoint-2" / "model.safetensors")
    last = load_safetensors(tmp_path / "checkpoint-4" / "model.safetensors")
    state = trainer.model.state_dict()
    name = "classifier.weight"
    np.testing.assert_array_equal(state[name], best[name])
    assert not np.array_equal(best[name], last[name]), "the weights moved after the best step"


def test_save_total_limit_deletes_the_oldest_checkpoints(tiny_dir, tmp_path):
    trainer = tiny_trainer(tiny_dir, tmp_path, save_strategy="steps", save_steps=1, max_steps=5, save_total_limit=2)
    trainer.train()
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-5"]


def test_datasets_rows_evaluate_predict_and_log_history(tiny_dir, tmp_path):
    trainer = tiny_trainer(tiny_dir, tmp_path, num_train_epochs=1, eval_strategy="epoch", warmup_steps=0.5)
    output = trainer.train()
    assert output.global_step == 5 and output.metrics["train_loss"] == output.training_loss
    rates = [h["learning_rate"] for h in trainer.state.log_history if "learning_rate" in h]
    assert rates[0] == pytest.approx(1e-3 / 3) and rates[2] == pytest.approx(1e-3), "warmup_steps 0.5 = 3 of 5 steps"
    metrics = trainer.evaluate()
    assert set(metrics) == {"eval_loss", "eval_accuracy", "eval_runtime", "eval_samples_per_second", "epoch"}
    prediction = trainer.predict(trainer.eval_dataset)
    assert prediction.predictions.shape == (16, 2) and prediction.label_ids.shape == (16,)
    assert set(prediction.metrics) == {"test_loss", "test_accuracy"}
    assert any("eval_accuracy" in h for h in trainer.state.log_history)
    assert sum("loss" in h for h in trainer.state.log_history) == 5


def test_eval_prediction_unpacks_like_transformers():
    logits, labels = EvalPrediction(np.zeros((3, 2)), np.arange(3))
    assert logits.shape == (3, 2) and labels.tolist() == [0, 1, 2]


class Recorder(TrainerCallback):
    def __init__(self, stop_at=None):
        self.events, self.stop_at = [], stop_at

    def __getattribute__(self, name):
        if name.startswith("on_"):
            def record(args, state, control, **kwargs):
                self.events.append(name)
                if name == "on_step_end" and state.global_step == self.stop_at:
                    control.should_training_stop = True
            return record
        return super().__getattribute__(name)


def test_callbacks_see_every_event_and_can_stop_the_run(tiny_dir, tmp_path):
    recorder = Recorder(stop_at=3)
    trainer = tiny_trainer(tiny_dir, tmp_path, callbacks=[recorder], eval_strategy="steps", eval_steps=2,
                           save_strategy="steps", save_steps=2, max_steps=10)
    assert trainer.train().global_step == 3
    for event in ("on_init_end", "on_train_begin", "on_step_begin", "on_step_end", "on_log", "on_evaluate",
                  "on_save", "on_epoch_begin", "on_epoch_end", "on_train_end"):
        assert event in recorder.events, event
    assert recorder.events.count("on_step_end") == 3 and recorder.events[-1] == "on_train_end"


def test_a_datasets_dataset_trains_where_the_library_is_installed(tiny_dir, tmp_path):
    datasets = pytest.importorskip("datasets")
    trainer = tiny_trainer(tiny_dir, tmp_path, max_steps=2)
    trainer.train_dataset = datasets.Dataset.from_list(trainer.train_dataset)
    assert trainer.train().global_step == 2


def test_report_to_csv_writes_every_log_entry(tiny_dir, tmp_path):
    import csv

    trainer = tiny_trainer(tiny_dir, tmp_path, max_steps=3, eval_strategy="steps", eval_steps=2, report_to="csv")
    trainer.train()
    rows = list(csv.DictReader(open(tmp_path / "log_history.csv", encoding="utf-8")))
    assert len(rows) == len(trainer.state.log_history)
    assert [r["step"] for r in rows if r["loss"]] == ["1", "2", "3"] and any(r["eval_accuracy"] for r in rows)


def test_report_to_tensorboard_writes_event_files(tiny_dir, tmp_path):
    pytest.importorskip("tensorboardX")
    tiny_trainer(tiny_dir, tmp_path, max_steps=2, report_to="tensorboard").train()
    assert list((tmp_path / "runs").glob("events.out.tfevents.*"))


def test_report_to_unknown_is_an_error(tmp_path):
    from minitransfer.errors import ConfigError

    with pytest.raises(ConfigError, match="report_to"):
        TrainingArguments(str(tmp_path), report_to="wandb")
