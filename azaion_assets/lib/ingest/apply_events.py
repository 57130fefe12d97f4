"""Apply Azaion annotation events to the data tree: idempotent, in any order, crash-safe.

Routing (the Azaion contract): Created or Edited by a validator goes to ``data/``, by anyone
else to ``data-seed/``; a bulk Validated moves ``data-seed/`` to ``data/``; a bulk Deleted moves
an annotation to ``data_deleted/`` from wherever it is. Where a name belongs is decided by
replaying its whole event log in offset order (``ingest_state.replay``), so partitions may be
applied in any order and later events still win.

Events are applied a **group** at a time; a group never touches a name twice, so its events are
independent and their file work can be batched:

1. plan every event against the names' logs (``planning.py``; no file is touched);
2. write each new file to a hidden temp file beside its target, wait until all are durable
   (one ``syncfs``), rename them into place, move and remove files as planned, fsync the
   touched directories (``fsio/group_commit.py``);
3. commit the names' new logs (and the origin of new content) in one SQLite transaction.

Steps 1 to 3 run on a committer thread while the caller decodes the next group's messages;
the next group is planned only once this one is committed.

A crash before 3 re-applies the group later. Every effect is idempotent: a content write
replaces the files whole, and moves only ever converge on the replayed place. Stale temp files
from a crash are hidden (forming skips them) and swept by the next run.

A message that cannot be applied never stops the batch: its raw bytes and the reason go to
``data-corrupted/stream/<offset>.{bin,json}``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.fsio import group_commit
from azaion_assets.lib.fsio.atomic import sweep_temps
from azaion_assets.lib.fsio.locks import file_lock
from azaion_assets.lib.ingest.ingest_state import IngestState, NameState, state_file
from azaion_assets.lib.ingest.name_gate import admit
from azaion_assets.lib.ingest.planning import Group, Planner, quarantine_dir, real_names
from azaion_assets.lib.ingest.summary import IngestSummary
from azaion_assets.lib.stream.contract import Decoded, Rejected, decode_message
from azaion_assets.lib.stream.image_judge import ImageJudge
from azaion_assets.lib.stream.limits import DEFAULT_LIMITS, MessageLimits

TEMP_SUFFIX = ".ingest-tmp"
GROUP_SIZE = 128  # events per commit: amortises fsyncs and the SQLite commit
GROUP_BYTES = 64 << 20  # ...and a cap on the bytes a group holds (and on its open temp files)


def state_path(tree: DataTree) -> Path:
    return state_file(tree.root)


class Ingest:
    """Applies the messages of one partition, in stream order, a group at a time.

    Not thread-safe: feed it from one thread (groups are applied on a committer thread, one at
    a time, in order). Groups of concurrent runs are serialised by a lock on the data tree, so
    partitions can be read from the stream in parallel.
    """

    def __init__(
        self,
        tree: DataTree,
        state: IngestState,
        partition: str,
        max_bytes: int,
        group_size: int = GROUP_SIZE,
        message_limits: MessageLimits = DEFAULT_LIMITS,
    ) -> None:
        self.tree, self.state, self.partition = tree, state, partition
        self.max_bytes, self.group_size = max_bytes, group_size
        self.message_limits = message_limits
        # Images the JPEG walk does not judge are decoded in a child, within the budget.
        self._judge = ImageJudge(message_limits.image_seconds, message_limits.image_memory)
        self.summary = IngestSummary()
        self._planner = Planner(tree, partition, self.summary)
        self._group: Group = []
        self._names: set[str] = set()
        self._group_bytes = 0
        self._applying: Future[None] | None = None  # the group on the committer thread
        self._lock_path = tree.root / ".ingest" / "lock"
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)

    # -- feeding ---------------------------------------------------------------------------

    def add(self, offset: int, body: bytes, properties: Mapping[Any, Any]) -> None:
        decoded = decode_message(body, properties, self.max_bytes, self.message_limits, self._judge)
        self.summary.count(offset, body, decoded)
        names = _names_of(decoded, offset)
        full = len(self._group) >= self.group_size or self._group_bytes >= GROUP_BYTES
        if self._group and (full or names & self._names):
            self._hand_over()
        self._group_bytes += len(body)
        if not isinstance(decoded.event, Rejected):
            body = b""  # only a quarantine keeps the raw bytes; the event holds the image
        self._group.append((offset, body, properties, decoded))
        self._names |= names

    def flush(self) -> None:
        """Apply the pending group durably; return once every group added so far is applied."""
        self._hand_over()
        self._wait()

    def close(self) -> None:
        """End the image judge's child, if one was started (the partition's messages are in)."""
        self._judge.close()

    @property
    def judges_started(self) -> int:
        """Image judge children started: one if any image needed it, one more per cut-off."""
        return self._judge.started

    def settle(self) -> None:
        """Wait for a group still being applied, ignoring its errors (the caller is failing
        already, and must not close the state under it)."""
        with suppress(BaseException):
            self._wait()

    def _hand_over(self) -> None:
        """Apply the pending group on the committer thread, while the caller decodes the next.

        Decoding is Python (the GIL), applying mostly waits on system calls, so the two
        overlap. The previous group is committed first: the plan of this one reads its logs.
        """
        if not self._group:
            return
        self._wait()
        group = self._group
        self._group, self._names, self._group_bytes = [], set(), 0
        self._applying = _committer().submit(self._apply, group)

    def _wait(self) -> None:
        """Wait until the group handed over last is committed; raise what applying it raised."""
        applying, self._applying = self._applying, None
        if applying is not None:
            applying.result()

    def _apply(self, group: Group) -> None:
        with self.locked():
            states = self.state.load(n for _, _, _, d in group for n in real_names(d))
            group = self._admitted(group, states)
            plan = self._planner.plan(group, states)
            group_commit.commit(plan, TEMP_SUFFIX)
            self.state.save(plan.states)

    def _admitted(self, group: Group, states: Mapping[str, NameState]) -> Group:
        """The group with each event admitted or refused by the names it would store."""
        admitted = admit((d for _, _, _, d in group), states, self.state.holders)
        out: Group = []
        for (offset, body, properties, before), after in zip(group, admitted, strict=True):
            if after is not before:
                self.summary.recount(before.event, after.event)
            out.append((offset, body, properties, after))
        return out

    @contextmanager
    def locked(self) -> Iterator[None]:
        with file_lock(self._lock_path):
            yield

    def sweep_stale_temps(self) -> int:
        """Remove temp files left by a crashed run (call under ``locked``)."""
        return sweep_temps(self._planner.folders(), TEMP_SUFFIX)


@functools.cache
def _committer() -> ThreadPoolExecutor:
    """The thread that applies one group while ``Ingest.add`` decodes the next."""
    return ThreadPoolExecutor(1, thread_name_prefix="azaion-ingest-commit")


os.register_at_fork(after_in_child=_committer.cache_clear)  # threads do not survive a fork


def _names_of(decoded: Decoded, offset: int) -> set[str]:
    names = real_names(decoded)
    return names or {f"\0quarantine:{offset}"}


def ensure_places(tree: DataTree) -> None:
    """The data tree and the stream quarantine exist."""
    tree.ensure()
    quarantine_dir(tree).mkdir(parents=True, exist_ok=True)
