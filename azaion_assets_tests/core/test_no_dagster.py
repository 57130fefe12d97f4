import pkgutil
import subprocess
import sys

import azaion_assets.core


def test_the_core_imports_without_dagster_or_heavy_libraries():
    modules = [
        f"azaion_assets.core.{m.name}" for m in pkgutil.iter_modules(azaion_assets.core.__path__)
    ]
    assert len(modules) >= 10
    code = (
        f"import importlib, sys; [importlib.import_module(m) for m in {modules!r}]; "
        "print(sorted(m for m in ('dagster', 'torch', 'ultralytics', 'onnxruntime') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
