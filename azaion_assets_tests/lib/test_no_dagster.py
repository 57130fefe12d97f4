import pkgutil
import subprocess
import sys

import azaion_assets.lib


def test_the_library_imports_without_dagster_or_heavy_libraries():
    """The static contract (import-linter) sees imports; this sees what importing loads."""
    modules = [
        m.name for m in pkgutil.walk_packages(azaion_assets.lib.__path__, "azaion_assets.lib.")
    ]
    assert len(modules) >= 40
    code = (
        f"import importlib, sys; [importlib.import_module(m) for m in {modules!r}]; "
        "print(sorted(m for m in ('dagster', 'torch', 'ultralytics', 'onnxruntime') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
