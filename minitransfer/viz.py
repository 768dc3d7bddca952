"""Draw the autograd graph: `to_dot(loss)` is Graphviz DOT text, `save(loss, "graph.svg")` renders it.

One box per Function with its output shape; one ellipse per leaf tensor (parameters by their names when a
model is given, else by `Tensor.name`); inputs point at the op that reads them, up to the loss. Frozen
parameters and the ops that read only frozen ones are grey; frozen layers the graph does not reach (backward
stops above them) are listed in one grey note. The padding-free path shows: packing ops (take_rows,
scatter_rows) and varlen attention are orange, padded attention blue. Call it before backward(), which frees
the graph (or after backward(retain_graph=True)).
"""
from __future__ import annotations

from pathlib import Path

from minitransfer.autograd import Tensor
from minitransfer.errors import MiniTransferError
from minitransfer.nn import Module, Parameter
from minitransfer.profiler.table import layer_of

TRAINABLE = 'shape=ellipse, style=filled, fillcolor="#c8e6c9"'
FROZEN = 'shape=ellipse, style="filled,dashed", fillcolor="#e0e0e0", fontcolor="#757575"'
CONSTANT = 'shape=ellipse, color="#9e9e9e"'
FROZEN_OP = 'color="#9e9e9e", fontcolor="#757575"'
PACKED = 'style=filled, fillcolor="#ffe0b2"'
PADDED = 'style=filled, fillcolor="#d6e4ff"'


def _shape(shape) -> str:
    return str(tuple(int(n) for n in shape))


def _path_note(fn) -> tuple[str, str]:
    """(extra label line, style) for the ops that show which path a batch took."""
    name = type(fn).__name__
    if name == "TakeRows":
        return "pack: gather rows", PACKED
    if name == "ScatterRows":
        return "unpack: scatter rows", PACKED
    if "Varlen" in name and "Attention" in name:
        cu = getattr(fn, "cu_seqlens", None)
        return (f"packed: {len(cu) - 1} sequences" if cu is not None else "packed"), PACKED
    if name.endswith("Attention"):
        return "padded: (batch, seq) mask", PADDED
    return "", ""


def _leaf(t: Tensor, names: dict[int, str]) -> tuple[str, str]:
    """(label, style) of a leaf tensor: a trainable parameter, a frozen one, or a constant input."""
    name = names.get(id(t)) or t.name or ("parameter" if isinstance(t, Parameter) else "leaf")
    if t.requires_grad:
        return f"{name}\\n{_shape(t.shape)}", TRAINABLE
    if id(t) in names or isinstance(t, Parameter):
        return f"{name}\\n{_shape(t.shape)}\\nfrozen", FROZEN
    return f"{t.name or 'input'}\\n{_shape(t.shape)}", CONSTANT


def _node(node_id: str, label: str, style: str) -> str:
    return f'  {node_id} [label="{label}"{", " + style if style else ""}];'


def to_dot(root: Tensor, model: Module | None = None) -> str:
    """The graph that made `root` (a loss) as DOT text; `model` names its parameters and lists frozen layers."""
    if root.creator is not None and getattr(root.creator, "released", False):
        raise RuntimeError("the graph was freed by backward(): draw it before backward(), or call "
                           "backward(retain_graph=True)")
    names = {id(p): n for n, p in model.named_parameters()} if model is not None else {}
    lines = ["digraph autograd {", "  rankdir=BT;", '  node [shape=box, fontname="Helvetica", fontsize=10];']
    fn_ids: dict[int, str] = {}
    leaf_ids: dict[int, str] = {}
    if root.creator is None:
        lines.append(_node("t0", *_leaf(root, names)))
    queue = [root.creator] if root.creator is not None else []
    if queue:
        fn_ids[id(root.creator)] = "f0"
    for fn in queue:  # breadth first: the queue grows as ops are found
        inputs = getattr(fn, "inputs", ())
        params = [t for t in inputs if t.creator is None and (isinstance(t, Parameter) or id(t) in names)]
        note, style = _path_note(fn)
        if not style and params and not any(p.requires_grad for p in params):
            style = FROZEN_OP
        shapes = ", ".join(_shape(shape) for shape, _ in fn.output_meta)
        lines.append(_node(fn_ids[id(fn)], f"{type(fn).__name__}\\n{shapes}" + (f"\\n{note}" if note else ""), style))
        for t in inputs:
            if t.creator is None:
                if id(t) not in leaf_ids:
                    leaf_ids[id(t)] = f"t{len(leaf_ids)}"
                    lines.append(_node(leaf_ids[id(t)], *_leaf(t, names)))
                source = leaf_ids[id(t)]
            else:
                if id(t.creator) not in fn_ids:
                    fn_ids[id(t.creator)] = f"f{len(fn_ids)}"
                    queue.append(t.creator)
                source = fn_ids[id(t.creator)]
            lines.append(f"  {source} -> {fn_ids[id(fn)]};")
    if model is not None:
        unreached = sorted({layer_of(n.rsplit(".", 1)[0]) for n, p in model.named_parameters()
                            if not p.requires_grad and id(p) not in leaf_ids})
        if unreached:
            lines.append(_node("frozen", "frozen, not in the graph:\\n" + "\\n".join(unreached),
                               'shape=note, style=filled, fillcolor="#e0e0e0", fontcolor="#757575"'))
    return "\n".join(lines + ["}"]) + "\n"


def save(root: Tensor, path: str | Path, model: Module | None = None) -> Path:
    """Write the graph of `root` to `path`: DOT text for .dot/.gv, else rendered (.svg, .png, .pdf) by the
    `graphviz` package and Graphviz's `dot` program."""
    path = Path(path)
    dot = to_dot(root, model)
    if path.suffix in (".dot", ".gv"):
        path.write_text(dot)
        return path
    try:
        import graphviz  # noqa: PLC0415 (an optional extra)
    except ImportError:
        raise MiniTransferError(f"rendering {path.name} needs the graphviz package and Graphviz's `dot` program: "
                                "pip install graphviz (and apt install graphviz, or brew install graphviz); or "
                                "save to a .dot file") from None
    try:
        graphviz.Source(dot).render(outfile=path, format=path.suffix.lstrip("."), cleanup=True)
    except graphviz.ExecutableNotFound:
        raise MiniTransferError("the graphviz package is installed but Graphviz's `dot` program is not: apt "
                                "install graphviz (or brew install graphviz), or save to a .dot file") from None
    return path
