"""Daemon metrics in the Prometheus text format, and the loopback HTTP endpoint that serves them.

No client library: a handful of counters and gauges keyed by labels, rendered on request.
``GET /healthz`` answers 200 while the daemon runs (503 once it is stopping); ``GET /metrics``
answers the exposition text.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from .serving import BackgroundServer

#: name -> (type, help). Every metric the daemon exports, in the order they are rendered.
METRICS: dict[str, tuple[str, str]] = {
    "syncengine_up": ("gauge", "1 while the daemon runs."),
    "syncengine_daemon_start_time_seconds": ("gauge", "When this daemon started (Unix time)."),
    "syncengine_job_runs_total": ("counter", "Job runs finished by this daemon, by status (ok, warning, failed, stopped)."),
    "syncengine_job_failures_total": ("counter", "Job runs that failed."),
    "syncengine_job_skipped_total": ("counter", "Scheduled runs not made here: overlap (previous run still going), locked (running in another daemon), done (another daemon already ran it)."),
    "syncengine_job_running": ("gauge", "1 while a run of the job is in progress in this daemon."),
    "syncengine_job_last_success_timestamp_seconds": ("gauge", "When the last successful run finished (Unix time)."),
    "syncengine_job_last_duration_seconds": ("gauge", "How long the last run took."),
    "syncengine_records_pulled_total": ("counter", "Records pulled into the mirror, by change (created, updated, deleted, unchanged)."),
    "syncengine_records_written_total": ("counter", "Writes made to a system by sync, by operation."),
    "syncengine_http_requests_total": ("counter", "HTTP requests sent to each system."),
    "syncengine_http_errors_total": ("counter", "HTTP requests to each system that failed, by error type (retried ones included)."),
}

Labels = tuple[tuple[str, str], ...]


class Metrics:
    """Thread-safe counters and gauges; :meth:`render` gives the Prometheus exposition text."""

    def __init__(self) -> None:
        self._values: dict[str, dict[Labels, float]] = {name: {} for name in METRICS}
        self._lock = threading.Lock()

    def inc(self, name: str, value: float = 1, **labels: Any) -> None:
        key = _labels(labels)
        with self._lock:
            series = self._values[name]
            series[key] = series.get(key, 0) + value

    def set(self, name: str, value: float, **labels: Any) -> None:
        with self._lock:
            self._values[name][_labels(labels)] = value

    def value(self, name: str, **labels: Any) -> float:
        with self._lock:
            return self._values[name].get(_labels(labels), 0)

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for name, (kind, help_text) in METRICS.items():
                lines.append(f"# HELP {name} {help_text}")
                lines.append(f"# TYPE {name} {kind}")
                for labels, value in sorted(self._values[name].items()):
                    text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                    number = _number(value)
                    lines.append(f"{name}{{{text}}} {number}" if text else f"{name} {number}")
        return "\n".join(lines) + "\n"


def _labels(labels: dict[str, Any]) -> Labels:
    return tuple(sorted((k, str(v)) for k, v in labels.items()))


def _number(value: float) -> str:
    """Full precision (``:g`` would turn a Unix time into 1.79536e+09)."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class MetricsServer(BackgroundServer):
    """``/healthz`` and ``/metrics`` on 127.0.0.1:PORT, in a background thread."""

    thread_name = "metrics"

    def __init__(self, metrics: Metrics, port: int, healthy: Callable[[], bool] = lambda: True,
                 host: str = "127.0.0.1"):
        self.metrics = metrics
        self.healthy = healthy
        super().__init__(_handler(self), port=port, host=host)


def _handler(server: MetricsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, server.metrics.render(), "text/plain; version=0.0.4; charset=utf-8")
            elif self.path == "/healthz":
                ok = server.healthy()
                self._send(200 if ok else 503, "ok\n" if ok else "stopping\n", "text/plain; charset=utf-8")
            else:
                self._send(404, "try /metrics or /healthz\n", "text/plain; charset=utf-8")

        def _send(self, status: int, text: str, content_type: str) -> None:
            body = text.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:  # scrapes every 15 s would flood the log
            pass

    return Handler

