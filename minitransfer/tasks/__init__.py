"""Tasks, one package each: its data reading, features, metrics, model glue and training recipe (recipe.py).

    classification/   sentence (pair) classification: GLUE / MSR / SMS / CSV / JSONL readers, accuracy and F1
    squad/            span question answering: SQuAD JSON, windows over long contexts, answers, EM/F1
    mlm/              masked-LM domain adaptation and pseudo-perplexity; fill-mask; the gender-bias probe
    prompting/        classification by pattern and verbalizer (PET): zero-shot and few-shot
    distillation/     a fine-tuned classifier taught to a smaller student

A task builds on training/ (the Trainer) and data/ (batching, collators, masking); nothing below imports a task.
"""
