"""Span question answering on SQuAD v1.1: read and split the JSON, make model windows, turn logits into
answers, score them with the official EM/F1.

    examples = read_squad(path)                                    # data.py
    features = prepare_eval_features(examples, tok)                # features.py (cache_dir=: data/npz_cache.py)
    start, end = run_model(model, features)                        # inference.py
    predictions = postprocess_predictions(examples, features, start, end)    # postprocess.py
    evaluate(examples, predictions)                                # metrics.py: {"exact_match", "f1"} in %
    train_qa(model, "train.json", None, args)                      # recipe.py: fine-tune, EM/F1 per evaluation
"""
from minitransfer.tasks.squad.baseline import overlap_sentence_baseline
from minitransfer.tasks.squad.data import (
    SquadExample,
    article_split,
    read_squad,
    sample_path,
    to_squad_json,
    write_squad,
)
from minitransfer.tasks.squad.features import (
    SquadFeatures,
    prepare_eval_features,
    prepare_train_features,
)
from minitransfer.tasks.squad.inference import answer, run_model
from minitransfer.tasks.squad.metrics import (
    evaluate,
    exact_match_score,
    f1_score,
    normalize_answer,
)
from minitransfer.tasks.squad.postprocess import postprocess_predictions

__all__ = [
    "SquadExample",
    "SquadFeatures",
    "answer",
    "article_split",
    "evaluate",
    "exact_match_score",
    "f1_score",
    "normalize_answer",
    "overlap_sentence_baseline",
    "postprocess_predictions",
    "prepare_eval_features",
    "prepare_train_features",
    "read_squad",
    "run_model",
    "sample_path",
    "to_squad_json",
    "write_squad",
]
