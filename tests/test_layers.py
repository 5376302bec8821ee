"""The imports run one way along the data path, and the CLI modules form no cycle."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "syncengine"


def _imports(path: Path) -> set[str]:
    """Every ``syncengine.*`` module a file imports, at the top or inside a function."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = parts[:-1]  # the package a relative import starts from (a module's or an __init__'s own)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("syncengine"))
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            if module.startswith("syncengine"):
                found.add(module)
                found.update(f"{module}.{a.name}" for a in node.names)
    return found


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_the_mirror_knows_nothing_of_connectors_or_http():
    for path in (PACKAGE / "mirror").rglob("*.py"):
        bad = {m for m in _imports(path)
               if m.startswith(("syncengine.connectors", "syncengine.http", "syncengine.cli"))}
        assert not bad, f"{path.name} imports {sorted(bad)}"


def test_connectors_know_nothing_of_the_engine():
    engine = ("syncengine.mirror", "syncengine.pull", "syncengine.plan", "syncengine.push", "syncengine.cli",
              "syncengine.mapping")
    for path in (PACKAGE / "connectors").rglob("*.py"):
        bad = {m for m in _imports(path) if m.startswith(engine)}
        assert not bad, f"{path.name} imports {sorted(bad)}"


def test_cli_modules_form_no_cycle():
    modules = {_module(p): p for p in (PACKAGE / "cli").rglob("*.py") if p.name != "__main__.py"}
    graph = {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}
    assert graph["syncengine.cli.base"] == set(), "the group module imports no command module"
    for name, deps in graph.items():
        if name != "syncengine.cli":
            assert "syncengine.cli" not in deps, f"{name} imports the package that joins it"
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' → '.join((*path, name))}"
        if name in done:
            return
        for dep in graph[name]:
            visit(dep, (*path, name))
        done.add(name)

    for name in graph:
        visit(name, ())


def test_the_console_and_the_engine_know_nothing_of_the_cli():
    """The console is a second front end beside the CLI: what both show lives below them (plan_text, status...)."""
    for path in PACKAGE.rglob("*.py"):
        if path.is_relative_to(PACKAGE / "cli") or path.name == "__main__.py":
            continue
        bad = {m for m in _imports(path) if m.startswith("syncengine.cli")}
        assert not bad, f"{_module(path)} imports {sorted(bad)}"
