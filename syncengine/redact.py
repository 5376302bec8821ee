"""Secret redaction: values that must never reach a log line, an error message or the mirror.

``SECRETS.add(value)`` is called for every ``secret=True`` setting, and ``SECRETS.add_derived``
for what a connector computes or receives from one (a login hash, a session id, a token) at the
moment it has it — a CRM may echo it back in an error. Log handlers carry a
:class:`RedactingFilter`, error messages and run records pass through ``SECRETS.redact``.
"""
from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from typing import Any

#: Derived values kept at once: a daemon logs in every run, and the newest ones are those in use.
DERIVED_KEPT = 256


class Secrets:
    """Values that must never reach a log line, an error message or the mirror."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._derived: OrderedDict[str, None] = OrderedDict()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, value: Any) -> None:
        if _redactable(value) and value not in self._values:
            with self._lock:
                self._values.add(value)
                self._compile()

    def add_derived(self, value: Any) -> None:
        """A value made from a secret; only the newest ``DERIVED_KEPT`` are kept."""
        if not _redactable(value) or value in self._values:
            return
        with self._lock:
            self._derived[value] = None
            self._derived.move_to_end(value)
            while len(self._derived) > DERIVED_KEPT:
                self._derived.popitem(last=False)
            self._compile()

    def redact(self, text: str) -> str:
        pattern = self._pattern
        return pattern.sub("***", text) if pattern else text

    def _compile(self) -> None:
        values = sorted({*self._values, *self._derived}, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(v) for v in values))


def _redactable(value: Any) -> bool:
    return isinstance(value, str) and len(value) >= 4


SECRETS = Secrets()


class RedactingFilter(logging.Filter):
    """Installed on our log handlers: replaces every known secret with ***."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = SECRETS.redact(record.getMessage())
        record.args = ()
        return True
