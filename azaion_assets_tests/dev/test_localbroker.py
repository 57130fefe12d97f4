"""The throwaway broker picks its ports so that parallel brokers and other processes on the
machine cannot make it fail: distinct ports, and new ones when a picked port was taken."""

import asyncio
import socket

import pytest

from azaion_assets.dev import localbroker
from azaion_assets.dev.localbroker import LocalBroker, free_ports
from azaion_assets.lib.stream.client import probe_tail, publish


def test_picked_ports_are_distinct():
    for _ in range(50):
        assert len(set(free_ports(3))) == 3
        assert len(set(LocalBroker().ports)) == 3


@pytest.mark.slow  # boots a broker
@pytest.mark.parametrize("checked_first", [True, False], ids=["before-boot", "during-boot"])
def test_a_taken_port_moves_a_fresh_broker_to_new_ones(
    tmp_path, monkeypatch: pytest.MonkeyPatch, checked_first: bool
):
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)  # a node that fails to boot must not leave a crash dump here
    broker = LocalBroker(base=tmp_path / "broker")
    if not checked_first:  # taken after the check: the broker fails to boot, and boots again
        monkeypatch.setattr(localbroker, "_bindable", lambda host, port: True)
    picked = broker.ports
    with socket.socket() as squatter:
        squatter.bind((broker.host, broker.dist_port))
        squatter.listen()
        with broker:
            assert broker.dist_port != picked[2]  # the squatter still holds that one
            target = broker.target("moved")
            asyncio.run(publish(target, [(b"x", {})]))
            assert asyncio.run(probe_tail(target, timeout=10)) == 0
    assert list(workdir.iterdir()) == []
