"""Secret redaction: values that must never reach a log line, an error message or the mirror.

``SECRETS.add(value)`` is called for every ``secret=True`` setting; log handlers carry a
:class:`RedactingFilter`, and run records pass through ``SECRETS.redact``.
"""
from __future__ import annotations

import logging
import re
from typing import Any


class Secrets:
    """Values that must never reach a log line, an error message or the mirror."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: Any) -> None:
        if isinstance(value, str) and len(value) >= 4 and value not in self._values:
            self._values.add(value)
            self._pattern = re.compile("|".join(re.escape(v) for v in
                                                sorted(self._values, key=len, reverse=True)))

    def redact(self, text: str) -> str:
        return self._pattern.sub("***", text) if self._pattern else text


SECRETS = Secrets()


class RedactingFilter(logging.Filter):
    """Installed on our log handlers: replaces every known secret with ***."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = SECRETS.redact(record.getMessage())
        record.args = ()
        return True
