"""Freeze and unfreeze parameters by module or name prefix.

A frozen parameter has requires_grad=False: it gets no gradient buffer, the ops above it do no gradient
work for it, and the graph does not extend below the lowest trainable layer.
"""
from __future__ import annotations

from minitransfer.nn.module import Module


def freeze(module: Module, prefixes: tuple[str, ...] | None = None) -> list[str]:
    """Freeze every parameter of `module` (or only those whose names start with one of `prefixes`).

    Returns the names frozen.
    """
    return _set(module, prefixes, False)


def unfreeze(module: Module, prefixes: tuple[str, ...] | None = None) -> list[str]:
    """Unfreeze every parameter (or those under `prefixes`); returns the names unfrozen."""
    return _set(module, prefixes, True)


def _set(module: Module, prefixes, requires_grad: bool) -> list[str]:
    names = []
    for name, p in module.named_parameters():
        if prefixes is None or any(name == pre or name.startswith(pre.rstrip(".") + ".") for pre in prefixes):
            p.requires_grad = requires_grad
            if not requires_grad:
                p.grad = None
            names.append(name)
    return names
