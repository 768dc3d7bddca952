"""Sentence and sentence-pair classification (SST-2, MRPC, SMS Spam, any CSV / JSONL).

    train = read_classification_file("sst2/train.tsv")        # data.py: format sniffed, label ids fixed
    encode_classification(train, tokenizer, max_length=128)    # features.py: an ArrayDataset for the Trainer
    make_compute_metrics(train.label_names)                    # metrics.py: accuracy, macro-F1, F1
    train_classification(model, "train.tsv", "dev.tsv", args)  # recipe.py: fine-tune, keep the best model
"""
