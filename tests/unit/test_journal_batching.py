"""The listener's group commit and processing lane (smtp/journal.py), on their own: which
submitter gets which outcome, what a failed commit tells them, and when processing runs."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence

import pytest

from smtp.journal import GroupCommit, ProcessingLane


class SlowCommit:
    """A commit that takes a while (as an fsync does) and records each batch it got."""

    def __init__(self, seconds: float = 0.05, fail_on: str | None = None) -> None:
        self.seconds, self.fail_on = seconds, fail_on
        self.batches: list[list[str]] = []

    def __call__(self, items: Sequence[str]) -> list[str]:
        self.batches.append(list(items))
        time.sleep(self.seconds)
        if self.fail_on in items:
            raise OSError("disk full")
        return [f"stored {item}" for item in items]


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_messages_arriving_during_a_commit_share_the_next_one() -> None:
    commit = SlowCommit()
    journal = GroupCommit(commit)
    first = journal.submit("m0")
    await asyncio.sleep(0.01)  # m0's commit is under way when the others arrive
    rest = [journal.submit(f"m{n}") for n in range(1, 30)]
    outcomes = await asyncio.gather(first, *rest)
    assert outcomes == [f"stored m{n}" for n in range(30)]
    assert commit.batches == [["m0"], [f"m{n}" for n in range(1, 30)]]


async def test_a_lone_message_is_committed_at_once() -> None:
    commit = SlowCommit(seconds=0)
    journal = GroupCommit(commit)
    assert await journal.submit("only") == "stored only"
    assert await journal.submit("later") == "stored later"
    assert commit.batches == [["only"], ["later"]]


async def test_a_batch_is_capped() -> None:
    commit = SlowCommit()
    journal = GroupCommit(commit, max_batch=10)
    first = journal.submit("m0")
    await asyncio.sleep(0.01)
    await asyncio.gather(first, *(journal.submit(f"m{n}") for n in range(1, 26)))
    assert [len(batch) for batch in commit.batches] == [1, 10, 10, 5]


async def test_a_failed_commit_fails_its_whole_batch_and_only_that_batch() -> None:
    commit = SlowCommit(fail_on="bad")
    journal = GroupCommit(commit)
    first = journal.submit("m0")
    await asyncio.sleep(0.01)
    doomed = [journal.submit(name) for name in ("m1", "bad", "m2")]
    await first
    for future in doomed:
        with pytest.raises(OSError, match="disk full"):
            await future
    assert await journal.submit("m3") == "stored m3"


async def test_a_sender_who_hung_up_does_not_stop_the_others() -> None:
    journal = GroupCommit(SlowCommit())
    first = journal.submit("m0")
    await asyncio.sleep(0.01)
    gone = asyncio.ensure_future(journal.submit("m1"))
    kept = journal.submit("m2")
    await asyncio.sleep(0)
    gone.cancel()
    assert await first == "stored m0"
    assert await kept == "stored m2"


async def test_processing_waits_while_senders_wait_and_then_keeps_order() -> None:
    processed: list[int] = []
    busy = threading.Event()
    busy.set()
    lane = ProcessingLane(processed.append, listener_busy=busy.is_set, max_delay=5.0)
    for entry_id in (3, 1, 2):
        lane.add(entry_id)
    await asyncio.sleep(0.1)
    assert processed == []  # the listener is busy, and nothing has waited 5 s
    busy.clear()
    await until(lambda: len(processed) == 3)
    assert processed == [3, 1, 2]


async def test_processing_never_waits_longer_than_its_limit() -> None:
    processed: list[int] = []
    lane = ProcessingLane(processed.append, listener_busy=lambda: True, max_delay=0.1)
    lane.add(7)
    await until(lambda: processed == [7])


async def test_drain_processes_everything_even_while_busy() -> None:
    processed: list[int] = []
    lane = ProcessingLane(processed.append, listener_busy=lambda: True, max_delay=60)
    for entry_id in range(45):
        lane.add(entry_id)
    await lane.drain()
    assert processed == list(range(45))


async def test_a_failing_entry_does_not_stop_processing_of_later_runs() -> None:
    processed: list[int] = []

    def process(entry_id: int) -> None:
        if entry_id == 0:
            raise RuntimeError("bug in processing")
        processed.append(entry_id)

    lane = ProcessingLane(process, max_run=1)
    for entry_id in range(3):
        lane.add(entry_id)
    await lane.drain()
    assert processed == [1, 2]


async def test_processing_stops_between_entries_when_mail_starts_arriving() -> None:
    processed: list[int] = []
    busy = threading.Event()

    def process(entry_id: int) -> None:
        processed.append(entry_id)
        busy.set()  # a sender connects while the first entry is processed

    lane = ProcessingLane(process, listener_busy=busy.is_set, max_delay=5.0)
    for entry_id in range(10):
        lane.add(entry_id)
    await until(lambda: processed == [0])
    await asyncio.sleep(0.1)
    assert processed == [0]  # the rest of the run waits for the listener
    lane.process = processed.append  # the listener stays quiet from now on
    busy.clear()
    await until(lambda: len(processed) == 10)
    assert processed == list(range(10))  # in arrival order, none lost or repeated


async def test_the_listener_counts_as_busy_for_a_moment_after_its_last_message() -> None:
    journal = GroupCommit(SlowCommit(seconds=0))
    assert not journal.busy
    await journal.submit("m0")
    assert journal.busy  # between a burst's batches there is briefly nothing to commit
    await until(lambda: not journal.busy)
