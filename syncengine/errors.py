"""Typed errors. Each carries a message a person can act on; the CLI prints it as one line.

Retriable errors (``TransientError``, ``RateLimited``) are retried by the shared HTTP layer
(:mod:`syncengine.http`); everything else is fatal for the call that raised it.
"""
from __future__ import annotations

from collections.abc import Sequence

from .redact import SECRETS


class SyncEngineError(Exception):
    """Base of every error the engine reports to a user."""

    exit_code = 1


class UsageError(SyncEngineError):
    """The user asked for something that cannot work as given (exit code 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """A wrong value in a config or mapping file: names the file, the key and what to do.

    ``also``: the file's further problems, reported with the first, one line each.
    """

    def __init__(self, file: str, key: str | None, reason: str, *, also: Sequence[ConfigError] = ()):
        self.file, self.key, self.reason = file, key, reason
        self.problems = [self, *also]
        where = f"{file}: {key}" if key else file
        super().__init__("\n".join([f"{where}: {reason}", *(str(p) for p in also)]))


class ConnectorError(SyncEngineError):
    """An error talking to one configured system."""

    def __init__(self, message: str, *, system: str | None = None):
        self.system = system
        self.detail = message = SECRETS.redact(message)  # a CRM may echo what we sent
        super().__init__(f"{system}: {message}" if system else message)

    def for_system(self, system: str) -> ConnectorError:
        """Name the system in the message if the raiser did not know it."""
        if self.system is None:
            self.system = system
            self.args = (f"{system}: {self.detail}",)
        return self


class AuthError(ConnectorError):
    """Login refused or credentials missing; retrying will not help."""


class TransientError(ConnectorError):
    """5xx, timeout, dropped connection, broken JSON: worth retrying.

    ``request_sent=False`` means the server certainly did not act on the request (the connection
    was never made, or it answered 429): only then may a non-idempotent write be sent again.
    """

    def __init__(self, message: str, *, system: str | None = None, request_sent: bool = True):
        super().__init__(message, system=system)
        self.request_sent = request_sent


class RateLimited(TransientError):
    """The server asked us to slow down; ``retry_after`` seconds if it said so."""

    def __init__(self, message: str, *, retry_after: float | None = None, system: str | None = None):
        super().__init__(message, system=system, request_sent=False)
        self.retry_after = retry_after


class ValidationError(ConnectorError):
    """The CRM refused a write because of a value; ``field`` names it when the CRM did."""

    def __init__(self, message: str, *, field: str | None = None, errors: object = None,
                 system: str | None = None):
        super().__init__(message, system=system)
        self.field = field
        self.errors = errors


class NotFound(ConnectorError):
    """The record does not exist (or no longer does)."""


class Unsupported(ConnectorError):
    """The install cannot do this operation (e.g. a stock vtiger whose ``sync`` always fails)."""


class ProtocolError(ConnectorError):
    """The CRM answered something we cannot interpret (not retried: it will answer the same)."""


class MassDeleteRefused(SyncEngineError):
    """A sweep would delete more than the configured share of an entity."""
