"""The tree tells the architecture: packages by purpose, imports that run one way, no cycles.

Every `import` of a dlexp module counts, at the top of a file or inside a function: an import made late to dodge a
cycle is still a cycle between two concepts.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dlexp"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    found = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    found.update({module_name(p): p for p in (ROOT / "hydra_plugins").rglob("*.py")})
    return found


def imports(path: Path, known: set[str]) -> set[str]:
    """The dlexp modules a file imports, anywhere in it (`from dlexp.run import loop` imports dlexp.run.loop)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [
                f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module
                for alias in node.names
            ]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != "dlexp":  # the face (its errors, its version) is below everything
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(path, set(found)) - {name} for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return groups


def test_no_import_cycles_anywhere_in_a_file():
    assert cycles(graph()) == []


def test_every_module_lives_in_a_package_but_the_face():
    face = ("__init__.py", "__main__.py", "api.py")  # the package's name, errors and version; python -m; the Python API
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in face)
    assert loose == []
    for package in (p for p in PACKAGE.iterdir() if p.is_dir() and p.name not in ("__pycache__", "conf")):
        assert (package / "__init__.py").read_text().startswith('"""'), f"{package.name}/ says what it holds"


def observer_classes() -> set[str]:
    """Every class of dlexp with a method of the observer protocol (on_start, on_step, ... on_end)."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                isinstance(item, ast.FunctionDef) and item.name.startswith("on_") for item in node.body
            ):
                found.add(node.name)
    return found


def test_the_stacked_engine_names_no_observer_class():
    """The stack does each observer's work for many jobs through the observer's own declared forms: it names no
    observer class (its own random-state keeper aside) and reads no observer's fields."""
    observers = observer_classes() - {"OwnRng"}
    assert {"DivergenceGuard", "Histograms", "Pictures", "ScalarLogger", "Checkpointer"} <= observers
    for path in (PACKAGE / "stacked").glob("*.py"):
        tree = ast.parse(path.read_text())
        named = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        named |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
        assert not named & observers, (path.name, sorted(named & observers))


def test_the_readme_draws_the_tree():
    """README's Layout section has a line for every package of dlexp/ and every folder of the repository, and
    draws nothing that is not there."""
    readme = (ROOT / "README.md").read_text()
    layout = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    drawn = {line.split()[0] for line in layout.splitlines() if line.startswith("    ") and line.strip()}
    packages = {f"dlexp/{p.name}/" for p in PACKAGE.iterdir() if (p / "__init__.py").exists() and p.name != "conf"}
    folders = {f"{p.name}/" for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    folders -= {"dlexp/", "build/", "dist/", "runs/", "outputs/", "multirun/"} | {
        f"{p.name}/" for p in ROOT.glob("*.egg-info")
    }
    assert packages | folders <= drawn, sorted(packages | folders - drawn)
    assert all((ROOT / path).exists() for path in drawn), sorted(p for p in drawn if not (ROOT / p).exists())
