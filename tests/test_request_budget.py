"""The request budget paces a system's requests across threads; ``back_to_back`` keeps a re-read and
the write it guards in consecutive slots, so the write never waits behind other threads' requests
(the gap in which a user's edit would be overwritten stays one interval). The waits are recorded,
not slept."""
from __future__ import annotations

import threading

import pytest

from syncengine import http
from syncengine.http import RequestBudget


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(http.time, "sleep", slept.append)
    return slept


def another_thread(budget: RequestBudget) -> None:
    other = threading.Thread(target=budget.acquire)
    other.start()
    other.join()


def test_a_reread_and_its_write_take_consecutive_slots(waits):
    budget = RequestBudget(1)   # one request a second
    with budget.back_to_back(2):
        budget.acquire()        # the re-read: now
        another_thread(budget)  # another writer's request comes meanwhile: it waits behind both
        budget.acquire()        # the write: one second after the re-read, not two
    assert waits == [pytest.approx(2, abs=0.2), pytest.approx(1, abs=0.2)]


def test_a_write_not_sent_gives_its_slot_back(waits):
    budget = RequestBudget(1)
    with budget.back_to_back(2):
        budget.acquire()        # the re-read shows an edit: no write
    budget.acquire()            # the next request takes the slot the write left
    assert waits == [pytest.approx(1, abs=0.2)]
