"""The one way connectors walk an offset-paged listing (page number or offset, a total, rows that
move while it is read), like dlt's paginators: the connector says how to fetch page N, this
module says when the listing ends and when it must be read again.

Offset paging skips a row when a row before it vanishes between two pages. The server's total
reveals it: when the total moves between pages, or the distinct rows read fall short of it, the
listing is read again from the first page (rows already yielded come again: consumers key by id),
and after ``restarts`` tries it fails as transient — an ended listing would delete what it missed.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import TransientError

log = logging.getLogger("syncengine.connectors")
Row = dict[str, Any]


@dataclass
class Page:
    """One page as the server sent it."""

    rows: list[Row]
    total: int | None = None   # the server's count of rows the listing matches, if it tells
    last: bool = False         # the server says no page follows (e.g. page >= number_of_pages)


def offset_pages(fetch: Callable[[int], Page], *, what: str, system: str, first: int = 0, before: int = 0,
                 key: Callable[[Row], Any] = lambda row: row["id"],
                 restarts: int | None = 3) -> Iterator[tuple[int, list[Row]]]:
    """(number, rows) of pages FIRST, FIRST+1, … until an empty or last page, or the total is read
    (BEFORE: the rows the pages before FIRST hold).

    ``restarts=None``: one pass, no total check (the caller checks completeness its own way, or
    reads only part of the listing: a read by id, or a listing resumed at page FIRST).
    """
    attempt = 0
    while True:
        seen: set[Any] = set()
        total: int | None = None
        moved = False
        read, number = before, first
        while True:
            page = fetch(number)
            if restarts is not None and total is not None and page.total not in (None, total):
                moved = True
                break
            total = page.total if page.total is not None else total
            if not page.rows:
                break
            seen.update(key(row) for row in page.rows)
            yield number, page.rows
            read += len(page.rows)
            if page.last or (total is not None and read >= total):
                break
            number += 1
        if restarts is None or not (moved or (total is not None and len(seen) < total)):
            return
        attempt += 1
        if attempt > restarts:
            raise TransientError(f"the {what} listing kept changing while it was read ({len(seen)} of {total} "
                                 "rows); nothing was deleted, the next pull reads it again", system=system)
        log.info("%s: %s listing changed while read (%d of %s rows); reading it again", system, what,
                 len(seen), total)
