"""Batching under the Trainer (data/batching.py): dynamic padding, length-grouped orders, token budgets."""
import numpy as np
import pytest

from minitransfer.data.batching import epoch_order, length_grouped_order, pad_collate, token_budget_batches
from minitransfer.errors import InputError


def test_pad_collate_pads_dynamically():
    batch = pad_collate([{"input_ids": [1, 2, 3], "attention_mask": [1, 1, 1], "labels": 1},
                         {"input_ids": [4], "attention_mask": [1], "labels": 0}], pad_token_id=0)
    np.testing.assert_array_equal(batch["input_ids"], [[1, 2, 3], [4, 0, 0]])
    np.testing.assert_array_equal(batch["attention_mask"], [[1, 1, 1], [1, 0, 0]])
    np.testing.assert_array_equal(batch["labels"], [1, 0])


def test_group_by_length_is_a_shuffled_permutation_with_less_padding():
    lengths = np.random.default_rng(0).integers(3, 60, 1000)
    order = length_grouped_order(lengths, batch_size=8, seed=1, epoch=0, megabatch_batches=10)
    assert sorted(order) == list(range(1000))  # every example once
    assert lengths[order[0]] == lengths.max()  # the longest batch comes first: a batch too big fails at once
    padded = lambda o: sum(lengths[o[i:i + 8]].max() * len(o[i:i + 8]) for i in range(0, len(o), 8))  # noqa: E731
    assert padded(order) < 0.75 * padded(epoch_order(1000, 1, 0))
    np.testing.assert_array_equal(order, length_grouped_order(lengths, 8, 1, 0, 10))  # replayable on resume
    assert not np.array_equal(order, length_grouped_order(lengths, 8, 1, 1, 10))  # a new order each epoch


def test_token_budget_batches_hold_at_most_the_budget_and_cover_the_epoch():
    lengths = np.array([5, 9, 3, 12, 7, 7, 1, 20])
    order = np.array([3, 0, 7, 6, 1, 2, 5, 4])
    batches = token_budget_batches(order, lengths, 14)
    np.testing.assert_array_equal(np.concatenate(batches), order)
    assert [lengths[b].sum() for b in batches] == [12, 5, 20, 13, 14]  # 20 alone: longer than the budget
    with pytest.raises(InputError, match="max_tokens_per_batch"):
        token_budget_batches(order, lengths, 0)
