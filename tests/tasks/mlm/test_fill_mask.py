"""fill-mask gives transformers' pipeline's top-5 on the same checkpoint."""
import shutil

import numpy as np
import pytest

from minitransfer import AutoModelForMaskedLM, AutoTokenizer
from minitransfer.errors import InputError
from minitransfer.tasks.mlm.fill_mask import fill_mask

transformers = pytest.importorskip("transformers")
pytest.importorskip("torch")


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory, minilm_path):
    from tests.models.conftest import make_checkpoint

    path = tmp_path_factory.mktemp("mlm")
    make_checkpoint(path, "bert-mlm", "safetensors")
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(minilm_path / name, path / name)
    return path


@pytest.mark.parametrize("text", ["The movie was [MASK].", "[MASK] is the capital of [MASK] ."])
def test_fill_mask_matches_the_transformers_pipeline(mlm_dir, text):
    ours = fill_mask(AutoModelForMaskedLM.from_pretrained(mlm_dir), AutoTokenizer.from_pretrained(mlm_dir), text)
    pipe = transformers.pipeline("fill-mask", model=str(mlm_dir), tokenizer=str(mlm_dir), top_k=5)
    theirs = pipe(text)
    theirs = theirs if isinstance(theirs[0], list) else [theirs]
    assert len(ours) == len(theirs)
    for mine, ref in zip(ours, theirs):
        assert [p["token"] for p in mine] == [p["token"] for p in ref]
        assert [p["token_str"] for p in mine] == [p["token_str"] for p in ref]
        np.testing.assert_allclose([p["score"] for p in mine], [p["score"] for p in ref], rtol=1e-4)


def test_text_without_mask_is_a_clear_error(mlm_dir):
    with pytest.raises(InputError, match=r"no \[MASK\] token"):
        fill_mask(AutoModelForMaskedLM.from_pretrained(mlm_dir), AutoTokenizer.from_pretrained(mlm_dir), "no mask")
