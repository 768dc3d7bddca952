"""The stack's shape, checked on every commit (issue 16): imports point down, files stay small, code stays lean.

Run as a test (`pytest tests/test_stack.py`) or as a script (`python tests/test_stack.py`) for the full report:
the import layers, the longest files and the line count against its budget.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"minitransfer": ROOT / "minitransfer", "minitransfer.kernels": ROOT / "kernels"}
MAX_FILE_LINES = 400
# The stack bottom to top, as README's "The stack" lists it: a module may import its own layer and those before it.
LAYERS = ("errors", "process_settings", "host_memory", "backend", "seeding", "autograd", "kernels", "ops", "nn",
          "optim", "io", "tokenization", "models", "distributed", "data", "training", "tasks", "pipelines", "profiler",
          "viz", "__init__", "cli", "__main__")
# Library + kernels lines when the restructuring began (commit f2354d6, 14,969 lines, the padding-free encoder
# included): the restructured stack may not be larger. Capabilities added since are counted apart (ADDED_SINCE),
# so that they neither hide a stack grown fat nor pass for one.
LINE_BUDGET = 14969
ADDED_SINCE = ("minitransfer/profiler/*.py", "minitransfer/viz.py", "minitransfer/cli/inspect_commands.py",
               "minitransfer/ops/costs.py",  # issue 17: profiler, graph, FLOP formulas
               "kernels/*_cuda.py",  # issue 18: the CUDA kernels
               "minitransfer/ops/autocast.py", "minitransfer/optim/grad_scaler.py",
               "minitransfer/training/mixed_precision.py")  # issue 18: mixed precision


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the library and its kernels."""
    found = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            if package == "minitransfer" and PACKAGES["minitransfer.kernels"] in path.resolve().parents:
                continue  # a checkout may link kernels/ into the package
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the library modules it imports (at any depth in the file: lazy imports count too)."""
    mods = modules()

    def resolve(name: str) -> str | None:
        name = "minitransfer." + name if name.startswith("kernels") else name
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(resolve(alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                # `from pkg import sub` depends on pkg.sub when sub is a module, else on pkg itself
                targets.update(resolve(f"{base}.{alias.name}") if resolve(f"{base}.{alias.name}") != resolve(base)
                               else resolve(base) for alias in node.names)
        graph[name] = {t for t in targets if t and t != name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, iteratively)."""
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        cycles.append(sorted(component))
    return cycles


def layer(module: str) -> int:
    """Position in LAYERS of a module: by its first name below minitransfer (the package itself: "__init__")."""
    parts = module.split(".")
    return LAYERS.index(parts[1] if len(parts) > 1 else "__init__")


def line_counts() -> dict[Path, int]:
    return {path: len(path.read_text(encoding="utf-8").splitlines()) for path in modules().values()}


def added_since(path: Path) -> bool:
    return any(path.relative_to(ROOT).match(pattern) for pattern in ADDED_SINCE)


def test_no_import_cycle():
    cycles = import_cycles(import_graph())
    assert not cycles, "modules that import each other (directly or around a loop): " + "; ".join(
        " <-> ".join(c) for c in cycles)


def test_the_library_never_imports_another_framework():
    """PyTorch, TensorFlow, JAX and transformers belong to tests/ and benchmarks/ only (lazy imports count)."""
    foreign = ("torch", "tensorflow", "jax", "transformers")
    found = []
    for path in modules().values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            found += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in foreign]
    assert not found, "imports of another framework inside the library: " + "; ".join(found)


def test_every_import_points_down_the_stack():
    upward = sorted(f"{a} -> {b}" for a, deps in import_graph().items() for b in deps if layer(b) > layer(a))
    assert not upward, "imports of a layer above (see LAYERS, README's 'The stack'): " + "; ".join(upward)


def test_no_file_over_the_limit():
    long = {str(p.relative_to(ROOT)): n for p, n in line_counts().items() if n > MAX_FILE_LINES}
    assert not long, f"files over {MAX_FILE_LINES} lines (split them by idea): {long}"


def test_library_within_its_line_budget():
    stack = sum(n for path, n in line_counts().items() if not added_since(path))
    assert stack <= LINE_BUDGET, f"minitransfer/ + kernels/ hold {stack} lines (without {ADDED_SINCE}), over the " \
                                 f"budget of {LINE_BUDGET}"


if __name__ == "__main__":
    counts = line_counts()
    added = sum(n for path, n in counts.items() if added_since(path))
    print(f"{sum(counts.values()) - added} lines (budget {LINE_BUDGET}) + {added} in capabilities added since, "
          f"in {len(counts)} files; longest:")
    for path, n in sorted(counts.items(), key=lambda kv: -kv[1])[:10]:
        print(f"  {n:5d}  {path.relative_to(ROOT)}")
    graph = import_graph()
    print("import cycles:", import_cycles(graph) or "none")
    print("upward imports:", sorted(f"{a} -> {b}" for a, deps in graph.items() for b in deps if layer(b) > layer(a))
          or "none")
