"""The package as ``pip install .`` ships it, without extras: no dev stand-ins, and every module
of ``defs/``, ``lib/`` and ``cli/`` imports with only the runtime dependencies."""

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import Distribution, distribution, distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]

# Run in a fresh interpreter: the wheel's files first, the venv's packages after, and a finder
# that refuses every module of a distribution outside the runtime closure.
_IMPORT_ALL = """
import importlib, importlib.abc, json, sys
blocked, modules, target = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"{name} is not a runtime dependency", name=name)
sys.meta_path = [Refuse()] + [
    f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")
]  # the checkout's editable install would serve what the wheel lacks
sys.path.insert(0, target)
for name in modules:
    module = importlib.import_module(name)
    assert module.__file__.startswith(target), (name, module.__file__)
from azaion_assets.definitions import defs
print(len(defs().resolve_asset_graph().get_all_asset_keys()))
from azaion_assets.cli.main import main
print(main(["synthetic", "--count", "1"]))  # a dev command, without the dev stand-ins
"""


def _name(dist: Distribution) -> str:
    return re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()


def _runtime_closure() -> set[str]:
    """The distributions ``azaion-assets`` needs without extras, transitively."""
    seen: set[str] = set()
    todo = ["azaion-assets"]
    while todo:
        dist = distribution(todo.pop())
        if _name(dist) in seen:
            continue
        seen.add(_name(dist))
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def _top_level(dist: Distribution) -> set[str]:
    names = set((dist.read_text("top_level.txt") or "").split())
    for file in dist.files or []:
        head = file.parts[0]
        if not head.endswith((".dist-info", ".egg-info", ".pth")) and head not in ("..", "bin"):
            names.add(head.removesuffix(".py"))
    return names


@pytest.mark.slow
def test_the_wheel_imports_without_extras(tmp_path):
    src = tmp_path / "src"  # a copy: an in-tree build would leave build/ behind, and reuse it
    shutil.copytree(REPO / "azaion_assets", src / "azaion_assets",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path / "dist"), str(src)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("azaion_assets-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith("azaion_assets/dev/")]
    assert "azaion_assets/data/classes.json" in names
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    modules = sorted(
        n.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        for n in names
        if n.endswith(".py") and n.startswith(("azaion_assets/defs/", "azaion_assets/lib/",
                                               "azaion_assets/cli/")) and "__main__" not in n
    )  # fmt: skip
    assert len(modules) > 60

    runtime = _runtime_closure()
    assert {"dagster", "ultralytics", "rstream"} <= runtime and "pytest" not in runtime
    allowed = set().union(*(_top_level(d) for d in distributions() if _name(d) in runtime))
    blocked = set().union(*(_top_level(d) for d in distributions() if _name(d) not in runtime))
    blocked -= allowed | {"azaion_assets", "_distutils_hack"}
    assert {"pytest", "moto", "importlinter"} <= blocked

    out = subprocess.run(
        [sys.executable, "-I", "-c", _IMPORT_ALL, json.dumps(sorted(blocked)),
         json.dumps(modules), str(target)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "AZAION_ROOT_DIR": str(tmp_path / "azaion")},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-2:] == ["8", "2"]  # eight assets; exit code 2
    assert "the dev stand-ins are not installed (azaion_assets.dev)" in out.stderr
