"""The rooms of the project import each other only downwards, and never in a circle.

Each room is a sub-package of `study/`, or `search_spaces`, or `analysis`. Their
layers, bottom up (a room may import its own layer and the ones below it):

    study.vocabulary            factors, statuses, metric names, typed config: no Ray, no PyTorch
    search_spaces               named spaces as data
    study.data, study.training  the dataset on the device; models and plain training (no Ray)
    analysis                    tables -> numbers -> plots and report; reads only tables and the vocabulary
    study.tuning, study.runtime the search on Ray Tune; what runs in Ray's workers
    study.retraining            stage 2 and final evaluation
    study.cli                   the command line

The graph is read from the source (every `import` and `from ... import`, at module
level or inside a function), so a lazy import counts as much as an eager one.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {
    "study.vocabulary": 0,
    "search_spaces": 1,
    "study.data": 2,
    "study.training": 2,
    "analysis": 3,
    "study.tuning": 4,
    "study.runtime": 4,
    "study.retraining": 5,
    "study.cli": 6,
    "study.__main__": 6,
}


def room_of(module: str) -> str | None:
    """The room a dotted module name belongs to (None for third-party and standard modules)."""
    for room in sorted(LAYERS, key=len, reverse=True):
        if module == room or module.startswith(room + "."):
            return room
    return None


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            # `from study.data import idx` imports the module study.data.idx.
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
    return out


def room_graph() -> dict[str, set[str]]:
    """room -> the other rooms it imports."""
    graph: dict[str, set[str]] = {room: set() for room in LAYERS}
    for package in ("study", "search_spaces", "analysis"):
        for path in (ROOT / package).rglob("*.py"):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            source = room_of(module)
            if source is None:  # study/__init__.py holds nothing to import
                continue
            for target in map(room_of, imported_modules(path)):
                if target is not None and target != source:
                    graph[source].add(target)
    return graph


def test_every_module_of_the_project_belongs_to_a_room():
    for package in ("study", "search_spaces", "analysis"):
        for path in (ROOT / package).rglob("*.py"):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            assert module == "study.__init__" or room_of(module), f"{module} is in no room of LAYERS"


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{source} (layer {LAYERS[source]}) imports {target} (layer {LAYERS[target]})"
        for source, targets in graph.items() for target in targets if LAYERS[target] > LAYERS[source]
    )


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path that ends where it starts, or None."""
    visiting, done = [], set()

    def visit(room: str) -> list[str] | None:
        if room in done:
            return None
        if room in visiting:
            return [*visiting[visiting.index(room):], room]
        visiting.append(room)
        for target in sorted(graph.get(room, ())):
            cycle = visit(target)
            if cycle:
                return cycle
        visiting.pop()
        done.add(room)
        return None

    return next((cycle for cycle in map(visit, sorted(graph)) if cycle), None)


def test_rooms_import_only_their_layer_and_below():
    upward = upward_imports(room_graph())
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


def test_the_room_graph_has_no_cycle():
    cycle = find_cycle(room_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checks_catch_a_lazy_upward_import_and_a_cycle(tmp_path):
    """A lazy import inside a function counts (cycles usually hide there); the checks report what they find."""
    module = tmp_path / "lazy.py"
    module.write_text("def f():\n    from study.cli import main\n    import analysis.io\n")
    assert {"study.cli", "study.cli.main", "analysis.io"} <= imported_modules(module)
    assert room_of("study.cli.main") == "study.cli" and room_of("torch") is None
    graph = {"study.tuning": {"study.runtime"}, "study.runtime": {"study.tuning"}, "analysis": {"study.cli"}}
    assert find_cycle(graph) == ["study.runtime", "study.tuning", "study.runtime"]
    assert upward_imports(graph) == ["analysis (layer 3) imports study.cli (layer 6)"]


def module_graph() -> dict[str, set[str]]:
    """module -> the project's modules it imports (lazy imports included). A package's `__init__` re-exports
    its modules, so `from analysis import stats` is an edge to `analysis.stats`, never to the package."""
    paths = {".".join(p.relative_to(ROOT).with_suffix("").parts): p
             for package in ("study", "search_spaces", "analysis") for p in (ROOT / package).rglob("*.py")}
    modules = {name for name in paths if not name.endswith(".__init__")}
    graph: dict[str, set[str]] = {}
    for name in modules:
        graph[name] = {target for target in imported_modules(paths[name]) if target in modules and target != name}
    return graph


def test_no_module_imports_itself_through_others():
    """Inside a room too: a circle of modules (often through a lazy import) is one idea spread over them."""
    cycle = find_cycle(module_graph())
    assert cycle is None, "module import cycle: " + " -> ".join(cycle)
