"""The one HTTP layer every connector uses: retries with backoff, Retry-After, a request budget,
request counting and secret-free error messages.

Connectors pass a ``parse`` function that turns a :class:`requests.Response` into a result or
raises a typed error (:mod:`syncengine.errors`); :meth:`HttpClient.request` retries the whole
exchange on :class:`TransientError` (5xx, timeouts, dropped connections, broken JSON) and
:class:`RateLimited` (honouring ``Retry-After``), and gives up with the last error.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from .errors import ConnectorError, ProtocolError, RateLimited, TransientError
from .jsonutil import JSONDecodeError, loads

log = logging.getLogger("syncengine.http")
T = TypeVar("T")


class RequestBudget:
    """At most ``per_second`` requests per second across all threads of one system."""

    def __init__(self, per_second: float | None):
        self.interval = 1.0 / per_second if per_second else 0.0
        self._next = 0.0
        self._lock = threading.Lock()
        self._held = threading.local()  # slots this thread reserved with back_to_back

    def acquire(self) -> None:
        if not self.interval:
            return
        slots: list[float] = getattr(self._held, "slots", [])
        if slots:
            start = slots.pop(0)
        else:
            with self._lock:
                start = max(time.monotonic(), self._next)
                self._next = start + self.interval
        now = time.monotonic()
        if start > now:
            time.sleep(start - now)

    @contextmanager
    def back_to_back(self, count: int) -> Iterator[None]:
        """The next COUNT requests of this thread take COUNT consecutive slots, so none of them waits
        behind another thread's: a re-read and the write it guards stay one interval apart at most.
        Slots left unused are given back when no one has reserved after them."""
        if not self.interval:
            yield
            return
        with self._lock:
            start = max(time.monotonic(), self._next)
            self._next = start + count * self.interval
        self._held.slots = [start + i * self.interval for i in range(count)]
        try:
            yield
        finally:
            unused: list[float] = self._held.slots
            self._held.slots = []
            with self._lock:
                if unused and self._next == unused[-1] + self.interval:
                    self._next = unused[0]


class HttpClient:
    """A keep-alive session to one system, with its budget, retries and counters."""

    def __init__(self, system: str, *, rate_limit: float | None = None, timeout: float = 30,
                 retries: int = 5, backoff: float = 0.25, max_backoff: float = 30,
                 verify: bool | str = True, pool_size: int = 8):
        self.system = system
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.budget = RequestBudget(rate_limit)
        self.counts: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        self._unresolved: dict[str, ConnectorError] = {}   # host -> why: asked once per run
        self.session = requests.Session()
        self.session.verify = verify
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=pool_size)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = "syncengine"

    @property
    def total_requests(self) -> int:
        return sum(self.counts.values())

    def request(self, method: str, url: str, *, op: str, parse: Callable[[requests.Response], T],
                retry: bool = True, idempotent: bool = True, **kwargs: Any) -> T:
        """Send one logical request; retried on transient failures unless ``retry=False``.

        A non-idempotent request (a create) is retried only when the server certainly did not
        act on it; otherwise its TransientError reaches the caller, whose outbox finds out later
        whether the write happened — a blind retry could create the record twice.
        """
        attempts = self.retries + 1 if retry else 1

        def retriable(exc: BaseException) -> bool:
            return isinstance(exc, TransientError) and (idempotent or not exc.request_sent)

        retrying = Retrying(retry=retry_if_exception(retriable),
                            stop=stop_after_attempt(attempts), wait=self._wait, reraise=True,
                            before_sleep=self._log_retry)
        for attempt in retrying:
            with attempt:
                return self._send(method, url, op, parse, kwargs)
        raise AssertionError("unreachable")

    def _send(self, method: str, url: str, op: str, parse: Callable[[requests.Response], T],
              kwargs: dict[str, Any]) -> T:
        host = urlsplit(url).hostname or ""
        if host in self._unresolved:
            raise self._unresolved[host]
        self.budget.acquire()
        with self._count_lock:
            self.counts[op] += 1
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
            if response.status_code == 429:
                raise RateLimited(f"rate limited (HTTP 429) on {op}",
                                  retry_after=_retry_after(response), system=self.system)
            return parse(response)
        except requests.Timeout:
            error: Exception = TransientError(f"no answer within {self.timeout:g}s ({op})", system=self.system)
        except requests.ConnectionError as exc:
            if _unresolved(exc):  # a name that does not resolve now will not resolve in a second
                error = self._unresolved.setdefault(host, ConnectorError(
                    f"cannot reach {origin(url)}: the host name does not resolve; check url "
                    "(and this machine's DNS)", system=self.system))
                raise error from None
            error = TransientError(f"cannot reach {origin(url)} ({_reason(exc)})", system=self.system,
                                   request_sent=not _never_connected(exc))
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError):
            error = TransientError(f"the answer to {op} broke off mid-way", system=self.system)
        except requests.RequestException as exc:  # a malformed URL and the like: retrying cannot help
            raise ProtocolError(f"cannot send {op} to {origin(url)} ({type(exc).__name__}); check url",
                                system=self.system) from None
        except TransientError as exc:
            error = exc.for_system(self.system)
        with self._count_lock:
            self.errors[type(error).__name__] += 1
        raise error

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            return min(exc.retry_after, self.max_backoff)
        return min(self.backoff * 2 ** (state.attempt_number - 1), self.max_backoff)

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.info("%s: retrying after %s (attempt %d)", self.system, exc, state.attempt_number)

    def close(self) -> None:
        self.session.close()


def json_body(response: requests.Response, system: str | None = None) -> Any:
    """The JSON of an answer; a 5xx or an unreadable body is transient."""
    if response.status_code >= 500:
        raise TransientError(f"HTTP {response.status_code} from the server", system=system)
    try:
        return loads(response.content)
    except JSONDecodeError:
        raise TransientError(f"unreadable JSON in an HTTP {response.status_code} answer "
                             f"({len(response.content)} bytes)", system=system) from None


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def origin(url: str) -> str:
    """scheme://host[:port] of a URL: what an error may show of it (never a path, query or password)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def _never_connected(exc: requests.ConnectionError) -> bool:
    """True when no byte of the request can have reached the server."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))


def _unresolved(exc: requests.ConnectionError) -> bool:
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NameResolutionError)


def _reason(exc: requests.ConnectionError) -> str:
    text = str(exc)
    for hint in ("Connection refused", "Name or service not known", "timed out",
                 "Connection reset", "Remote end closed", "certificate verify failed",
                 "Connection aborted"):
        if hint in text:
            return hint.lower()
    return "connection failed"
