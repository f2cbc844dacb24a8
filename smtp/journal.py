"""Group commit for the listener's journal.

Every message is committed to disk (SQLite `synchronous=FULL`, PostgreSQL's own commit)
before its 250. One commit per message would make the fsync the listener's speed limit,
so one writer journals in a single transaction whatever messages arrived while the
previous commit was under way, then releases all of their replies together. A lone
message waits for nothing: it is committed at once, as before.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

MAX_BATCH = 200  # bounds one transaction's size (and the memory of its raw messages)
IDLE_CHECK_SECONDS = 0.02  # how often a waiting processing lane looks again
QUIET_SECONDS = 0.1  # the listener is busy until this long after the last message

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


@dataclass
class GroupCommit(Generic[Item, Outcome]):
    """Runs `commit_batch` (blocking; in a worker thread) on batches of submitted items,
    one batch at a time, and gives each submitter its own item's outcome.

    `commit_batch` returns one outcome per item, in order. If it raises, nothing of the
    batch was committed and every submitter gets the exception.
    """

    commit_batch: Callable[[Sequence[Item]], Sequence[Outcome]]
    max_batch: int = MAX_BATCH
    _waiting: list[tuple[Item, asyncio.Future[Outcome]]] = field(default_factory=list)
    _writer: asyncio.Task[None] | None = None

    _last_submit: float = 0.0

    @property
    def busy(self) -> bool:
        """Whether submitters are waiting for a commit, or were moments ago: between
        batches of a burst there is briefly nothing to commit."""
        return (
            bool(self._waiting)
            or (self._writer is not None and not self._writer.done())
            or time.monotonic() - self._last_submit < QUIET_SECONDS
        )

    def submit(self, item: Item) -> Awaitable[Outcome]:
        self._last_submit = time.monotonic()
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        return future

    async def _write(self) -> None:
        while self._waiting:
            batch = self._waiting[: self.max_batch]
            del self._waiting[: self.max_batch]
            try:
                outcomes = await asyncio.to_thread(self.commit_batch, [item for item, _ in batch])
            except Exception as exc:  # every sender is told to try again; none was promised
                log.warning("journal commit of %d messages failed: %s", len(batch), exc)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():  # the session may have gone while we committed
                    future.set_result(outcome)

    async def drain(self) -> None:
        """Wait until everything submitted so far has been committed (or failed)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)


@dataclass
class ProcessingLane:
    """Processes journaled messages in arrival order, in one thread at a time.

    Processing writes too, and on SQLite writers take turns: one lane keeps processing
    from crowding out the journal's commits (which senders are waiting on), where a thread
    per message would queue them all for the same lock. While `listener_busy()` says
    senders are waiting, the lane also waits, but never lets a message wait longer than
    `max_delay`: a burst of mail is taken in at the listener's full speed and processed
    as it ebbs, and under a longer flood processing takes its turn again (the journal
    holds the backlog meanwhile; nothing is lost either way).
    """

    process: Callable[[int], object]  # blocking; one journal entry by id
    after_each_run: Callable[[], None] = lambda: None
    listener_busy: Callable[[], bool] = lambda: False
    max_delay: float = 5.0  # seconds
    max_run: int = 20  # entries per trip to the thread, so a drain can stop between runs
    _waiting: list[tuple[int, float]] = field(default_factory=list)  # (entry id, added at)
    _runner: asyncio.Task[None] | None = None

    def add(self, entry_id: int) -> None:
        self._waiting.append((entry_id, time.monotonic()))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())

    def _process_some(self, run: Sequence[tuple[int, float]]) -> int:
        """Process `run` in order until the listener gets busy (unless the next entry has
        waited `max_delay` already); how many were processed."""
        for done, (entry_id, added) in enumerate(run):
            if done and self._should_wait(added):
                return done
            self.process(entry_id)
        return len(run)

    def _should_wait(self, added: float) -> bool:
        return self.listener_busy() and time.monotonic() - added < self.max_delay

    async def _run(self) -> None:
        while self._waiting:
            if self._should_wait(self._waiting[0][1]):
                await asyncio.sleep(IDLE_CHECK_SECONDS)
                continue
            run = self._waiting[: self.max_run]
            del self._waiting[: self.max_run]
            try:
                done = await asyncio.to_thread(self._process_some, run)
            except Exception:  # the worker's sweep retries whatever is still pending
                log.exception("processing journal entries %s failed", [i for i, _ in run])
                done = len(run)
            self._waiting[:0] = run[done:]  # stopped for the listener: first in line again
            self.after_each_run()

    async def drain(self) -> None:
        """Process everything added so far (at once: nothing is arriving any more)."""
        self.listener_busy = lambda: False
        while self._runner is not None and not self._runner.done():
            await asyncio.shield(self._runner)
