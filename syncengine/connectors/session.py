"""The login of one system, shared by all threads of a run (like the Airbyte CDK's token
authenticator): made once, renewed once when it expires or the server refuses it, and a refused
login remembered — a real CRM locks an account after a few failed logins, so a run never tries
the same wrong credentials twice.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from ..errors import AuthError

T = TypeVar("T")


class SessionCache(Generic[T]):
    """A session (token, session id, logged-in user) from ``login()``, renewed at most once per expiry.

    ``max_age``: seconds after which the session is renewed before use (None: only when dropped).
    """

    def __init__(self, login: Callable[[], T], *, max_age: float | None = None):
        self._login = login
        self.max_age = max_age
        self._value: T | None = None
        self._made = 0.0
        self._refused: AuthError | None = None
        self._lock = threading.RLock()   # a login may report its own refusal (refuse)

    @property
    def current(self) -> T | None:
        """The session if one is held (no login is made)."""
        return self._value

    def get(self) -> T:
        """The live session, logging in first when there is none (one thread logs in, the rest wait)."""
        value = self._value
        if value is not None and self._fresh():
            return value
        with self._lock:
            self.raise_if_refused()
            if self._value is None or not self._fresh():
                try:
                    self._value = self._login()
                except AuthError as exc:
                    self._refused = exc
                    raise
                self._made = time.monotonic()
            return self._value

    def drop(self, value: T) -> None:
        """The server no longer accepts VALUE: the next ``get`` logs in again (once, whoever asks)."""
        with self._lock:
            if self._value is value:
                self._value = None

    def refuse(self, error: AuthError) -> AuthError:
        """Remember a refusal seen outside ``login`` (APIs that send credentials with every call)."""
        with self._lock:
            self._refused = self._refused or error
            self._value = None
        return error

    def raise_if_refused(self) -> None:
        if self._refused is not None:
            raise AuthError(self._refused.detail, system=self._refused.system)

    def _fresh(self) -> bool:
        return self.max_age is None or time.monotonic() - self._made < self.max_age
