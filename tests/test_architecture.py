"""The package's import graph, read from the source (every import statement, also those inside functions):
no cycles, method folders independent of each other, shared code independent of the methods, and the package
independent of the scripts and models around it."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "zippy_tf"
METHODS = ("keypoints", "tracking", "multitask")
FRONT_END = ("cli",)  # the command line calls every method
OUTSIDE = ("benchmarks", "converters", "experiments", "models", "tests")  # import the package, never the reverse


def _module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
EXTENSIONS = {_module_name(p) for p in PACKAGE.rglob("*.c")}  # C extensions (zippy_tf.keypoints._hamming)


def _imports(name, path):
    """The modules ``name`` imports: package modules where they resolve to one, else the top-level name."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, one level up per extra dot
                anchor = name.split(".")[: len(name.split(".")) - node.level + is_package]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:  # `from pkg import module` imports the module
                module = f"{base}.{alias.name}"
                found.add(module if module in MODULES or module in EXTENSIONS else base)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _edges():
    return {name: {m for m in imported if m in MODULES and m != name} for name, imported in GRAPH.items()}


def _folder(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _cycles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return components


def test_the_graph_covers_every_folder_of_the_package():
    folders = {_folder(m) for m in MODULES}
    assert {*METHODS, "quantization", "search", "export", "data", "cli"} <= folders
    assert "zippy_tf.tracking.tracker" in GRAPH["zippy_tf.tracking.tuning"]  # the parser sees real imports


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    assert _cycles(_edges()) == []


@pytest.mark.parametrize("method", METHODS)
def test_method_folders_do_not_import_each_other(method):
    crossing = sorted(f"{name} imports {m}" for name, imported in _edges().items() if _folder(name) == method
                      for m in imported if _folder(m) in METHODS and _folder(m) != method)
    assert crossing == []


def test_shared_code_does_not_import_method_folders():
    """Everything outside the method folders and the command line is shared: the quantization, search, export and
    data folders and the top-level modules (io, errors, runtime, presets, which names its builders as strings)."""
    shared = [name for name in MODULES if _folder(name) not in (*METHODS, *FRONT_END)]
    assert "zippy_tf.search.traversal" in shared and "zippy_tf.io" in shared
    crossing = sorted(f"{name} imports {m}" for name in shared for m in _edges()[name] if _folder(m) in METHODS)
    assert crossing == []


def test_the_package_never_imports_the_scripts_and_models_around_it():
    crossing = sorted(f"{name} imports {m}" for name, imported in GRAPH.items() for m in imported
                      if m.split(".")[0] in OUTSIDE)
    assert crossing == []
