"""The layers hold: read from the code's own imports (an `ast` walk; nothing of it is run).

- Every top-level package is declared in ORDER, and imports only packages before it there:
  at module level, inside a function or under TYPE_CHECKING alike.
- No import cycle between modules, counting imports inside functions and under TYPE_CHECKING
  too: an import moved into a function to hold a cycle apart is still the cycle. (Only the
  imports of an `if __name__ == "__main__":` block are left out of that: they never run on import.)
- No product function over 60 lines (migrations aside), but for any listed in LONG_FUNCTIONS (none).
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Bottom first: a package may import only the packages before it. A new top-level package is
# declared here, where it sits. The HTTP package goes after "ticketd" when it calls ticketd's
# services, or just before "ticketd" when it calls only what is below and ticketd starts it.
ORDER = (
    "templates",  # mail templates: data, read by name (domain/templating.py), no code
    "storage",
    "domain",
    "outbound",
    "ingest",
    "web",  # the HTTP API (FastAPI): ticketd's daemon serves it and passes in what it needs
    "ticketd",
)

# Folders with an __init__.py that are not product packages.
NOT_PRODUCT = frozenset({"tests"})

MAX_LINES = 60

# Product functions allowed past MAX_LINES, each with its reason (a protocol state machine, say).
# Empty since issue 18's splits landed: a new entry needs a reason a reviewer accepts.
LONG_FUNCTIONS: dict[str, str] = {}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, dotted
    target: str  # the imported module (the longest name of a product module it names)
    path: str  # the importing file, relative to the root
    line: int
    where: str  # "module", "function", "TYPE_CHECKING" or "__main__" (run as a script)

    def __str__(self) -> str:
        level = "" if self.where == "module" else f" ({self.where})"
        return f"{self.path}:{self.line} imports {self.target}{level}"


def declared_packages() -> set[str]:
    """Top-level packages, from pyproject's package list and from the folders on disk (one not
    listed yet is found all the same)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = {name.split(".")[0] for name in pyproject["tool"]["setuptools"]["packages"]}
    on_disk = {
        p.name
        for p in ROOT.iterdir()
        if p.is_dir() and (p / "__init__.py").exists() and not p.name.startswith(".")
    }
    return (listed | on_disk) - NOT_PRODUCT


@cache
def product_modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for package in ORDER:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _where(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> str:
    where = "module"
    parent = parents.get(node)
    while parent is not None:
        if isinstance(parent, ast.FunctionDef | ast.AsyncFunctionDef):
            return "function"
        if isinstance(parent, ast.If) and "TYPE_CHECKING" in ast.unparse(parent.test):
            where = "TYPE_CHECKING"
        if isinstance(parent, ast.If) and ast.unparse(parent.test) == "__name__ == '__main__'":
            return "__main__"
        parent = parents.get(parent)
    return where


def _named(module: str, node: ast.Import | ast.ImportFrom, is_package: bool) -> list[str]:
    """The dotted names an import statement brings in, relative ones made absolute."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        parts = module.split(".") if is_package else module.split(".")[:-1]
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join([*parts, base] if base else parts)
    # `from ingest import verify_checks` names a module; `from ingest.verify import verify` not.
    return [f"{base}.{alias.name}" for alias in node.names]


def _module_of(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


@cache
def imports() -> tuple[Import, ...]:
    """Every import of a product module by a product module."""
    return tuple(_imports(product_modules()))


def _imports(modules: dict[str, Path]) -> Iterator[Import]:
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for name in _named(module, node, path.name == "__init__.py"):
                target = _module_of(name, modules)
                if target is not None and target != module:
                    rel = str(path.relative_to(ROOT))
                    yield Import(module, target, rel, node.lineno, _where(node, parents))


def _cycle(edges: dict[str, dict[str, Import]]) -> list[Import] | None:
    """One import cycle, as the imports that make it, or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[Import] | None:
        path.append(module)
        for target in sorted(edges.get(module, {})):
            if target in path:
                ring = [*path[path.index(target) :], target]
                return [edges[a][b] for a, b in pairwise(ring)]
            if target not in done:
                found = visit(target)
                if found:
                    return found
        path.pop()
        done.add(module)
        return None

    for module in sorted(edges):
        if module not in done:
            found = visit(module)
            if found:
                return found
    return None


def test_every_top_level_package_is_declared() -> None:
    found = declared_packages()
    new = sorted(found - set(ORDER))
    assert not new, (
        f"top-level package {', '.join(new)} is not in ORDER (tests/test_layers.py): declare it "
        "where it sits among the layers"
    )
    gone = sorted(set(ORDER) - found)
    assert not gone, f"ORDER names {', '.join(gone)}, which is no longer a package"


def test_imports_point_down_only() -> None:
    rank = {package: i for i, package in enumerate(ORDER)}
    upward = [
        f"{found} ({found.source.split('.')[0]} is below {found.target.split('.')[0]})"
        for found in imports()
        if rank[found.target.split(".")[0]] > rank[found.source.split(".")[0]]
    ]
    assert not upward, (
        "imports against the layers, " + " < ".join(ORDER) + ":\n" + "\n".join(upward)
    )


def test_no_import_cycle_between_modules() -> None:
    edges: dict[str, dict[str, Import]] = {}
    for found in imports():
        if found.where == "__main__":
            continue  # a file run as a script imports itself as a second module: no cycle
        # The one shown for a pair is the module-level one if there is one.
        known = edges.setdefault(found.source, {}).get(found.target)
        if known is None or known.where != "module":
            edges[found.source][found.target] = found
    cycle = _cycle(edges)
    assert cycle is None, (
        "an import cycle (imports inside functions and under TYPE_CHECKING count): move what "
        "both sides need into a lower module, pass it in, or use a Protocol:\n"
        + "\n".join(str(i) for i in cycle)
    )


def _functions(path: Path) -> Iterator[tuple[str, int]]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            yield node.name, (node.end_lineno or node.lineno) - start + 1


def test_no_product_function_over_60_lines() -> None:
    long = []
    for path in product_modules().values():
        rel = path.relative_to(ROOT)
        if "migrations" in rel.parts:
            continue
        for name, lines in _functions(path):
            if lines > MAX_LINES and f"{rel}:{name}" not in LONG_FUNCTIONS:
                long.append(f"{rel}:{name} is {lines} lines")
    assert not long, f"functions over {MAX_LINES} lines:\n" + "\n".join(sorted(long))


def test_the_checks_see_what_they_are_for() -> None:
    """The walk finds the imports it judges: a check that read nothing would pass on anything."""
    found = imports()
    assert any(i.source == "ingest.parsing" and i.target == "ingest.tnef" for i in found)
    assert any(i.where == "function" and i.target == "ingest.verify_checks" for i in found)
    edges = {"a": {"b": Import("a", "b", "a.py", 1, "module")}}
    edges["b"] = {"a": Import("b", "a", "b.py", 2, "function")}
    assert [str(i) for i in _cycle(edges) or []] == [
        "a.py:1 imports b",
        "b.py:2 imports a (function)",
    ]
