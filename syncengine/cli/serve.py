"""Long-running servers: ``daemon`` and ``webhooks``."""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from datetime import UTC, datetime
from typing import Any

import click

from ..config import Config
from ..errors import UsageError
from ..jsonutil import dumps
from ..redact import RedactingFilter
from .base import handles_errors, needs_config


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message — for journald/Loki/ELK."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return dumps(entry)


def setup_daemon_logging(log_format: str, verbose: int) -> None:
    """INFO by default (a daemon should say what it does); APScheduler's own lines only on errors."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name, level in (("syncengine", logging.DEBUG if verbose > 1 else logging.INFO),
                        ("apscheduler", logging.ERROR)):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False



@click.command()
@click.option("--job", "jobs", multiple=True, help="Run only this job (repeatable; default: every job).")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              help="Serve /healthz and Prometheus /metrics on 127.0.0.1:PORT.")
@click.option("--webhooks-port", type=click.IntRange(0, 65535), default=None,
              help="Receive SalesMan webhooks on PORT (see docs/operations.md).")
@click.option("--webhooks-host", default="127.0.0.1", show_default=True,
              help="Interface for the webhook receiver (public only behind a reverse proxy).")
@click.option("--log-format", type=click.Choice(["plain", "json"]), default="plain", show_default=True,
              help="Log lines as plain text or one JSON object a line.")
@click.pass_context
@handles_errors
@needs_config
def daemon(ctx: click.Context, config: Config, jobs: tuple[str, ...], metrics_port: int | None,
           webhooks_port: int | None, webhooks_host: str, log_format: str) -> None:
    """Run the [[jobs]] of sync.toml on their schedules until SIGTERM or Ctrl-C.

    A run never overlaps the previous run of the same job; with a PostgreSQL mirror, several
    daemons share the jobs and each run happens in exactly one of them. SIGTERM/SIGINT let the
    current batch commit, then exit 0 (a second signal exits at once).

    \b
    Example:
      syncengine daemon --metrics-port 9464 --log-format json
      curl -s 127.0.0.1:9464/metrics | grep syncengine_job_runs_total
    """
    from ..metrics import MetricsServer
    from ..scheduler import Daemon
    from ..serving import health_problems

    setup_daemon_logging(log_format, ctx.find_root().params.get("verbose") or 0)
    log = logging.getLogger("syncengine.daemon")
    if not config.jobs:
        raise UsageError(f"{config.path} has no [[jobs]]; add one with a name, cron or every, "
                         "and pull and/or mappings (see `syncengine init`)")
    runner = Daemon(config, jobs=list(jobs) or None)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if stop.is_set():
            log.warning("second %s: exiting now", signal.Signals(signum).name)
            os._exit(1)
        log.info("%s: finishing the current batch, then exiting", signal.Signals(signum).name)
        runner.stopping.set()
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    servers: list[Any] = []
    try:
        runner.metrics.watch(config, runner.mirror)
        if metrics_port is not None:
            servers.append(_listen("--metrics-port", metrics_port, lambda: MetricsServer(
                runner.metrics, metrics_port, lambda: health_problems(config, runner.mirror, alive=runner.healthy))))
            log.info("metrics on %s/metrics, health on %s/healthz", servers[-1].url, servers[-1].url)
        if config.ui is not None:  # the console beside the daemon, on the same mirror and metrics
            from ..console import start_console

            servers.append(start_console(config, config.ui, mirror=runner.mirror, metrics=runner.metrics,
                                         alive=runner.healthy))
            log.info("console on %s", servers[-1].url)
        if webhooks_port is not None:
            from ..webhooks import WebhookServer

            def hint(system: str, entity: str, ids: Any) -> None:
                runner.mirror.add_hints(system, entity, ids, source="webhook")

            servers.append(_listen("--webhooks-port", webhooks_port, lambda: WebhookServer(
                config, webhooks_port, host=webhooks_host, sink=hint)))
            log.info("SalesMan webhooks on %s", servers[-1].url)
        runner.start()
        log.info("daemon %s started with %d job(s)", runner.name, len(runner.jobs))
        while not stop.wait(1.0):
            pass
        runner.stop(wait=True)
        log.info("daemon stopped")
    finally:
        for server in servers:
            server.stop()


def _listen(option: str, port: int, make: Any) -> Any:
    try:
        return make().start()
    except OSError as exc:
        raise UsageError(f"{option} {port}: cannot listen ({exc.strerror}); pick another port") from None



@click.command()
@click.option("--port", default=8765, show_default=True, help="Port to listen on.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 to accept SalesMan's calls from outside; put TLS in front).")
@handles_errors
@needs_config
def webhooks(config: Config, port: int, host: str) -> None:
    """Receive SalesMan webhooks as change hints; the next pull re-reads just those records.

    \b
    Example:
      syncengine webhooks --port 8765     # then register http://HOST:8765/SYSTEM in SalesMan
    """
    from ..webhooks import WebhookServer

    try:
        server = WebhookServer(config, port, host)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port") from None
    if not server.receiver.systems:
        raise UsageError(f"{config.path}: no system of kind salesman is configured; webhooks have nowhere to go")
    for name in server.receiver.systems:
        click.echo(f"{name}: register {server.url}/{name} in SalesMan (Панель управления → Webhook)")
    server.serve_until_interrupted()


