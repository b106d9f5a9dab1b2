"""The import rules of docs/architecture.rst, held by reading the package's imports."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "astro_delens"

#: The rooms of docs/architecture.rst, in order: a module may import its own
#: room and the rooms above it, never those below. The training commands and
#: the developer tools of ``astro_delens.data`` belong to the training room.
ROOMS = {
    "model": ["astro_delens.lensmodel", "astro_delens.presets"],
    "utilities": ["astro_delens._version", "astro_delens.files", "astro_delens.config",
                  "astro_delens.exceptions"],
    "input": ["astro_delens.cutout", "astro_delens.grids", "astro_delens.psf",
              "astro_delens.data"],
    "networks": ["astro_delens.nn"],
    "physics": ["astro_delens.forward"],
    "results": ["astro_delens.results", "astro_delens.source_result"],
    "batch engine": ["astro_delens.batch", "astro_delens.fieldcheck", "astro_delens.front"],
    "interfaces": ["astro_delens", "astro_delens.estimator", "astro_delens.reconstructor",
                   "astro_delens.parallel", "astro_delens.cli", "astro_delens.commands"],
    "training": ["astro_delens.training", "astro_delens.commands.calibrate",
                 "astro_delens.commands.evaluate", "astro_delens.commands.simulate",
                 "astro_delens.commands.train", "astro_delens.data._devtools",
                 "astro_delens.data.make_example"],
}


def _room(module):
    """Index of the room of ``module``: the one naming its longest prefix."""
    best = max(((len(prefix), index) for index, prefixes in enumerate(ROOMS.values())
                for prefix in prefixes
                if module == prefix or module.startswith(prefix + ".")), default=None)
    return None if best is None else best[1]


def _module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path, top_level_only):
    """The package's modules that ``path`` imports (at its top level, or anywhere)."""
    name = _module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    tree = ast.parse(path.read_text())
    found = set()
    for node in tree.body if top_level_only else ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m.startswith("astro_delens")}


def _graph(top_level_only):
    """``{module: the package's modules it imports}``."""
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {_module_name(p) for p in paths}
    graph = {}
    for path in paths:
        found = (_imports(path, top_level_only) & modules) - {_module_name(path)}
        # "from . import batch" imports the module astro_delens.batch, not the package
        graph[_module_name(path)] = {m for m in found
                                     if not any(o.startswith(m + ".") for o in found)}
    return graph


def _cycle(graph):
    """One import cycle of ``graph`` as a list of modules, or None."""
    state = {}

    def visit(module, path):
        state[module] = "open"
        for dep in sorted(graph[module]):
            if state.get(dep) == "open":
                return path[path.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep, path + [dep])
                if found:
                    return found
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            found = visit(module, [module])
            if found:
                return found
    return None


def test_every_module_has_a_room_and_imports_only_rooms_above():
    graph = _graph(top_level_only=False)
    assert [m for m in graph if _room(m) is None] == []
    names = list(ROOMS)
    upward = [f"{m} ({names[_room(m)]}) imports {d} ({names[_room(d)]})"
              for m, deps in sorted(graph.items()) for d in sorted(deps) if _room(d) > _room(m)]
    assert upward == []


def test_lensmodel_imports_nothing_of_the_package():
    assert _imports(PACKAGE / "lensmodel.py", top_level_only=False) == set()


def test_imports_flow_one_way():
    # at the top level of modules, no cycle at all; lazy imports may close a
    # cycle only inside the training room
    assert _cycle(_graph(top_level_only=True)) is None
    outside = {m: {d for d in deps if not d.startswith("astro_delens.training")}
               for m, deps in _graph(top_level_only=False).items()
               if not m.startswith("astro_delens.training")}
    assert _cycle(outside) is None


def test_the_checkers_find_what_they_look_for():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
    assert list(ROOMS)[_room("astro_delens.forward.relens")] == "physics"
    assert list(ROOMS)[_room("astro_delens.commands.train")] == "training"
    assert list(ROOMS)[_room("astro_delens.commands.predict")] == "interfaces"
    assert _room("numpy") is None


def test_estimating_and_reconstructing_never_load_training():
    code = (
        "import sys, warnings\n"
        "from astro_delens import LensParameterEstimator, SourceReconstructor\n"
        "from astro_delens.data import example_path\n"
        "estimate = LensParameterEstimator().predict(example_path())\n"
        "source = SourceReconstructor().reconstruct(example_path(), check=True)\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('astro_delens.training'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
