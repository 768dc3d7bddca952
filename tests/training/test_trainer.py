"""The Trainer on a tiny random BERT: learning happens, resume continues the same curve, outputs are complete."""
import json

import numpy as np
import pytest

from minitransfer.data.batching import ArrayDataset, example_lengths
from minitransfer.errors import InputError
from minitransfer.models import AutoModelForSequenceClassification, BertForSequenceClassification, ModelConfig
from minitransfer.seeding import manual_seed
from minitransfer.training import PrinterCallback, Trainer, TrainingArguments

TINY = dict(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
            max_position_embeddings=32)


def toy_dataset(n=192, seed=0):
    """Label 1 iff the first token is 7."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(10, 50, (n, 12))
    lengths = rng.integers(4, 12, n)
    labels = rng.integers(0, 2, n)
    ids[labels == 1, 0] = 7  # at the pooled position: learnable by a tiny model in a few dozen steps
    mask = (np.arange(12)[None] < lengths[:, None]).astype(np.int64)
    ids = ids * mask
    return ArrayDataset({"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids),
                         "labels": labels})


def accuracy(eval_pred):
    logits, labels = eval_pred
    return {"accuracy": float((logits.argmax(-1) == labels).mean())}


def make_trainer(tmp_path, dropout=0.1, **overrides):
    manual_seed(0)
    model = BertForSequenceClassification(ModelConfig("bert", num_labels=2, hidden_dropout_prob=dropout,
                                                      attention_probs_dropout_prob=dropout, **TINY))
    overrides = {"num_train_epochs": 5, "eval_strategy": "epoch", "save_strategy": "epoch",
                 "metric_for_best_model": "accuracy", "per_device_train_batch_size": 16, "learning_rate": 3e-3,
                 **overrides}
    args = TrainingArguments(str(tmp_path), weight_decay=0.01, logging_steps=1, disable_tqdm=True, seed=3,
                             **overrides)
    return Trainer(model, args, train_dataset=toy_dataset(), eval_dataset=toy_dataset(64, seed=1),
                   compute_metrics=accuracy)


def losses(path):
    return [r["loss"] for r in map(json.loads, (path / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


def test_training_learns_and_writes_the_hugging_face_layout(tmp_path):
    trainer = make_trainer(tmp_path)
    result = trainer.train()
    curve = losses(tmp_path)
    assert result.global_step == 60 and len(curve) == 60 and np.mean(curve[-4:]) < np.mean(curve[:4])
    assert trainer.state.best_metric > 0.8 and result.training_loss == pytest.approx(np.mean(curve))
    trainer.save_model(tmp_path / "final")
    for name in ("final/config.json", "final/model.safetensors", "final/training_args.json", "metrics.jsonl",
                 "checkpoint-60/optimizer.npz", "checkpoint-60/trainer_state.json", "checkpoint-12/model.safetensors"):
        assert (tmp_path / name).exists(), name
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "final")
    assert reloaded.loading_info["missing_keys"] == []


class InterruptedTrainer(Trainer):
    """Stops with Ctrl-C after step 17 (mid-epoch: 12 steps per epoch), as a user would."""

    def log(self, logs):
        super().log(logs)
        if self.state.global_step == 17 and "loss" in logs:
            raise KeyboardInterrupt


def test_interrupted_run_resumes_on_the_same_loss_curve(tmp_path):
    straight = make_trainer(tmp_path / "a", max_steps=30)
    straight.train()
    first = make_trainer(tmp_path / "b", max_steps=30)
    first.__class__ = InterruptedTrainer
    with pytest.raises(KeyboardInterrupt, match=r"interrupted at step 17: state saved to .*checkpoint-17"):
        first.train()
    assert len(losses(tmp_path / "b")) == 17
    resumed = make_trainer(tmp_path / "b", max_steps=30)
    resumed.train(resume_from_checkpoint=True)
    np.testing.assert_allclose(losses(tmp_path / "b"), losses(tmp_path / "a"), rtol=1e-5)


def test_group_by_length_trains_and_resumes_on_the_same_curve(tmp_path):
    assert example_lengths(toy_dataset()).tolist() == toy_dataset().arrays["attention_mask"].sum(1).tolist()
    straight = make_trainer(tmp_path / "a", max_steps=30, group_by_length=True)
    straight.train()
    first = make_trainer(tmp_path / "b", max_steps=30, group_by_length=True)
    first.__class__ = InterruptedTrainer
    with pytest.raises(KeyboardInterrupt):
        first.train()
    make_trainer(tmp_path / "b", max_steps=30, group_by_length=True).train(resume_from_checkpoint=True)
    np.testing.assert_allclose(losses(tmp_path / "b"), losses(tmp_path / "a"), rtol=1e-5)
    assert not np.allclose(losses(tmp_path / "a"), losses_of_plain_run(tmp_path / "c"))  # the order did change


def losses_of_plain_run(path):
    make_trainer(path, max_steps=30).train()
    return losses(path)


def test_gradient_accumulation_matches_a_bigger_batch(tmp_path):
    big = make_trainer(tmp_path / "big", dropout=0.0, max_steps=3, eval_strategy="no")
    big.train()
    small = make_trainer(tmp_path / "small", dropout=0.0, max_steps=3, eval_strategy="no",
                         gradient_accumulation_steps=2)
    small.args.per_device_train_batch_size = 8  # 2 x 8 = the same 16 examples per step, in the same order
    small.train()
    a, b = big.model.state_dict(), small.model.state_dict()
    assert max(np.abs(a[k] - b[k]).max() for k in a) < 1e-5


def test_frozen_parameters_stay_fixed_and_get_no_gradient(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=3)
    trainer.model.bert.embeddings.requires_grad_(False)
    before = trainer.model.bert.embeddings.word_embeddings.weight.numpy().copy()
    trainer.train()
    np.testing.assert_array_equal(trainer.model.bert.embeddings.word_embeddings.weight.numpy(), before)
    assert trainer.model.bert.embeddings.word_embeddings.weight.grad is None


def test_empty_training_set_is_a_clear_error(tmp_path):
    trainer = make_trainer(tmp_path)
    trainer.train_dataset = ArrayDataset({"input_ids": np.zeros((0, 4), np.int64)})
    with pytest.raises(InputError, match="training set is empty"):
        trainer.train()


def test_plot_writes_a_png_of_the_curves(tmp_path):
    pytest.importorskip("matplotlib")
    trainer = make_trainer(tmp_path, max_steps=4, plot=True)
    trainer.train()
    png = (tmp_path / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_trainer_with_a_token_budget_runs_exactly_its_epochs(tmp_path):
    trainer = make_trainer(tmp_path, max_tokens_per_batch=100, num_train_epochs=2)
    lengths = example_lengths(trainer.train_dataset)
    per_epoch = [len(trainer._epoch_steps(e)) for e in range(2)]
    assert trainer.total_steps() == sum(per_epoch)
    for e in range(2):
        sizes = [lengths[b[0]].sum() for b in trainer._epoch_steps(e)]
        assert max(sizes) <= 100 and min(sizes[:-1]) > 100 - lengths.max(), "full batches, within the budget"
    result = trainer.train()
    assert result.global_step == sum(per_epoch)
    epochs = [r["epoch"] for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines())
              if "eval_accuracy" in r]
    assert epochs == [1.0, 2.0]


def test_padding_free_off_trains_on_the_padded_path_and_is_recorded(tmp_path):
    trainer = make_trainer(tmp_path, padding_free=False, num_train_epochs=1)
    trainer.train()
    assert trainer.model.config.padding_free is False and trainer.model.bert.config.padding_free is False
    assert json.loads((tmp_path / "training_args.json").read_text())["padding_free"] is False


def test_the_trainer_prints_nothing_and_a_printer_callback_prints_each_evaluation(tmp_path, capsys):
    make_trainer(tmp_path / "quiet", max_steps=4, eval_strategy="steps", eval_steps=2).train()
    assert capsys.readouterr().out == ""
    loud = make_trainer(tmp_path / "loud", max_steps=4, eval_strategy="steps", eval_steps=2)
    loud.add_callback(PrinterCallback())
    loud.train()
    loud.evaluate()  # outside train(): not printed
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["eval", "eval", "done"]
    assert json.loads(lines[0][len("eval "):])["step"] == 2 and "train_runtime" in json.loads(lines[2][len("done "):])
