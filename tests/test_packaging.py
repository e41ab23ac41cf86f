"""What `pip install .` (scripts/start) ships: every folder of a package that holds files is
in pyproject's `packages` (setuptools warns about, and may leave out, one that is not:
`web.console_templates` was), and every file in them that is not Python is matched by its
`package-data` (the mail templates, the console's pages, Alembic's script template), so an
install has what the daemon loads at run time. A static check of pyproject against the tree:
no wheel is built."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
    "setuptools"
]
PACKAGES: list[str] = SETUPTOOLS["packages"]
PACKAGE_DATA: dict[str, list[str]] = SETUPTOOLS.get("package-data", {})
# Top-level folders with Python in them that are not installed.
NOT_SHIPPED = {"tests", "bench", "fuzz"}
# What a build or a run leaves beside the sources.
LEFT_BY_TOOLS = {"__pycache__"}


def _shipped_files(folder: Path) -> list[Path]:
    return [
        p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.endswith((".pyc", ".pyo"))
    ]


def _folders_of(top: str) -> list[Path]:
    """The package's folder and every folder under it that holds a file."""
    found = []
    for folder in [ROOT / top, *sorted((ROOT / top).rglob("*"))]:
        if not folder.is_dir() or LEFT_BY_TOOLS & set(folder.relative_to(ROOT).parts):
            continue
        if _shipped_files(folder):
            found.append(folder)
    return found


def _dotted(folder: Path) -> str:
    return ".".join(folder.relative_to(ROOT).parts)


def _tops() -> set[str]:
    listed = {name.split(".")[0] for name in PACKAGES}
    on_disk = {
        p.name
        for p in ROOT.iterdir()
        if p.is_dir() and (p / "__init__.py").exists() and not p.name.startswith(".")
    }
    return (listed | on_disk) - NOT_SHIPPED


def test_every_top_level_package_is_declared() -> None:
    assert _tops() <= {name.split(".")[0] for name in PACKAGES}


def test_every_folder_with_files_is_a_declared_package() -> None:
    undeclared = [
        _dotted(folder)
        for top in _tops()
        for folder in _folders_of(top)
        if _dotted(folder) not in PACKAGES
    ]
    assert not undeclared, f"add to [tool.setuptools] packages in pyproject.toml: {undeclared}"


def test_every_declared_package_is_a_folder() -> None:
    missing = [name for name in PACKAGES if not (ROOT / name.replace(".", "/")).is_dir()]
    assert not missing


def test_every_file_that_is_not_python_is_package_data() -> None:
    """Each data file is matched by a pattern of the package (its own folder) that holds it:
    a pattern of a parent reaching into a subfolder (`"web" = ["console_templates/*"]`) is
    what setuptools warned about."""
    unshipped = []
    for name in PACKAGES:
        folder = ROOT / name.replace(".", "/")
        patterns = PACKAGE_DATA.get(name, [])
        for path in _shipped_files(folder):
            if path.suffix != ".py" and not any(fnmatch(path.name, p) for p in patterns):
                unshipped.append(str(path.relative_to(ROOT)))
    assert not unshipped, f"add to [tool.setuptools.package-data]: {unshipped}"


def test_the_templates_are_among_them() -> None:
    """The mail templates and the console's pages, which the daemon loads at run time."""
    for name in ("templates.tr", "templates.en", "web.console_templates"):
        assert name in PACKAGES
        folder = ROOT / name.replace(".", "/")
        assert _shipped_files(folder), name
        for path in _shipped_files(folder):
            assert any(fnmatch(path.name, p) for p in PACKAGE_DATA[name]), path
