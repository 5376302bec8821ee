"""``emulate``: run a bundled CRM emulator."""
from __future__ import annotations

import sys
from typing import Any

import click

from ..errors import UsageError
from .base import handles_errors


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("kind")
@click.option("--port", default=8000, show_default=True, help="Port on 127.0.0.1 (0 = any free port).")
@click.option("--records", default=1000, show_default=True, help="How many sample records to seed.")
@click.option("--name", default=None, help="System name in the printed TOML section (default: KIND).")
@click.option("--latency", default=0.0, help="Seconds added to every request.")
@click.option("--error-rate", default=0.0, help="Share of requests answered with HTTP 5xx.")
@click.option("--timeout-rate", default=0.0, help="Share of requests that hang, then drop.")
@click.option("--broken-json-rate", default=0.0, help="Share of answers cut in half.")
@click.option("--expire-rate", default=0.0, help="Share of requests before which sessions expire.")
@click.option("--rate-limit", default=0.0, help="Requests/second above which the server answers 429.")
@click.option("--seed", default=None, type=int, help="Random seed for the fault switches.")
@click.pass_context
@handles_errors
def emulate(ctx: click.Context, kind: str, port: int, records: int, name: str | None, latency: float,
            error_rate: float, timeout_rate: float, broken_json_rate: float, expire_rate: float,
            rate_limit: float, seed: int | None) -> None:
    """Serve a bundled CRM emulator on 127.0.0.1 until Ctrl-C.

    KIND is vtiger, salesplatform, simplycrm, alfacrm, rukovoditel or salesman. Emulator-specific
    options follow as --option-name VALUE (e.g. vtiger: --sync-broken true, --access-key KEY).

    \b
    Example:
      syncengine emulate vtiger --port 8081 --records 10000
      syncengine emulate salesplatform --error-rate 0.1 --sync-broken true
    """
    from .. import emulators

    if kind not in emulators.EMULATORS:
        raise UsageError(f"no emulator for {kind!r}; choose one of: {', '.join(emulators.EMULATORS)}")
    options = _extra_options(kind, ctx.args)
    faults = emulators.Faults(latency=latency, error_rate=error_rate, timeout_rate=timeout_rate,
                              broken_json_rate=broken_json_rate, expire_rate=expire_rate,
                              rate_limit=rate_limit, seed=seed)
    app = emulators.create_app(kind, records, **options)
    try:
        server = emulators.EmulatorServer(app, port=port, faults=faults)
    except OSError as exc:
        raise UsageError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}); pick another --port") from None
    click.echo(f"# {kind} emulator with {records} records on {server.url} (Ctrl-C stops it)")
    click.echo(f"# stats: {server.url}/__emulator__/stats")
    click.echo(app.toml_section(name or kind, server.url))
    sys.stdout.flush()
    server.serve_until_interrupted()


def _extra_options(kind: str, args: list[str]) -> dict[str, Any]:
    """``--access-key X --sync-broken true`` → typed keyword options of the emulator's create_app."""
    from .. import emulators

    accepted = emulators.app_options(kind)
    options: dict[str, Any] = {}
    it = iter(args)
    for arg in it:
        if not arg.startswith("--"):
            raise UsageError(f"unexpected argument {arg!r}")
        key, _, value = arg[2:].partition("=")
        key = key.replace("-", "_")
        if key not in accepted:
            names = ", ".join("--" + k.replace("_", "-") for k in accepted) or "none"
            raise UsageError(f"the {kind} emulator has no option --{key.replace('_', '-')}; options: {names}")
        if not value:
            following = next(it, None)
            if following is None:
                raise UsageError(f"--{key.replace('_', '-')} needs a value")
            value = following
        options[key] = _typed(value, accepted[key])
    return options


def _typed(value: str, default: Any) -> Any:
    if isinstance(default, bool) or (default is None and value.lower() in ("true", "false")):
        return value.lower() in ("1", "true", "yes", "on")
    for kind in (int, float):
        if isinstance(default, kind):
            return kind(value)
    return value


