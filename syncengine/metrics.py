"""What the daemon and the console export to Prometheus, built with ``prometheus_client``.

:class:`Metrics` holds the daemon's counters and gauges (one registry per daemon, so tests and
several daemons in one process never mix). :meth:`Metrics.watch` adds gauges read from the mirror
at scrape time: parked records, open conflicts, held deletes and each entity's freshness.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .config import Config
from .mirror import Mirror
from .serving import WsgiServer, mirror_state

prometheus_client.disable_created_metrics()  # *_created series double every counter for no reader of ours

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST

#: name -> (type, help, label names). Every metric the daemon counts itself.
METRICS: dict[str, tuple[type[Counter] | type[Gauge], str, tuple[str, ...]]] = {
    "syncengine_up": (Gauge, "1 while the daemon runs.", ()),
    "syncengine_daemon_start_time_seconds": (Gauge, "When this daemon started (Unix time).", ()),
    "syncengine_job_runs_total": (Counter, "Job runs finished by this daemon, by status (ok, warning, failed, "
                                           "stopped).", ("job", "status")),
    "syncengine_job_failures_total": (Counter, "Job runs that failed.", ("job",)),
    "syncengine_job_skipped_total": (Counter, "Scheduled runs not made here: overlap (previous run still going), "
                                              "locked (running in another daemon), done (another daemon already "
                                              "ran it).", ("job", "reason")),
    "syncengine_job_running": (Gauge, "1 while a run of the job is in progress in this daemon.", ("job",)),
    "syncengine_job_last_success_timestamp_seconds": (Gauge, "When the last successful run finished (Unix time).",
                                                      ("job",)),
    "syncengine_job_last_duration_seconds": (Gauge, "How long the last run took.", ("job",)),
    "syncengine_records_pulled_total": (Counter, "Records pulled into the mirror, by change (created, updated, "
                                                 "deleted, unchanged).", ("change", "entity", "system")),
    "syncengine_records_written_total": (Counter, "Writes made to a system by sync, by operation.", ("op", "system")),
    "syncengine_http_requests_total": (Counter, "HTTP requests sent to each system.", ("system",)),
    "syncengine_http_errors_total": (Counter, "HTTP requests to each system that failed, by error type (retried "
                                              "ones included).", ("error", "system")),
}


class Metrics:
    """The daemon's counters and gauges in their own registry; :meth:`render` gives the exposition text."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._metrics: dict[str, Any] = {name: kind(name, help_text, labels, registry=self.registry)
                                         for name, (kind, help_text, labels) in METRICS.items()}

    def inc(self, name: str, value: float = 1, **labels: Any) -> None:
        self._series(name, labels).inc(value)

    def set(self, name: str, value: float, **labels: Any) -> None:
        self._series(name, labels).set(value)

    def value(self, name: str, **labels: Any) -> float:
        found = self.registry.get_sample_value(name, {k: str(v) for k, v in labels.items()})
        return found or 0.0

    def watch(self, config: Config, mirror: Mirror) -> None:
        """Also export what the mirror holds: parked records, conflicts, held deletes, freshness."""
        self.registry.register(MirrorCollector(config, mirror))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def _series(self, name: str, labels: dict[str, Any]) -> Any:
        metric = self._metrics[name]
        return metric.labels(**{k: str(v) for k, v in labels.items()}) if labels else metric


class MirrorCollector(Collector):
    """Gauges read from the mirror on every scrape (a scrape every 15 s costs a few small queries)."""

    def __init__(self, config: Config, mirror: Mirror):
        self.config, self.mirror = config, mirror

    def collect(self) -> Iterator[Metric]:
        state = mirror_state(self.config, self.mirror)
        yield _gauge("syncengine_parked_records", "Records a sync could not carry, by mapping.", "mapping",
                     state.parked.items())
        yield _gauge("syncengine_open_conflicts", "Conflicts waiting for a decision, by mapping.", "mapping",
                     state.conflicts.items())
        yield _gauge("syncengine_held_deletes", "Deletes waiting for evidence or a decision, by entity.",
                     ("system", "entity"), state.held_deletes.items())
        yield _gauge("syncengine_entity_freshness_seconds", "Seconds since the entity's last successful pull.",
                     ("system", "entity"), state.freshness_seconds().items())


def _gauge(name: str, help_text: str, labels: str | tuple[str, ...],
           values: Iterable[tuple[Any, float]]) -> GaugeMetricFamily:
    """A gauge family; a key is a label value, or a tuple of them in the order of LABELS."""
    names = (labels,) if isinstance(labels, str) else labels
    family = GaugeMetricFamily(name, help_text, labels=list(names))
    for key, value in sorted(values):
        family.add_metric(list(key) if isinstance(key, tuple) else [key], value)
    return family


def monitoring_app(metrics: Metrics, problems: Callable[[], list[str]]) -> Callable[..., Any]:
    """A bare WSGI app: ``GET /metrics`` and ``GET /healthz`` (200 "ok", or 503 and one problem a line)."""
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            status, body, content_type = "200 OK", metrics.render(), CONTENT_TYPE
        elif path == "/healthz":
            status, body, content_type = health_answer(problems())
        else:
            status, body, content_type = "404 Not Found", b"try /metrics or /healthz\n", "text/plain; charset=utf-8"
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]

    return app


def health_answer(problems: list[str]) -> tuple[str, bytes, str]:
    """The status line and body of ``/healthz``."""
    text = "ok\n" if not problems else "".join(f"{p}\n" for p in problems)
    return ("200 OK" if not problems else "503 Service Unavailable"), text.encode(), "text/plain; charset=utf-8"


class MetricsServer:
    """``/healthz`` and ``/metrics`` on HOST:PORT (waitress, in a background thread)."""

    def __init__(self, metrics: Metrics, port: int, problems: Callable[[], list[str]] = lambda: [],
                 host: str = "127.0.0.1"):
        self.server = WsgiServer(monitoring_app(metrics, problems), host=host, port=port, name="metrics")

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> MetricsServer:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()
