"""Reverse-mode automatic differentiation: Tensor, Function, backward(), no_grad().

Functions see raw arrays (NumPy or CuPy); a Tensor only keeps the bookkeeping (data, grad, the Function
that made it). The graph is built only while gradients are enabled and some input requires a gradient,
so under `no_grad()` or over frozen parameters no Function is kept and its saved arrays are freed at once.
Backward walks Functions from the newest generation to the oldest and frees each one's saved arrays as
it leaves it (unless `retain_graph=True`); only leaf tensors keep a `.grad`. A leaf can ask to be told when its
gradient is final within a backward pass (`register_grad_ready_hook`), which is what lets data parallelism start
averaging the last layers' gradients while backward is still computing the first layers'.
"""
from __future__ import annotations

import contextlib
import heapq
import weakref
from collections.abc import Callable, Iterator

import numpy as np

from minitransfer import backend

_grad_enabled = True
# Leaves that have a grad-ready hook: while it is empty, backward does no extra work for hooks.
_hooked_leaves: weakref.WeakSet = weakref.WeakSet()
# None, or what minitransfer.profiler installs to see every Function's forward and backward run (off: one check).
observer = None


def is_grad_enabled() -> bool:
    return _grad_enabled


@contextlib.contextmanager
def set_grad_enabled(enabled: bool) -> Iterator[None]:
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, bool(enabled)
    try:
        yield
    finally:
        _grad_enabled = previous


def no_grad():
    """Context manager: no graph is recorded inside it (inference, evaluation, optimizer updates)."""
    return set_grad_enabled(False)


def enable_grad():
    return set_grad_enabled(True)


class Tensor:
    """An array with an optional gradient and a link to the Function that produced it.

    `data` is a NumPy or CuPy array; `grad` is a Tensor (leaf tensors only) or None. The operators (`a + b`,
    `a @ b`, `x.sum()`, `x.T`, ...) are installed by minitransfer.ops (ops/tensor_operators.py).
    """

    __array_priority__ = 1000  # numpy_array + tensor calls Tensor.__radd__, not numpy's loop
    _grad_ready_hooks: list | None = None  # set per instance by register_grad_ready_hook

    def __init__(self, data, requires_grad: bool = False, name: str | None = None):
        if isinstance(data, Tensor):
            data = data.data
        xp = backend.get_array_module(data)
        if not isinstance(data, xp.ndarray):
            data = np.asarray(data)
            if data.dtype == np.float64 and not isinstance(data, np.ndarray):  # pragma: no cover
                data = data.astype(np.float32)
        self.data = data
        self.grad: Tensor | None = None
        self.requires_grad = bool(requires_grad)
        self.creator: Function | None = None
        self.generation = 0
        self.name = name

    # ---- properties that mirror torch ----
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def device(self) -> str:
        return backend.device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        return self.creator is None

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({backend.to_numpy(self.data)!r}{grad})"

    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (copied from the GPU when needed)."""
        return backend.to_numpy(self.data)

    def item(self) -> float:
        return self.data.item()

    def to(self, device: str) -> Tensor:
        """A copy on `device` ('cpu' or 'cuda'); gradients do not flow through the copy."""
        return Tensor(backend.to_device(self.data, device), requires_grad=self.requires_grad)

    def detach(self) -> Tensor:
        return Tensor(self.data)

    def zero_grad(self) -> None:
        self.grad = None

    def register_grad_ready_hook(self, hook: Callable[[Tensor], None]) -> GradReadyHookHandle:
        """Call `hook(self)` during each backward pass as soon as this leaf's gradient is final there.

        Final means every path from the root to this leaf has been accumulated into `.grad` (a weight used
        twice, as a tied embedding, fires once, after its second contribution). A backward that does not reach
        the leaf fires nothing. Cost: while any leaf has a hook, each backward first walks the graph once more
        to count the paths to the hooked leaves. Returns a handle whose `remove()` drops the hook.
        """
        if not self.is_leaf:
            raise RuntimeError("grad-ready hooks are for leaf tensors (parameters): only leaves keep a .grad")
        if self._grad_ready_hooks is None:
            self._grad_ready_hooks = []
        self._grad_ready_hooks.append(hook)
        _hooked_leaves.add(self)
        return GradReadyHookHandle(self, hook)

    # ---- backward ----
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's `.grad`.

        grad: the upstream gradient, same shape as self (default 1 for a scalar).
        retain_graph: keep the saved arrays so backward can be called on this graph again.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad (was it made under no_grad()?)")
        xp = backend.get_array_module(self.data)
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward() needs a gradient for a non-scalar tensor of shape {self.shape}")
            grad = xp.ones_like(self.data)
        elif isinstance(grad, Tensor):
            grad = grad.data
        if self.creator is None:
            _accumulate_leaf(self, grad)
            _fire_grad_ready(self)
            return
        run_backward(self, grad, retain_graph)


class GradReadyHookHandle:
    """What `Tensor.register_grad_ready_hook` returns: `remove()` unregisters the hook."""

    def __init__(self, tensor: Tensor, hook: Callable[[Tensor], None]):
        self._tensor, self._hook = weakref.ref(tensor), hook

    def remove(self) -> None:
        tensor = self._tensor()
        hooks = tensor._grad_ready_hooks if tensor is not None else None
        if hooks and self._hook in hooks:
            hooks.remove(self._hook)
            if not hooks:
                tensor._grad_ready_hooks = None
                _hooked_leaves.discard(tensor)


def _fire_grad_ready(tensor: Tensor) -> None:
    for hook in tuple(tensor._grad_ready_hooks or ()):
        hook(tensor)


def as_tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


class Function:
    """One differentiable operation over raw arrays.

    Subclasses implement `forward(*arrays) -> array | tuple[array, ...]` and
    `backward(*output_grads) -> array | None | tuple[...]` (one gradient per input; None where the input
    needs none). `self.needs_input_grad[i]` tells backward which gradients are wanted, so work for frozen
    inputs is skipped. State saved in forward lives on `self` and is freed by `release()`.
    """

    inputs: tuple[Tensor, ...]
    needs_input_grad: tuple[bool, ...]

    def __call__(self, *inputs):
        tensors = tuple(as_tensor(x) for x in inputs)
        needs_grad = _grad_enabled and any(t.requires_grad for t in tensors)
        self.needs_input_grad = tuple(needs_grad and t.requires_grad for t in tensors)
        outputs = self.forward(*(t.data for t in tensors)) if observer is None else observer.forward(self, tensors)
        single = not isinstance(outputs, tuple)
        outputs = (outputs,) if single else outputs
        results = tuple(Tensor(y, requires_grad=needs_grad) for y in outputs)
        if needs_grad:
            self.inputs = tensors
            self.generation = max(t.generation for t in tensors)
            self.output_refs = tuple(weakref.ref(r) for r in results)
            self.output_meta = tuple((y.shape, y.dtype) for y in outputs)
            for r in results:
                r.creator = self
                r.generation = self.generation + 1
        return results[0] if single else results

    def forward(self, *arrays):
        raise NotImplementedError

    def backward(self, *grads):
        raise NotImplementedError

    def release(self) -> None:
        """Drop what forward saved and the links to the inputs, so memory is freed as backward walks."""
        self.__dict__.clear()
        self.released = True


def _accumulate_leaf(tensor: Tensor, grad, owned: bool = False) -> None:
    """Add grad to tensor.grad. owned: no one else holds `grad`, so the first gradient can be kept as is."""
    if grad.shape != tensor.shape:
        raise RuntimeError(f"gradient of shape {grad.shape} for a tensor of shape {tensor.shape}")
    if tensor.grad is None:
        # Else a copy: backward may hand the same array to several inputs, and optimizers edit grads in place.
        tensor.grad = Tensor(grad if owned else grad.copy())
    else:
        tensor.grad.data = tensor.grad.data + grad


def _fresh(grad, out_grads, in_grads) -> bool:
    """Whether a gradient that backward returned is a new array only this input gets: not a view, not one of
    the upstream gradients passed through (Add, a same-shape sum_to), not handed to two inputs. Copying every
    parameter's first gradient cost a pass over all weights per step (MiniLM: 91 MB)."""
    return (getattr(grad, "base", 0) is None and not any(grad is g for g in out_grads)
            and sum(grad is g for g in in_grads) == 1)


def _count_hooked_paths(root_fn: Function) -> dict[int, list]:
    """id(leaf) -> [leaf, number of (Function, input) edges that will bring it a gradient], for every hooked
    leaf below `root_fn`: the countdown after which its gradient is final. One walk over the graph."""
    pending: dict[int, list] = {}
    stack, seen = [root_fn], {id(root_fn)}
    while stack:
        fn = stack.pop()
        for x, needed in zip(getattr(fn, "inputs", ()), getattr(fn, "needs_input_grad", ())):
            if not needed:
                continue
            if x.creator is None:
                if x._grad_ready_hooks:
                    pending.setdefault(id(x), [x, 0])[1] += 1
            elif id(x.creator) not in seen:
                seen.add(id(x.creator))
                stack.append(x.creator)
    return pending


def run_backward(root: Tensor, grad, retain_graph: bool) -> None:
    """Propagate `grad` from `root` through the graph in reverse generation order."""
    # id(tensor) -> (tensor, gradient) for non-leaf tensors; the tensor is held so its id stays unique
    # until its creator has consumed the gradient.
    grads: dict[int, tuple[Tensor, object]] = {id(root): (root, grad)}
    heap: list[tuple[int, int, Function]] = []
    seen: set[int] = set()

    def push(fn: Function) -> None:
        if id(fn) not in seen:
            seen.add(id(fn))
            heapq.heappush(heap, (-fn.generation, id(fn), fn))

    if getattr(root.creator, "released", False):
        raise RuntimeError(
            "backward() through a graph that was already freed: call backward(retain_graph=True) the first time "
            "to backpropagate through it again, or recompute the forward pass"
        )
    # Grad-ready hooks: counted only when some leaf has one (else `pending` stays empty and costs nothing).
    pending = _count_hooked_paths(root.creator) if _hooked_leaves else {}
    push(root.creator)
    while heap:
        _, _, fn = heapq.heappop(heap)
        if getattr(fn, "released", False):
            raise RuntimeError("backward() reached a part of the graph that an earlier backward() freed")
        out_grads = []
        for ref, (shape, dtype) in zip(fn.output_refs, fn.output_meta):
            out = ref()
            entry = grads.pop(id(out), None) if out is not None else None
            g = entry[1] if entry is not None else None
            if g is None:
                xp = backend.get_array_module(*(t.data for t in fn.inputs))
                g = xp.zeros(shape, dtype=dtype)
            out_grads.append(g)
        in_grads = fn.backward(*out_grads) if observer is None else observer.backward(fn, out_grads)
        if not isinstance(in_grads, tuple):
            in_grads = (in_grads,)
        for x, gx, needed in zip(fn.inputs, in_grads, fn.needs_input_grad):
            if not needed:
                continue
            if x.creator is None:
                if gx is not None:
                    _accumulate_leaf(x, gx, owned=_fresh(gx, out_grads, in_grads))
                countdown = pending.get(id(x)) if pending else None
                if countdown is not None:
                    countdown[1] -= 1
                    if countdown[1] == 0:
                        del pending[id(x)]
                        _fire_grad_ready(x)
            elif gx is not None:
                key = id(x)
                grads[key] = (x, gx if key not in grads else grads[key][1] + gx)
                push(x.creator)
        if not retain_graph:
            fn.release()
    # A path the walk never took (a Function that returned None for a needed input) leaves a count above zero:
    # the gradient is final now all the same.
    for leaf, _ in list(pending.values()):
        _fire_grad_ready(leaf)
    if observer is not None:
        observer.backward_finished()
