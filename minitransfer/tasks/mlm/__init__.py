"""Masked language modelling: domain adaptation by continued MLM training, scored by pseudo-perplexity; fill-mask
and a gender-bias probe over the MLM head.

    train, held = held_out_lines("reviews.txt", None, holdout=0.1)   # recipe.py (data.py reads and windows)
    train_mlm(model, "reviews.txt", args)                             # recipe.py: the model's own MLM loss
    masked_lm_perplexity(mlm, heldout_dataset(tok, held))             # perplexity.py
    fill_mask(mlm, tok, "The movie was [MASK].")                      # fill_mask.py
    probe_bias(mlm, tok)                                              # bias_probe.py, over the model's logits_at
"""
