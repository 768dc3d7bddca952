"""Module and Parameter: the containers models are built from.

A Module finds its parameters and children by attribute, so names come out exactly as the attribute
paths (`encoder.layer.0.attention.self.query.weight`), which is how Hugging Face names checkpoints.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

import numpy as np

from minitransfer import autograd, backend
from minitransfer.autograd import Tensor
from minitransfer.errors import CheckpointError


class Parameter(Tensor):
    """A trainable Tensor (requires_grad=True unless frozen)."""

    def __init__(self, data, requires_grad: bool = True):
        super().__init__(data, requires_grad=requires_grad)


class Module:
    """Base class: holds Parameters and child Modules as attributes; `forward` does the work."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        for store in ("_parameters", "_modules"):
            self.__dict__[store].pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def __getattr__(self, name):
        for store in ("_parameters", "_modules"):
            d = self.__dict__.get(store)
            if d is not None and name in d:
                return d[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __delattr__(self, name):
        for store in ("_parameters", "_modules"):
            if name in self.__dict__[store]:
                del self.__dict__[store][name]
                return
        object.__delattr__(self, name)

    def __call__(self, *args, **kwargs):
        if autograd.observer is None:
            return self.forward(*args, **kwargs)
        return autograd.observer.module_call(self, args, kwargs)  # the profiler: which module each op runs in

    def forward(self, *args, **kwargs):
        raise NotImplementedError

    # ---- traversal ----
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def get_submodule(self, path: str) -> Module:
        """The module at a dotted attribute path ("cls.predictions"); "" is this module."""
        module = self
        for part in path.split(".") if path else []:
            module = getattr(module, part)
        return module

    def children(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = "", remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(name, parameter) pairs in definition order; a parameter shared by two modules (tied weights) appears
        once, unless remove_duplicate=False."""
        seen: set[int] = set()
        for mod_name, module in self.named_modules(prefix):
            for name, p in module._parameters.items():
                if id(p) not in seen or not remove_duplicate:
                    seen.add(id(p))
                    yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    # ---- modes ----
    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Freeze (False) or unfreeze (True) every parameter of this module."""
        for p in self.parameters():
            p.requires_grad = requires_grad
            if not requires_grad:
                p.grad = None
        return self

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.size for p in self.parameters() if p.requires_grad or not trainable_only)

    # ---- devices ----
    def to(self, device: str) -> Module:
        """Move every parameter to 'cpu' or 'cuda', in place (shared parameters stay shared)."""
        for p in self.parameters():
            p.data = backend.to_device(p.data, device)
            if p.grad is not None:
                p.grad.data = backend.to_device(p.grad.data, device)
        return self

    @property
    def device(self) -> str:
        for p in self.parameters():
            return p.device
        return "cpu"

    # ---- state ----
    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """name -> array for every parameter (shared ones under each name that uses them)."""
        return OrderedDict((name, p.data) for name, p in self.named_parameters(remove_duplicate=False))

    def load_state_dict(self, state: dict, strict: bool = True) -> tuple[list[str], list[str]]:
        """Copy arrays into parameters by name; returns (missing_keys, unexpected_keys).

        strict=True raises CheckpointError naming every missing and unexpected key. A shape mismatch
        always raises, naming the tensor and both shapes.
        """
        slots = dict(self.named_parameters(remove_duplicate=False))
        missing = [k for k in slots if k not in state]
        unexpected = [k for k in state if k not in slots]
        if strict and (missing or unexpected):
            raise CheckpointError(
                "state dict does not match the model:"
                + (f"\n  missing keys: {', '.join(missing)}" if missing else "")
                + (f"\n  unexpected keys: {', '.join(unexpected)}" if unexpected else "")
            )
        for name, array in state.items():
            if name not in slots:
                continue
            param = slots[name]
            if tuple(array.shape) != tuple(param.shape):
                raise CheckpointError(
                    f"tensor {name!r} has shape {tuple(array.shape)} in the checkpoint but the model expects "
                    f"{tuple(param.shape)}: the checkpoint was made for a different config"
                )
            value = backend.get_array_module(param.data).asarray(array, dtype=param.dtype)
            param.data = value.copy() if value is array else value
        return missing, unexpected

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._modules.items():
            lines.append("  (" + name + "): " + repr(child).replace("\n", "\n  "))
        return "\n".join(lines) + ")" if len(lines) > 1 else lines[0] + ")"

    def extra_repr(self) -> str:
        return ""


class ModuleList(Module):
    """A list of Modules named '0', '1', ... (as torch.nn.ModuleList), so names read `layer.3.…`."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> None:
        self._modules[str(len(self._modules))] = module

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())
