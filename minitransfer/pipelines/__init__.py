"""Pipelines: a model and its tokenizer behind one call per task, with transformers' task names, inputs and outputs.

    from minitransfer import pipeline
    classify = pipeline("sentiment-analysis", model="runs/sst2")
    classify(["a charming journey", "bleak"], batch_size=4)      # [{"label": ..., "score": ...}, ...]
    pipeline("feature-extraction", model="minilm")("a charming journey")   # [1, seq, 384] nested lists

| task | pipeline | model |
| --- | --- | --- |
| text-classification (sentiment-analysis) | TextClassificationPipeline | a fine-tuned sequence classifier |
| fill-mask | FillMaskPipeline | a masked-LM head |
| question-answering | QuestionAnsweringPipeline | a fine-tuned span-QA model |
| feature-extraction | FeatureExtractionPipeline | any BERT or DistilBERT model |
"""
from __future__ import annotations

import os
from typing import Any

from minitransfer.errors import CheckpointError, InputError
from minitransfer.pipelines.base import Pipeline
from minitransfer.pipelines.feature_extraction import FeatureExtractionPipeline
from minitransfer.pipelines.fill_mask import FillMaskPipeline
from minitransfer.pipelines.question_answering import QuestionAnsweringPipeline
from minitransfer.pipelines.text_classification import TextClassificationPipeline
from minitransfer.tokenization import AutoTokenizer

SUPPORTED_TASKS: dict[str, type[Pipeline]] = {
    cls.task: cls for cls in (TextClassificationPipeline, FillMaskPipeline, QuestionAnsweringPipeline,
                              FeatureExtractionPipeline)
}
TASK_ALIASES = {"sentiment-analysis": "text-classification"}


def pipeline(task: str, model: Any = None, tokenizer: Any = None, device: int | str | None = None,
             **kwargs: Any) -> Pipeline:
    """The pipeline of `task`, ready to call, as transformers.pipeline(task, model=..., tokenizer=...).

    model: a model directory, a cached alias such as "minilm", or a loaded minitransfer model of the task's kind.
    tokenizer: a directory or a tokenizer; by default the model directory's own (required with a loaded model).
    device: None, -1 or "cpu"; a GPU ("cuda", "cuda:N", or N >= 0) needs CuPy.
    kwargs: batch_size (1; rows per model call, each input's rows padded to the batch's longest) and the task's
        options (top_k, targets, doc_stride, ...), which become the defaults of every call.
    """
    if not isinstance(task, str) or TASK_ALIASES.get(task, task) not in SUPPORTED_TASKS:
        names = ", ".join([*SUPPORTED_TASKS, *(f"{a} (= {t})" for a, t in TASK_ALIASES.items())])
        raise InputError(f"unknown task {task!r}; minitransfer's pipelines: {names}")
    cls = SUPPORTED_TASKS[TASK_ALIASES.get(task, task)]
    if model is None:
        raise InputError(f"pass model=: a model directory, a cached alias such as 'minilm', or a loaded model "
                         f"(minitransfer never downloads a default model); {cls.task} needs {cls.needs}")
    if isinstance(model, (str, os.PathLike)):
        if tokenizer is None:
            tokenizer = model
        model = _load(cls, model)
    elif not isinstance(model, cls.model_kind):
        raise InputError(f"the {cls.task} pipeline needs {cls.needs}, got a {type(model).__name__}")
    elif tokenizer is None:
        raise InputError("model= is a loaded model: pass tokenizer= too (its directory or a loaded tokenizer)")
    if isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = AutoTokenizer.from_pretrained(tokenizer)
    return cls(model, tokenizer, device=device, **kwargs)


def _load(cls: type[Pipeline], name_or_path: str | os.PathLike):
    overrides = {} if cls.new_head_allowed is None else {"allow_new_head": cls.new_head_allowed}
    try:
        return cls.auto_class.from_pretrained(name_or_path, **overrides)
    except CheckpointError as e:
        raise CheckpointError(f"the {cls.task} pipeline needs {cls.needs}: {e}") from e


__all__ = [
    "pipeline", "Pipeline", "SUPPORTED_TASKS", "TASK_ALIASES", "TextClassificationPipeline", "FillMaskPipeline",
    "QuestionAnsweringPipeline", "FeatureExtractionPipeline",
]
