"""The applier's queue is bounded in bytes, not messages: memory stays flat whatever the
messages weigh, and a message larger than the budget still passes, alone."""

import threading
import time

from azaion_assets.lib.ingest.partition_run import _Applier


class _HeldIngest:
    """Stands in for ``Ingest``: each message waits until the test lets it through."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.added: list[int] = []

    def add(self, offset, body, properties) -> None:
        self.go.wait(10)
        self.added.append(offset)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def settle(self) -> None:
        pass


def _batch(first: int, count: int, size: int) -> list:
    return [(first + i, b"x" * size, {}) for i in range(count)]


def test_offers_wait_while_the_queue_holds_its_budget_in_bytes():
    ingest = _HeldIngest()
    applier = _Applier(ingest, budget=10_000)  # type: ignore[arg-type]
    applier.start()
    assert applier.offer(_batch(0, 2, 2_000))  # 4,000 bytes
    assert applier.offer(_batch(2, 1, 5_000))  # 9,000: still within
    offered = threading.Event()
    late = threading.Thread(
        target=lambda: offered.set() if applier.offer(_batch(3, 1, 2_000)) else None
    )
    late.start()
    time.sleep(0.3)
    assert not offered.is_set() and applier.queued == 9_000  # 11,000 would pass the budget
    ingest.go.set()
    late.join(5)
    assert offered.is_set()
    applier.close()
    applier.join(5)
    assert ingest.added == [0, 1, 2, 3] and applier.queued == 0


def test_a_batch_larger_than_the_budget_passes_alone():
    ingest = _HeldIngest()
    ingest.go.set()
    applier = _Applier(ingest, budget=1_000)  # type: ignore[arg-type]
    applier.start()
    assert applier.offer(_batch(0, 1, 50_000))
    assert applier.offer(_batch(1, 1, 50_000))  # once the first is applied
    applier.close()
    applier.join(5)
    assert ingest.added == [0, 1]
