"""Fixtures for the SQuAD tests: the shipped 204-question slice and the real MiniLM tokenizer."""
import pytest

from minitransfer.tasks.squad import read_squad, sample_path


@pytest.fixture(scope="session")
def sample_examples():
    return read_squad(sample_path())


@pytest.fixture(scope="session")
def tokenizer(minilm_path):
    from minitransfer.tokenization import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path)
