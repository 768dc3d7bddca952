"""Classification by prompt (PET): a masked-LM model, a pattern around a [MASK] and one label word per label.

    PromptClassifier(mlm, verbalizer_token_ids(tok, ["terrible", "great"]))   # prompts.py: logits (batch, labels)
    zero_shot(model, "dev.tsv"); few_shot_sweep(model, "train.tsv", "dev.tsv", [16], [0], args)   # recipe.py
"""
from minitransfer.tasks.prompting.prompts import (
    DEFAULT_PATTERN,
    DEFAULT_VERBALIZER,
    PromptClassifier,
    encode_prompt_dataset,
    encode_prompts,
    verbalizer_logits,
    verbalizer_token_ids,
)
from minitransfer.tasks.prompting.recipe import few_shot_sweep, sample_few_shot, zero_shot

__all__ = [
    "DEFAULT_PATTERN", "DEFAULT_VERBALIZER", "PromptClassifier", "encode_prompt_dataset", "encode_prompts",
    "few_shot_sweep", "sample_few_shot", "verbalizer_logits", "verbalizer_token_ids", "zero_shot",
]
