import os
import subprocess
import sys
import textwrap

import pytest

from azaion_assets.lib.training.offline import prepare_ultralytics


def test_prepare_puts_fonts_where_ultralytics_looks_and_sets_offline_flags(tmp_path):
    # A fresh process: Ultralytics reads these flags once, at import.
    code = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from azaion_assets.lib.training.offline import prepare_ultralytics
        cfg = prepare_ultralytics(Path({str(tmp_path)!r}))
        from ultralytics.utils import USER_CONFIG_DIR, ONLINE
        from ultralytics.utils.checks import check_font
        print(os.environ["YOLO_OFFLINE"], os.environ["YOLO_AUTOINSTALL"], ONLINE)
        print(check_font("Arial.ttf"))
        print(USER_CONFIG_DIR)
    """)
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("YOLO_")},
    )
    flags, font, config_dir = out.stdout.strip().splitlines()[-3:]
    assert flags == "1 0 False"
    assert font == str(tmp_path / "ultralytics" / "Ultralytics" / "Arial.ttf")
    assert config_dir.startswith(str(tmp_path))
    assert (tmp_path / "ultralytics" / "Arial.ttf").stat().st_size > 100_000


def test_amp_check_never_downloads_and_stays_off_on_cpu(runtime_dir, no_network):
    prepare_ultralytics(runtime_dir)
    import torch
    from ultralytics.engine import trainer

    from azaion_assets.lib.training.offline import disable_online_checks

    disable_online_checks(amp=True)
    cpu_model = torch.nn.Linear(2, 2)
    assert trainer.check_amp(cpu_model) is False  # pyright: ignore[reportPrivateImportUsage]
    assert no_network == []


class _OnCuda:
    """Stands for a model on a GPU: the check reads only its first parameter's device type."""

    class _Param:
        class device:
            type = "cuda"

    def parameters(self):
        return iter([self._Param()])


@pytest.mark.parametrize("amp", [True, False])
def test_amp_check_follows_the_setting_on_cuda(runtime_dir, amp):
    """The check applies the rule the result reports by (``amp_applies``), so they agree."""
    prepare_ultralytics(runtime_dir)
    from ultralytics.engine import trainer

    from azaion_assets.lib.training.offline import disable_online_checks

    disable_online_checks(amp=amp)
    assert trainer.check_amp(_OnCuda()) is amp  # pyright: ignore[reportPrivateImportUsage]


def test_the_network_guard_blocks_leaving_the_machine_but_not_loopback(no_network):
    """The guard the offline tests rely on: a real local server is reachable, the world is not."""
    import socket

    from azaion_assets_tests.conftest import NetworkAttempt

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=5):
            pass
    assert no_network == []
    with pytest.raises(NetworkAttempt):
        socket.create_connection(("192.0.2.1", 443), timeout=1)  # TEST-NET-1, never routed
    with pytest.raises(NetworkAttempt):
        socket.getaddrinfo("example.org", 443)
    assert len(no_network) == 2
