"""Masked language modelling: domain adaptation by continued MLM training, scored by pseudo-perplexity; fill-mask
and a gender-bias probe over the MLM head.

    train, held = held_out_lines("reviews.txt", None, holdout=0.1)   # recipe.py (data.py reads and windows)
    train_mlm(model, "reviews.txt", args)                             # recipe.py: the model's own MLM loss
    masked_lm_perplexity(mlm, heldout_dataset(tok, held))             # perplexity.py
    fill_mask(mlm, tok, "The movie was [MASK].")                      # fill_mask.py
    probe_bias(mlm, tok)                                              # bias_probe.py, over token_logits.py
"""
from minitransfer.tasks.mlm.bias_probe import BUILTIN_TEMPLATES, compare_pair, probe_bias, read_template_pairs
from minitransfer.tasks.mlm.data import TextDataset, encode_texts, fixed_masking, read_text_lines, split_holdout
from minitransfer.tasks.mlm.fill_mask import fill_mask
from minitransfer.tasks.mlm.perplexity import masked_lm_perplexity
from minitransfer.tasks.mlm.recipe import evaluate_perplexity, held_out_lines, heldout_dataset, train_mlm
from minitransfer.tasks.mlm.token_logits import token_logits_at

__all__ = [
    "BUILTIN_TEMPLATES", "TextDataset", "compare_pair", "encode_texts", "evaluate_perplexity", "fill_mask",
    "fixed_masking", "held_out_lines", "heldout_dataset", "masked_lm_perplexity", "probe_bias", "read_template_pairs",
    "read_text_lines", "split_holdout", "token_logits_at", "train_mlm",
]
