"""The dependency rule is a star: every plugin depends on fkit-core and nothing else of fkit.

fkit-core imports no plugin; fkit-dishka and fkit-di may use fkit-metrics only lazily,
behind an extra, and fkit-testing's capture fixtures may use fkit-metrics and fkit-otel
only lazily (they fail with MissingDependencyError when those are absent). Checked from
each pyproject and from every import in the sources.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p for p in (ROOT / "packages").glob("fkit-*") if (p / "pyproject.toml").is_file())
LAZY = {
    "fkit-dishka": {"fkit_metrics"},
    "fkit-di": {"fkit_metrics"},
    "fkit-testing": {"fkit_metrics", "fkit_otel"},
}


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower()


def _pyproject(package: Path) -> dict:  # type: ignore[type-arg]
    return tomllib.loads((package / "pyproject.toml").read_text())


def test_the_workspace_has_the_packages() -> None:
    names = {p.name for p in PACKAGES}
    assert {"fkit-core", "fkit-testing"} <= names


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_required_dependencies_form_a_star(package: Path) -> None:
    project = _pyproject(package)["project"]
    fkit_deps = [r for r in project.get("dependencies", []) if _name(r).startswith("fkit-")]
    if package.name == "fkit-core":
        assert fkit_deps == []
        return
    assert [_name(r) for r in fkit_deps] == ["fkit-core"], fkit_deps
    # Real bounds on the sibling, never a bare name.
    assert re.search(r">=\s*0\.1.*<\s*0\.2", fkit_deps[0]), fkit_deps[0]
    for extra, requirements in project.get("optional-dependencies", {}).items():
        for requirement in requirements:
            name = _name(requirement)
            if name.startswith("fkit-") and name != "fkit-core":
                assert name.replace("-", "_") in LAZY.get(package.name, set()), (extra, requirement)


def _imported_fkit_modules(path: Path) -> list[tuple[str, bool]]:
    """(top-level fkit module, imported at module level?) for every import in a file."""
    tree = ast.parse(path.read_text())
    found = []
    top_level = {id(node) for node in tree.body}
    type_checking = {
        id(n)
        for node in tree.body
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            if top.startswith("fkit_") and id(node) not in type_checking:
                found.append((top, id(node) in top_level))
    return found


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_sources_import_only_core_and_themselves(package: Path) -> None:
    own = package.name.replace("-", "_")
    for source in sorted((package / "src").rglob("*.py")):
        for module, at_top in _imported_fkit_modules(source):
            if module in (own, "fkit_core"):
                continue
            where = source.relative_to(ROOT)
            assert module in LAZY.get(package.name, set()), f"{where} imports {module}"
            assert not at_top, f"{where} imports {module} at module level; it must be lazy"


def _imported_names(path: Path) -> set[str]:
    """Every module a file imports (absolute imports), type-checking ones included."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    "package", [p for p in PACKAGES if p.name != "fkit-core"], ids=lambda p: p.name
)
def test_plugins_use_only_public_modules_of_the_core(package: Path) -> None:
    # Plugins see the core as any third-party plugin would: its public modules
    # (fkit_core, .settings, .events, .errors, .extending, ...), never a private one.
    for source in sorted((package / "src").rglob("*.py")):
        for name in _imported_names(source):
            parts = name.split(".")
            if parts[0] == "fkit_core":
                private = [part for part in parts[1:] if part.startswith("_")]
                assert not private, f"{source.relative_to(ROOT)} imports {name}"
