"""What every pipeline shares: options, the device, batches of rows padded to their longest, no_grad.

A pipeline turns each input into one or more model rows (question answering: one per window of a long context),
runs all the rows through the model `batch_size` rows at a time, and turns each input's outputs into
transformers' result format:

    rows, state = pipe.preprocess(item, options)     # rows: [{"input_ids": (seq,), ...}]; state: for postprocess
    outputs = pipe.forward(batch, lengths)            # one output per row of a padded (batch, longest) batch
    result = pipe.postprocess(state, outputs, options)

Padding costs nothing: the models compute real tokens only (README, "Padding-free by default"), and each row's
outputs are cut back to its own length before postprocessing.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from minitransfer.autograd import no_grad
from minitransfer.backend import cupy_module, normalize_device
from minitransfer.data.batching import SEQUENCE_KEYS, pad_collate
from minitransfer.errors import InputError


def resolve_device(device: int | str | None) -> str:
    """'cpu' for None, -1 or 'cpu'; 'cuda:N' for a GPU index N >= 0 or 'cuda' / 'cuda:N', which need CuPy."""
    if device is None or (type(device) is int and device == -1):
        return "cpu"
    if type(device) is int and device >= 0:
        name = f"cuda:{device}"
    elif isinstance(device, str):
        try:
            name = normalize_device(device)
        except ValueError as e:
            raise InputError(f"{e}; pipelines also take None or -1 (cpu) and a GPU index N >= 0") from e
    else:
        raise InputError(f"device must be None, -1, 'cpu', 'cuda', 'cuda:N' or a GPU index N >= 0, got {device!r}")
    if name == "cpu":
        return name
    try:
        cupy_module()
    except RuntimeError as e:
        raise InputError(f"device={device!r} runs the model on a GPU through CuPy, which is missing here: {e}") from e
    return name


def check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def encoding_rows(encoding) -> list[dict[str, np.ndarray]]:
    """The rows of a tokenizer output (return_tensors="np"), each cut to its real tokens: {name: (seq,)}."""
    lengths = encoding["attention_mask"].sum(axis=1)
    return [{name: encoding[name][i, :n] for name in SEQUENCE_KEYS if name in encoding}
            for i, n in enumerate(lengths)]


class Pipeline:
    """A model and its tokenizer, ready for one task: `pipe(inputs, **options)`, as in transformers.

    Options given to the constructor are the defaults of every call; options given to a call override them.
    The model is put in eval mode (dropout off) and runs without building a graph.
    Subclasses set `task` and `option_names` and implement `sanitize`, `preprocess`, `forward` and `postprocess`.
    """

    task = ""
    option_names: tuple[str, ...] = ()
    auto_class: Any = None  # what loads a model directory for this task (an Auto class)
    model_kind: type = object  # what a loaded model must be
    new_head_allowed: bool | None = None  # False: a checkpoint without the task's head is an error
    needs = ""  # the model this task needs, for error messages

    def __init__(self, model, tokenizer, device: int | str | None = None, batch_size: int = 1, **options):
        self.device = resolve_device(device)
        self.model = model.eval()
        if self.model.device != self.device:
            self.model.to(self.device)
        self.tokenizer = tokenizer
        self.batch_size = check_positive_int("batch_size", batch_size)
        self._defaults = self._options(options)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task={self.task!r}, model={type(self.model).__name__}, device={self.device!r})"

    def _options(self, options: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(options) - set(self.option_names))
        if unknown:
            raise InputError(f"the {self.task} pipeline has no option {', '.join(map(repr, unknown))}; "
                             f"its options: batch_size, {', '.join(self.option_names)}")
        return self.sanitize(**options)

    def sanitize(self, **options) -> dict[str, Any]:
        """Check the options given (only those) and put them in the form preprocess/postprocess read."""
        return options

    def run(self, items: list, options: dict[str, Any], batch_size: int | None = None) -> list:
        """The result of each item, in order, with `options` over the pipeline's defaults."""
        options = {**self._defaults, **self._options(options)}
        batch_size = self.batch_size if batch_size is None else check_positive_int("batch_size", batch_size)
        prepared = [self.preprocess(item, options) for item in items]
        rows = [row for item_rows, _ in prepared for row in item_rows]
        outputs = []
        with no_grad():
            for begin in range(0, len(rows), batch_size):
                chunk = rows[begin:begin + batch_size]
                batch = pad_collate(chunk, self.tokenizer.pad_token_id)  # (batch, longest)
                outputs.extend(self.forward(batch, [len(row["input_ids"]) for row in chunk]))
        results, at = [], 0
        for item_rows, state in prepared:
            results.append(self.postprocess(state, outputs[at:at + len(item_rows)], options))
            at += len(item_rows)
        return results

    def preprocess(self, item, options: dict[str, Any]) -> tuple[list[dict[str, np.ndarray]], Any]:
        raise NotImplementedError

    def forward(self, batch: dict[str, np.ndarray], lengths: list[int]) -> list:
        raise NotImplementedError

    def postprocess(self, state, outputs: list, options: dict[str, Any]):
        raise NotImplementedError

    def tokenize(self, text: str, text_pair: str | None = None, **kwargs) -> list[dict[str, np.ndarray]]:
        """Model rows of one text (or pair): what most preprocess steps need."""
        return encoding_rows(self.tokenizer(text, text_pair, return_tensors="np", **kwargs))
