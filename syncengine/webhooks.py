"""Receive SalesMan webhooks and record them as change hints in the mirror.

SalesMan POSTs ``{"event": "client.edit", "clid": "2", "newparam": {…}, …}`` (every value a string)
to each URL registered for an event in "Панель управления → Webhook". Payloads carry ids and diffs,
never whole records, so a webhook only names what changed: the receiver stores a hint
(``Mirror.add_hints``) and the next pull re-reads just those records with the connector's
``fetch``. Delivery is at-most-once and unsigned, so a pull without webhooks stays complete; hints
only make changes arrive sooner (and catch what the change dates miss: owner, stage, close,
requisites).

Register ``http://<this host>:<port>/<system>`` (the ``[systems.NAME]`` name) for the events you
want; with a single SalesMan system, ``/`` works too. Bind to a public interface only behind a
reverse proxy that restricts who may post: SalesMan signs nothing.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from .config import Config
from .jsonutil import dumpb, loads
from .serving import BackgroundServer

log = logging.getLogger("syncengine.webhooks")

MAX_BODY = 1 << 20
# event prefix -> (entity, key of the id in the payload)
EVENT_TARGETS = {"client": ("client", "clid"), "person": ("person", "pid"), "deal": ("deal", "did"),
                 "invoice": ("deal", "did"), "task": ("task", "id"), "lead": ("lead", "id")}

Sink = Callable[[str, str, Iterable[str]], None]  # (system, entity, ids)


def hint_for(payload: dict[str, Any]) -> tuple[str, str] | None:
    """``(entity, id)`` a SalesMan webhook payload names, or None when it names no record we read."""
    event = str(payload.get("event") or "")
    target = EVENT_TARGETS.get(event.split(".", 1)[0])
    if target is None:
        return None
    entity, key = target
    value = str(payload.get(key) or payload.get("tid" if entity == "task" else key) or "").strip()
    if not value.isdigit() or value == "0":  # person.delete fires even for pid "0"
        return None
    return entity, value


class WebhookReceiver:
    """Turns webhook requests into hints; ``handle`` is usable without an HTTP server."""

    def __init__(self, config: Config, sink: Sink | None = None):
        self.systems = [name for name, table in config.systems.items() if table.get("kind") == "salesman"]
        if sink is None:
            from .mirror import Mirror

            mirror = Mirror(config.mirror_url)
            sink = lambda system, entity, ids: mirror.add_hints(system, entity, ids, source="webhook")  # noqa: E731
        self.sink = sink
        self.received = 0
        self.hinted = 0
        self._lock = threading.Lock()

    def system_for(self, path: str) -> str | None:
        name = path.split("?", 1)[0].strip("/")
        if name in self.systems:
            return name
        if not name and len(self.systems) == 1:
            return self.systems[0]
        return None

    def handle(self, path: str, content_type: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON reply) for one delivery."""
        system = self.system_for(path)
        if system is None:
            known = ", ".join(f"/{s}" for s in self.systems) or "none configured"
            return 404, {"error": f"no SalesMan system at {path.split('?', 1)[0]}; post to one of: {known}"}
        payload = _payload(content_type, body)
        if payload is None:
            return 400, {"error": "expected a JSON object or a form-encoded body"}
        with self._lock:
            self.received += 1
        target = hint_for(payload)
        if target is None:
            return 200, {"ok": True, "hinted": 0}
        entity, remote_id = target
        self.sink(system, entity, [remote_id])
        with self._lock:
            self.hinted += 1
        log.info("%s: %s hint for %s %s", system, payload.get("event"), entity, remote_id)
        return 200, {"ok": True, "hinted": 1}


def _payload(content_type: str, body: bytes) -> dict[str, Any] | None:
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    try:
        value = loads(body or b"null")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class WebhookServer(BackgroundServer):
    """A :class:`WebhookReceiver` behind a threaded HTTP server; a context manager in tests."""

    thread_name = "webhooks"

    def __init__(self, config: Config, port: int = 0, host: str = "127.0.0.1", sink: Sink | None = None):
        self.receiver = WebhookReceiver(config, sink)
        super().__init__(_handler_for(self.receiver), port=port, host=host)


def _handler_for(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._reply(413, {"error": f"body over {MAX_BODY} bytes"})
                return
            body = self.rfile.read(length) if length else b""
            try:
                status, reply = receiver.handle(self.path, self.headers.get("Content-Type") or "", body)
            except Exception as exc:  # a mirror failure must reach the sender as a 5xx, not a hang
                log.error("webhook not recorded: %s", exc)
                status, reply = 500, {"error": "could not record the hint; see the receiver's log"}
            self._reply(status, reply)

        def do_GET(self) -> None:
            self._reply(200, {"systems": receiver.systems, "received": receiver.received,
                              "hinted": receiver.hinted})

        def _reply(self, status: int, reply: dict[str, Any]) -> None:
            data = dumpb(reply)
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
