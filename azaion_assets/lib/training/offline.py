"""Keep Ultralytics off the network.

Ultralytics reaches out at run time: it downloads ``Arial.ttf`` for plots, checks for updates,
pings an events endpoint, and on CUDA downloads ``yolo26n.pt`` for an AMP self-check. A training
server may have no internet at all, and nothing we ship may depend on it. ``prepare_ultralytics``
must run before ``ultralytics`` is first imported in a process: the flags are read at import.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

from azaion_assets.lib.training.train_params import amp_applies

FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")
_ONLINE_SETTINGS = ("sync", "clearml", "comet", "dvc", "mlflow", "raytune", "wandb", "tensorboard")


def _bundled_font() -> Path:
    """DejaVuSans ships inside matplotlib, an Ultralytics dependency, so no download is needed.

    Found without importing matplotlib: importing it would fix its config dir before
    ``MPLCONFIGDIR`` is set below.
    """
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("matplotlib (an Ultralytics dependency) is not installed")
    package = Path(next(iter(spec.submodule_search_locations)))
    font = package / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
    if not font.is_file():
        raise FileNotFoundError(f"bundled font missing: {font}")
    return font


def prepare_ultralytics(runtime_dir: Path) -> Path:
    """Point Ultralytics at a project-local config dir holding its fonts, and switch it offline.

    Returns the Ultralytics config directory in effect. Safe to call repeatedly; raises if
    Ultralytics was already imported without these flags, since they are read at import.
    """
    config_dir = Path(runtime_dir).resolve() / "ultralytics"
    config_dir.mkdir(parents=True, exist_ok=True)
    font = _bundled_font()
    # Ultralytics looks in YOLO_CONFIG_DIR/Ultralytics; keep a copy at the top level too.
    for folder in (config_dir, config_dir / "Ultralytics"):
        folder.mkdir(exist_ok=True)
        for name in FONT_NAMES:
            if not (folder / name).is_file():
                shutil.copyfile(font, folder / name)
    cache = Path(runtime_dir).resolve() / "cache"
    flags = {
        "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "0",
        "YOLO_CONFIG_DIR": str(config_dir),
        "MPLCONFIGDIR": str(cache / "matplotlib"),
        "XDG_CACHE_HOME": str(cache),
        "YOLO_VERBOSE": os.environ.get("YOLO_VERBOSE", "True"),
    }
    if "ultralytics" in sys.modules:
        # Its flags were read at import. Fine if that import was already offline (a long-lived
        # process such as a test session); otherwise nothing we set now would take effect.
        if os.environ.get("YOLO_OFFLINE") != "1" or not os.environ.get("YOLO_CONFIG_DIR"):
            raise RuntimeError("ultralytics was imported before prepare_ultralytics()")
        return Path(os.environ["YOLO_CONFIG_DIR"])
    os.environ.update(flags)
    (cache / "matplotlib").mkdir(parents=True, exist_ok=True)
    return config_dir


def disable_online_checks(amp: bool) -> None:
    """Replace the AMP self-check, which downloads weights, by the configured choice.

    Call after ``prepare_ultralytics`` and before training. The trainer imports ``check_amp`` by
    name, so that is the reference to replace.
    """
    from ultralytics.engine import trainer
    from ultralytics.utils import SETTINGS

    # No analytics events and no third-party loggers that might phone home.
    SETTINGS.update({key: False for key in _ONLINE_SETTINGS if key in SETTINGS})

    def _configured_amp(model, *_args, **_kwargs) -> bool:
        # As upstream: AMP only on accelerators. On a CPU, autocast would mean slow bfloat16.
        # The same rule as the result's report, so the metadata says what the trainer did.
        return amp_applies(bool(amp), next(model.parameters()).device.type)

    trainer.check_amp = _configured_amp  # type: ignore[assignment]
