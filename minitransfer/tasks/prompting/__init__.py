"""Classification by prompt (PET): a masked-LM model, a pattern around a [MASK] and one label word per label.

    PromptClassifier(mlm, verbalizer_token_ids(tok, ["terrible", "great"]))   # prompts.py: logits (batch, labels)
    zero_shot(model, "dev.tsv"); few_shot_sweep(model, "train.tsv", "dev.tsv", [16], [0], args)   # recipe.py
"""
