"""What every CRM emulator shares: the HTTP server, fault injection, latency, stats and test hooks.

A CRM emulator is an :class:`EmulatorApp` subclass that turns a :class:`Request` into a
:class:`Response` and keeps its own state. :class:`EmulatorServer` serves it on 127.0.0.1 and adds,
in front of every CRM request:

* added latency, a share of HTTP 5xx answers, hung requests (timeouts), truncated JSON bodies,
  expired sessions, and HTTP 429 with ``Retry-After`` above a request rate (:class:`Faults`);
* ``GET /__emulator__/stats`` → ``{"requests": {"<operation>": n}, "total": n}``;
* ``POST /__emulator__/faults`` (JSON fields of :class:`Faults`) to change faults at run time,
  and ``POST /__emulator__/fail-next`` (``{"count": n, "operation": op, "after": bool}``) to
  fail on command;
* ``POST /__emulator__/<action>`` (JSON body) → ``app.control(action, payload)``, the
  emulator-side way to edit, delete and restore records as a UI user would.

Keep-alive is fast: the handler disables Nagle and buffers its writes, otherwise every request
waits ~40 ms for a delayed ACK and benchmarks measure the emulator (see shared/NOTES.md).
"""
from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from http.server import BaseHTTPRequestHandler
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from ..jsonutil import dumps, loads
from ..serving import BackgroundServer

CONTROL_PREFIX = "/__emulator__/"
T = TypeVar("T")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON, or None when it is not JSON."""
        try:
            return loads(self.body) if self.body else None
        except ValueError:
            return None

    def param(self, name: str) -> str | None:
        """A parameter from the query string or, failing that, the form body (PHP's $_REQUEST)."""
        return self.query.get(name, self.form.get(name))


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, value: Any, status: int = 200, *, ensure_ascii: bool = False,
             escape_slashes: bool = False, content_type: str = "application/json",
             headers: dict[str, str] | None = None) -> Response:
        """Serialise like PHP when asked: ``\\uXXXX`` escapes and ``\\/``."""
        text = dumps(value, ascii_only=ensure_ascii)
        if escape_slashes:
            text = text.replace("/", "\\/")
        return cls(status, text.encode("utf-8"), content_type, headers or {})

    @classmethod
    def empty(cls, status: int = 500, content_type: str = "text/html; charset=UTF-8") -> Response:
        """A PHP fatal: no body at all."""
        return cls(status, b"", content_type)

    @classmethod
    def html(cls, text: str, status: int = 200) -> Response:
        return cls(status, text.encode("utf-8"), "text/html; charset=UTF-8")


@dataclass
class Faults:
    """Failure switches. Rates are shares of CRM requests (0.0 … 1.0)."""

    latency: float = 0.0          # seconds added to every CRM request
    error_rate: float = 0.0       # answered by app.fault_response() (HTTP 5xx)
    timeout_rate: float = 0.0     # request hangs for hang_seconds, then the connection closes
    broken_json_rate: float = 0.0  # a normal answer cut in half
    expire_rate: float = 0.0      # sessions/tokens expire just before the request
    rate_limit: float = 0.0       # requests per second above which the server answers 429
    retry_after: int = 1          # seconds announced in Retry-After
    hang_seconds: float = 3.0
    seed: int | None = None

    def update(self, values: dict[str, Any]) -> None:
        names = {f.name for f in fields(self)}
        for key, value in values.items():
            if key not in names:
                raise ValueError(f"unknown fault switch {key!r}; known: {', '.join(sorted(names))}")
            setattr(self, key, value)


def page_of(rows: Sequence[T], page: int, size: int) -> list[T]:
    """0-based PAGE of SIZE rows, as ``LIMIT size OFFSET page*size`` reads it: empty past the end,
    and recomputed on every request, so rows that move between requests shift across pages."""
    return list(rows[page * size:(page + 1) * size])


class Clock:
    """A server clock that tests freeze, move or give back to real time (every ``clock`` hook)."""

    def __init__(self) -> None:
        self.frozen: float | None = None   # epoch seconds while frozen
        self.offset = 0.0                  # seconds added to real time otherwise

    def now(self) -> float:
        return self.frozen if self.frozen is not None else time.time() + self.offset

    def set(self, *, at: float | None = None, advance: float = 0.0, real: bool = False) -> float:
        """Back to real time (``real``), then frozen ``at`` an epoch, then moved by ``advance``."""
        if real:
            self.frozen, self.offset = None, 0.0
        if at is not None:
            self.frozen = float(at)
        if self.frozen is not None:
            self.frozen += advance
        else:
            self.offset += advance
        return self.now()


@dataclass(frozen=True)
class HiddenRows:
    """Rows that listings leave out for a while (:meth:`EmulatorApp.control_hide_rows`).

    A row is hidden when its id is named or when a hash of ``seed`` and its id falls under
    ``share``: the same rows stay hidden on every page and every listing, as with an API whose
    total lies or whose page comes back short and is re-fetched the same way."""

    share: float
    ids: frozenset[str]
    entities: frozenset[str]  # casefolded names; empty: every entity
    seed: int
    by_id: bool = False       # reads by id miss them too (a re-fetch that agrees with the short page)

    def hides(self, row_id: Any) -> bool:
        key = str(row_id)
        if key in self.ids:
            return True
        return self.share > 0 and zlib.crc32(f"{self.seed}:{key}".encode()) / 2**32 < self.share

    def applies_to(self, names: tuple[str, ...]) -> bool:
        return not self.entities or any(str(n).casefold() in self.entities for n in names)


class EmulatorApp:
    """One CRM's API. Subclasses implement :meth:`handle` and :meth:`operation`."""

    kind = "base"
    workers: int | None = None  # requests served at once, as a PHP server's worker processes; None: no limit

    def __init__(self) -> None:
        self.lock = threading.RLock()  # guards the app's state; handlers run in threads
        self.hidden_rows: HiddenRows | None = None
        self._hidden_listings: int | None = None  # listing requests the hiding lasts; None: until shown

    def handle(self, request: Request) -> Response:
        raise NotImplementedError

    def operation(self, request: Request) -> str:
        """The name counted in the stats for this request (e.g. vtiger's ``operation`` value)."""
        return request.path

    def fault_response(self) -> Response:
        """What an injected server error looks like for this CRM."""
        return Response.empty(500)

    def rate_limited_response(self, retry_after: int) -> Response:
        return Response.json({"error": "Too Many Requests"}, 429,
                             headers={"Retry-After": str(retry_after)})

    def expire_sessions(self) -> None:
        """Forget every session/token, as a server-side expiry would."""

    def control(self, action: str, payload: dict[str, Any]) -> Any:
        """Test hooks over HTTP: ``POST /__emulator__/<action>`` calls ``control_<action>(**payload)``."""
        method = getattr(self, f"control_{action.replace('-', '_')}", None)
        if method is None:
            raise KeyError(action)
        with self.lock:
            return method(**payload)

    def toml_section(self, name: str, url: str) -> str:
        """A ready ``[systems.NAME]`` section for connecting to this emulator."""
        raise NotImplementedError

    # -- rows that listings leave out (issue 12: a glitch below the mass-delete breaker) ------

    def control_hide_rows(self, share: float = 0.0, ids: list[Any] | None = None, listings: int | None = 1,
                          entity: str | list[str] | None = None, seed: int = 0,
                          by_id: bool = False) -> dict[str, Any]:
        """Leave rows out of the next LISTINGS listing requests (None: until ``show_rows``).

        ``share`` hides that fraction of rows (a stable choice per ``seed``), ``ids`` names rows
        by the id the API shows; ``entity`` limits it to one entity (module, model) or a list.
        A listing request is one page of a listing; a read filtered by id is not one, and still
        finds every row unless ``by_id`` (then it counts as a listing too). Totals count only
        the rows shown."""
        if not 0.0 <= float(share) <= 1.0:
            raise ValueError("share must be between 0 and 1")
        if listings is not None and int(listings) < 1:
            raise ValueError("listings must be at least 1 (or null: until show_rows)")
        names = [entity] if isinstance(entity, str) else list(entity or [])
        self.hidden_rows = HiddenRows(float(share), frozenset(str(i) for i in ids or ()),
                                      frozenset(str(n).casefold() for n in names), int(seed), bool(by_id))
        self._hidden_listings = None if listings is None else int(listings)
        return {"share": float(share), "ids": sorted(self.hidden_rows.ids), "listings": self._hidden_listings}

    def control_show_rows(self) -> int | None:
        """End a ``hide_rows``; returns the listings it had left."""
        left, self.hidden_rows, self._hidden_listings = self._hidden_listings, None, None
        return left

    def hides(self, row_id: Any, entity: str | None = None) -> bool:
        """Whether the current ``hide_rows`` hides this row (for tests that count what vanished)."""
        hidden = self.hidden_rows
        if hidden is None or (entity is not None and not hidden.applies_to((entity,))):
            return False
        return hidden.hides(row_id)

    def listing_filter(self, *entity: str, by_id: bool = False) -> Callable[[Any], bool] | None:
        """Called once by each listing request of ENTITY (its names; ``by_id``: a read filtered by
        id): the ``hides(id)`` test to apply to its rows before paging, or None. Counts the
        request against ``listings``."""
        hidden = self.hidden_rows
        if hidden is None or not hidden.applies_to(entity) or (by_id and not hidden.by_id):
            return None
        if self._hidden_listings is not None:
            self._hidden_listings -= 1
            if self._hidden_listings <= 0:
                self.hidden_rows, self._hidden_listings = None, None
        return hidden.hides


class EmulatorServer(BackgroundServer):
    """Serve an :class:`EmulatorApp` on 127.0.0.1; usable as a context manager in tests."""

    def __init__(self, app: EmulatorApp, *, port: int = 0, host: str = "127.0.0.1",
                 faults: Faults | None = None):
        self.app = app
        self.thread_name = f"emulator-{app.kind}"
        self.faults = faults or Faults()
        self.stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        self._random = random.Random(self.faults.seed)
        self._window: list[float] = []  # request times in the last second, for rate_limit
        self._fail_next: list[tuple[str | None, int, bool]] = []  # (operation or None, count, after)
        self._after: list[tuple[str, int, Callable[[], Any]]] = []  # (operation, requests to go, action)
        self._workers = threading.BoundedSemaphore(app.workers) if app.workers else None
        self._in_flight = 0
        self.peak_in_flight = 0  # most CRM requests served at the same moment
        super().__init__(_handler_for(self), port=port, host=host)

    def fail_next(self, count: int = 1, operation: str | None = None, *, after: bool = False) -> None:
        """Answer the next COUNT requests (of OPERATION, or any) with the CRM's server error.

        ``after=True``: carry the request out first, then lose the answer (cut it in half), as a
        proxy timing out on a write the CRM did commit.
        """
        with self._stats_lock:
            self._fail_next.append((operation, count, after))

    def after_request(self, operation: str, action: Callable[[], Any], *, nth: int = 1) -> None:
        """Run ACTION once, right after the NTH request of OPERATION from now is carried out and
        before it is answered: a CRM user's edit landing between two requests of the engine."""
        with self._stats_lock:
            self._after.append((operation, int(nth), action))

    def _run_after(self, operation: str) -> None:
        due = []
        with self._stats_lock:
            waiting = []
            for op, left, action in self._after:
                if op == operation and left <= 1:
                    due.append(action)
                else:
                    waiting.append((op, left - (op == operation), action))
            self._after = waiting
        for action in due:
            action()

    def _take_failure(self, operation: str) -> bool | None:
        """None: no failure due; else whether it comes after handling."""
        with self._stats_lock:
            for i, (op, count, after) in enumerate(self._fail_next):
                if op is None or op == operation:
                    if count <= 1:
                        del self._fail_next[i]
                    else:
                        self._fail_next[i] = (op, count - 1, after)
                    return after
        return None

    def reset_stats(self) -> None:
        with self._stats_lock:
            self.stats.clear()

    def stats_json(self) -> dict[str, Any]:
        with self._stats_lock:
            return {"requests": dict(self.stats), "total": sum(self.stats.values())}

    # -- request pipeline -------------------------------------------------------------------

    def dispatch(self, request: Request) -> Response | None:
        """Answer one request; None means: drop the connection without an answer."""
        if request.path.startswith(CONTROL_PREFIX):
            return self._control(request)
        if self._workers:
            self._workers.acquire()
        with self._stats_lock:
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        try:
            return self._serve(request)
        finally:
            with self._stats_lock:
                self._in_flight -= 1
            if self._workers:
                self._workers.release()

    def _serve(self, request: Request) -> Response | None:
        operation = self.app.operation(request)
        with self._stats_lock:
            self.stats[operation] += 1
        failure = self._take_failure(operation)
        if failure is False:
            return self.app.fault_response()
        if failure:
            response = self.app.handle(request)
            response.body = response.body[: len(response.body) // 2]
            return response
        f = self.faults
        if f.latency:
            time.sleep(f.latency)
        if f.rate_limit and self._over_rate(f.rate_limit):
            return self.app.rate_limited_response(f.retry_after)
        roll = self._roll
        if roll(f.timeout_rate):
            time.sleep(f.hang_seconds)
            return None
        if roll(f.error_rate):
            return self.app.fault_response()
        if roll(f.expire_rate):
            with self.app.lock:
                self.app.expire_sessions()
        response = self.app.handle(request)
        self._run_after(operation)
        if roll(f.broken_json_rate) and response.body:
            response.body = response.body[: len(response.body) // 2]
        return response

    def _roll(self, rate: float) -> bool:
        return rate > 0 and self._random.random() < rate

    def _over_rate(self, per_second: float) -> bool:
        now = time.monotonic()
        with self._stats_lock:
            self._window = [t for t in self._window if now - t < 1.0]
            if len(self._window) >= per_second:
                return True
            self._window.append(now)
            return False

    def _control(self, request: Request) -> Response:
        action = request.path[len(CONTROL_PREFIX):].strip("/")
        if request.method == "GET" and action == "stats":
            return Response.json(self.stats_json())
        payload = request.json() or {}
        try:
            if action == "faults":
                self.faults.update(payload)
                return Response.json({"faults": self.faults.__dict__})
            if action == "reset-stats":
                self.reset_stats()
                return Response.json({"ok": True})
            if action == "fail-next":
                self.fail_next(int(payload.get("count", 1)), payload.get("operation"),
                               after=bool(payload.get("after", False)))
                return Response.json({"ok": True})
            result = self.app.control(action, payload)
        except KeyError as exc:
            return Response.json({"error": f"unknown control action {exc}"}, 404)
        except (TypeError, ValueError) as exc:
            return Response.json({"error": str(exc)}, 400)
        return Response.json({"ok": True, "result": result})


def _handler_for(server: EmulatorServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        wbufsize = -1  # buffered: headers and body leave in one send
        server_version = "Apache"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            ctype = (self.headers.get("Content-Type") or "").lower()
            form: dict[str, str] = {}
            if ctype.startswith("application/x-www-form-urlencoded") and body:
                form = _flat(parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True))
            request = Request(
                method=self.command, path=parts.path,
                query=_flat(parse_qs(parts.query, keep_blank_values=True)), form=form,
                headers={k.lower(): v for k, v in self.headers.items()}, body=body)
            try:
                response = server.dispatch(request)
            except Exception as exc:  # an emulator bug must not look like a hang
                response = Response.json({"emulator_error": repr(exc)}, 599)
            if response is None:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(response.body)
            self.wfile.flush()

        do_GET = do_POST = do_PUT = do_DELETE = _serve

    return Handler


def _flat(values: dict[str, list[str]]) -> dict[str, str]:
    """PHP keeps the last value of a repeated parameter."""
    return {k: v[-1] for k, v in values.items()}
