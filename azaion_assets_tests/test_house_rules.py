"""The house rules that no linter holds: every link in the README and docs resolves (anchors
too), every module a text names exists, no module imports ``dagster._core``, and the README stays
a page a newcomer reads in five minutes."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "azaion_assets"
README_MAX_LINES = 150
_SKIP = {".venv", "var", ".git", "__pycache__", "node_modules", ".ruff_cache"}
_TEXT = {".py", ".md", ".toml", ".yaml", ".yml"}


def _files(suffixes: set[str]) -> list[Path]:
    found = [REPO / "Makefile"] if "Makefile" in suffixes else []
    for path in sorted(REPO.rglob("*")):
        parts = set(path.relative_to(REPO).parts)
        if path.is_file() and path.suffix in suffixes and not parts & _SKIP:
            found.append(path)
    return found


def _markdown() -> list[Path]:
    return [p for p in _files({".md"}) if not p.name.startswith(".")]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading)
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text("utf-8"), flags=re.S)
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


def broken_links(path: Path) -> list[str]:
    """The links of one Markdown file that point nowhere: a missing file, or an anchor that no
    heading of the target makes."""
    text = re.sub(r"```.*?```", "", path.read_text("utf-8"), flags=re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target):
            continue  # http(s), mailto: not fetched by a test
        file, _, anchor = target.partition("#")
        where = (path.parent / file).resolve() if file else path
        if not where.exists():
            broken.append(f"{target}: no such file")
        elif anchor and where.suffix == ".md" and anchor not in anchors(where):
            broken.append(f"{target}: no heading makes #{anchor}")
    return broken


def test_the_readme_is_a_short_page():
    lines = (REPO / "README.md").read_text("utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines: move a chapter to docs/"


@pytest.mark.parametrize("path", _markdown(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_link_resolves(path: Path):
    assert broken_links(path) == []


def test_a_broken_link_and_a_missing_anchor_are_caught(tmp_path):
    (tmp_path / "b.md").write_text("# Title\n\n## Two words\n")
    page = tmp_path / "a.md"
    page.write_text("[ok](b.md#two-words) [gone](c.md) [anchor](b.md#three) [web](https://x.y)\n")
    assert broken_links(page) == ["c.md: no such file", "b.md#three: no heading makes #three"]


# What a text may name: a module by dotted name (``lib.champion.files``, with an attribute after
# it), or a file by path (``lib/champion/files.py``); ``core`` is the package that became lib/.
_DOTTED = re.compile(r"^(?:azaion_assets\.)?((?:lib|defs|dev|cli)\.[\w.]+)$")
_PATH = re.compile(r"^(?:azaion_assets/)?((?:lib|defs|dev|cli)/[\w/]+\.py)$")
_TESTS_PATH = re.compile(r"^azaion_assets_tests/[\w/]+\.py$")
_CORE = re.compile(r"(?<![\w./])core[./][a-z_]+")


def _resolves(dotted: str) -> bool:
    """A module of the package, or an attribute (chain) of the longest module it starts with."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        name = ".".join(["azaion_assets", *parts[:cut]])
        try:
            target: object = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            if not hasattr(target, attr):
                return False
            target = getattr(target, attr)
        return True
    return False


def stale_names(text: str) -> list[str]:
    stale = [m.group(0) for m in _CORE.finditer(text)]
    for quoted in re.findall(r"`+([^`\s]+)`+", text):
        name = quoted.rstrip(".,:;()")
        dotted, path = _DOTTED.match(name), _PATH.match(name)
        missing = (
            (dotted is not None and not _resolves(dotted.group(1)))
            or (path is not None and not (PACKAGE / path.group(1)).is_file())
            or (_TESTS_PATH.match(name) is not None and not (REPO / name).is_file())
        )
        if missing:
            stale.append(name)
    return stale


def test_every_module_a_text_names_exists():
    stale = {
        str(p.relative_to(REPO)): names
        for p in _files(_TEXT | {"Makefile"})
        if p.name != "test_house_rules.py" and (names := stale_names(p.read_text("utf-8")))
    }
    assert stale == {}


def test_a_stale_name_is_caught():
    text = (
        "see ``core.training``, `lib/evaluation/modelcard.py`, ``lib.evaluation.predictor``, "
        "``lib.champion.files.no_such_function`` and `azaion_assets_tests/test_deploy.py`; "
        "but ``lib.champion.files.publish_pair``, `defs/instance_facts.py` and "
        "``dagster.core.run_coordinator`` are fine"
    )
    assert stale_names(text) == [
        "core.training",
        "lib/evaluation/modelcard.py",
        "lib.evaluation.predictor",
        "lib.champion.files.no_such_function",
        "azaion_assets_tests/test_deploy.py",
    ]


def dagster_core_imports(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        found += [n for n in names if n == "dagster._core" or n.startswith("dagster._core.")]
    return found


def test_no_module_imports_dagster_internals():
    """``dagster._core`` changes in any release; what the project needs of it is public API, or
    a documented value (a run tag) named here."""
    found = {
        str(p.relative_to(REPO)): names
        for p in sorted(PACKAGE.rglob("*.py"))
        if (names := dagster_core_imports(p.read_text("utf-8")))
    }
    assert found == {}
    assert dagster_core_imports("def f():\n    from dagster._core.storage import tags\n")
