"""``sync.toml``: the mirror, the systems and the jobs, validated before anything runs.

Values may reference the environment as ``${VAR}`` (the way to pass secrets). Every problem of
a file is reported at once, as a :class:`ConfigError` naming the file, each key and what to do.
"""
from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa

from .connectors import KINDS, connector_class
from .errors import ConfigError
from .redact import SECRETS
from .types import Setting

DEFAULT_CONFIG = "sync.toml"
DEFAULT_MIRROR = "sqlite:///syncengine.db"
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


@dataclass
class Job:
    name: str
    cron: str | None = None
    every: timedelta | None = None
    pull: list[str] = field(default_factory=list)      # "system" or "system:Entity"
    mappings: list[str] = field(default_factory=list)  # names of mappings/*.toml


@dataclass
class UiSettings:
    """``[ui]``: where the operator's console listens; a password is required beyond loopback."""
    bind: str = "127.0.0.1"
    port: int = 8470
    password: str | None = None


@dataclass
class HealthSettings:
    """``[health]``: when ``/healthz`` answers 503."""
    failed_runs: int = 3                                       # a job failing this many times in a row
    stale_after: timedelta = timedelta(hours=24)               # an entity not pulled successfully for this long


@dataclass
class Config:
    path: Path
    mirror_url: str
    systems: dict[str, dict[str, Any]]
    jobs: list[Job]
    mappings_dir: Path
    ui: UiSettings | None = None  # None: no [ui] table, the daemon serves no console
    health: HealthSettings = field(default_factory=HealthSettings)

    def system(self, name: str) -> dict[str, Any]:
        if name not in self.systems:
            known = ", ".join(self.systems) or "none"
            raise ConfigError(str(self.path), f"systems.{name}",
                              f"no such system (configured: {known})")
        return self.systems[name]

    def job(self, name: str) -> Job:
        for job in self.jobs:
            if job.name == name:
                return job
        raise ConfigError(str(self.path), "jobs", f"no job named {name!r} "
                          f"(configured: {', '.join(j.name for j in self.jobs) or 'none'})")


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--config, else $SYNCENGINE_CONFIG, else ./sync.toml."""
    return Path(explicit or os.environ.get("SYNCENGINE_CONFIG") or DEFAULT_CONFIG)


def parse_duration(text: str, *, file: str = "", key: str = "") -> timedelta:
    """``90s``, ``15m``, ``6h``, ``1d`` (a bare number is seconds)."""
    match = _DURATION.match(str(text))
    if not match:
        raise ConfigError(file, key, f"{text!r} is not a duration; write e.g. 30s, 15m, 6h or 1d")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    path = config_path(path)
    file = str(path)
    if not path.is_file():
        raise ConfigError(file, None, "file not found; create one with `syncengine init` "
                          "or point --config / SYNCENGINE_CONFIG at yours")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, None, f"not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(file, None, "not UTF-8 text") from None
    _check_keys(file, "", raw, {"mirror", "systems", "jobs", "mappings_dir", "ui", "health"})
    raw = _expand_env(raw, file, "")
    problems = _Problems()

    url = DEFAULT_MIRROR
    with problems.collect():
        mirror = raw.get("mirror", {})
        _require_table(file, "mirror", mirror)
        _check_keys(file, "mirror.", mirror, {"url"})
        url = _anchor_sqlite(_mirror_url(file, mirror.get("url", DEFAULT_MIRROR)), path.parent)

    systems: dict[str, dict[str, Any]] = {}
    systems_raw = raw.get("systems", {})
    with problems.collect():
        _require_table(file, "systems", systems_raw)
        for name, table in systems_raw.items():
            with problems.collect():
                systems[name] = _system(file, name, table, problems)

    jobs: list[Job] = []
    with problems.collect():
        jobs_raw = raw.get("jobs", [])
        if not isinstance(jobs_raw, list):
            raise ConfigError(file, "jobs", "must be an array of tables: write [[jobs]] sections")
        for i, table in enumerate(jobs_raw):
            with problems.collect():
                jobs.append(_job(file, i, table, set(systems_raw) if isinstance(systems_raw, dict) else set()))
    seen: set[str] = set()
    for job in jobs:
        if job.name in seen:
            problems.add(ConfigError(file, "jobs", f"two jobs are named {job.name!r}; names must be unique"))
        seen.add(job.name)

    mappings_dir = Path("mappings")
    with problems.collect():
        if not isinstance(raw.get("mappings_dir", "mappings"), str):
            raise ConfigError(file, "mappings_dir", 'must be a path, e.g. mappings_dir = "mappings"')
        mappings_dir = Path(raw.get("mappings_dir", "mappings"))
        if not mappings_dir.is_absolute():
            mappings_dir = path.parent / mappings_dir
    ui, health = None, HealthSettings()
    with problems.collect():
        ui = _ui(file, raw["ui"]) if "ui" in raw else None
    with problems.collect():
        health = _health(file, raw.get("health", {}))
    problems.raise_any()
    return Config(path=path, mirror_url=url, systems=systems, jobs=jobs, mappings_dir=mappings_dir,
                  ui=ui, health=health)


class _Problems:
    """Every problem of one file, so a user fixes them all in one go."""

    def __init__(self) -> None:
        self.found: list[ConfigError] = []

    def add(self, error: ConfigError) -> None:
        self.found.extend(error.problems)

    @contextlib.contextmanager
    def collect(self) -> Iterator[None]:
        """Note the ConfigError the block raises and go on with the next part of the file."""
        try:
            yield
        except ConfigError as exc:
            self.add(exc)

    def raise_any(self) -> None:
        if self.found:
            first, *rest = self.found
            raise ConfigError(first.file, first.key, first.reason, also=rest)


def _mirror_url(file: str, url: Any) -> str:
    """A database URL the mirror can open: SQLite, or PostgreSQL with its driver installed."""
    example = "sqlite:///syncengine.db or postgresql+psycopg://user@host/db"
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(file, "mirror.url", f"must be a database URL such as {example}")
    try:
        parsed = sa.engine.make_url(url)
        port = parsed.port
    except (ValueError, sa.exc.ArgumentError):
        raise ConfigError(file, "mirror.url", f"not a database URL (is the port a number?); write e.g. {example}") \
            from None
    if port is not None and not 0 < port <= 65535:
        raise ConfigError(file, "mirror.url", f"port {port} is out of range; a port is 1 to 65535")
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(file, "mirror.url", f"{backend} cannot hold the mirror; use {example}")
    if backend == "postgresql" and importlib.util.find_spec(driver) is None:
        raise ConfigError(file, "mirror.url", f"the PostgreSQL driver {driver!r} is not installed; "
                          "write postgresql+psycopg://… and pip install 'syncengine[postgres]'")
    return url


def _ui(file: str, table: Any) -> UiSettings:
    _require_table(file, "ui", table)
    _check_keys(file, "ui.", table, {"bind", "port", "password"})
    ui = UiSettings(**table)
    if not isinstance(ui.bind, str) or not ui.bind:
        raise ConfigError(file, "ui.bind", 'must be an address, e.g. "127.0.0.1" or "0.0.0.0"')
    if not isinstance(ui.port, int) or isinstance(ui.port, bool) or not 0 <= ui.port <= 65535:
        raise ConfigError(file, "ui.port", "must be a port number between 0 and 65535")
    if ui.password is not None:
        if not isinstance(ui.password, str) or not ui.password:
            raise ConfigError(file, "ui.password", 'must be a non-empty string, e.g. "${SYNCENGINE_UI_PASSWORD}"')
        SECRETS.add(ui.password)
    return ui


def _health(file: str, table: Any) -> HealthSettings:
    _require_table(file, "health", table)
    _check_keys(file, "health.", table, {"failed_runs", "stale_after"})
    health = HealthSettings()
    if "failed_runs" in table:
        value = table["failed_runs"]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(file, "health.failed_runs", "must be a whole number of runs, at least 1")
        health.failed_runs = value
    if "stale_after" in table:
        health.stale_after = parse_duration(table["stale_after"], file=file, key="health.stale_after")
    return health


def _system(file: str, name: str, table: Any, problems: _Problems) -> dict[str, Any]:
    key = f"systems.{name}"
    _require_table(file, key, table)
    if not _NAME.match(name):
        raise ConfigError(file, key, "system names start with a letter and use letters, "
                          "digits, '_' and '-' only")
    kind = table.get("kind")
    if kind is None:
        raise ConfigError(file, f"{key}.kind", f"missing; one of: {', '.join(KINDS)}")
    if kind not in KINDS:
        raise ConfigError(file, f"{key}.kind", f"unknown kind {kind!r}; one of: {', '.join(KINDS)}")
    declared = connector_class(kind).Settings.declared()
    with problems.collect():
        _check_keys(file, f"{key}.", table, set(declared))
    values: dict[str, Any] = {}
    for setting_name, setting in declared.items():
        skey = f"{key}.{setting_name}"
        if setting_name not in table:
            if setting.required:
                hint = f' (e.g. {setting_name} = "${{{name.upper()}_{setting_name.upper()}}}")' \
                    if setting.secret else ""
                problems.add(ConfigError(file, skey, f"missing; {setting.help or 'required'}{hint}"))
            values[setting_name] = setting.default
            continue
        with problems.collect():
            values[setting_name] = _setting(file, skey, setting, table[setting_name])
    return values


def _setting(file: str, key: str, setting: Setting, value: Any) -> Any:
    """VALUE if SETTING allows it (type, range, choices, items, form), else a ConfigError."""
    if setting.secret:
        SECRETS.add(value)
    wanted = _type_name(setting.type)
    if isinstance(value, bool) and bool not in _types(setting.type):
        raise ConfigError(file, key, f"must be {wanted}, not a boolean")
    if not isinstance(value, setting.type):
        raise ConfigError(file, key, f"must be {wanted}" if setting.secret
                          else f"must be {wanted}, not {type(value).__name__} {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ConfigError(file, key, f"must be a number, not {value!r}")
        for limit, fails, says in ((setting.minimum, value < (setting.minimum or 0), "at least"),
                                   (setting.above, value <= (setting.above or 0), "greater than"),
                                   (setting.maximum, value > (setting.maximum or 0), "at most")):
            if limit is not None and fails:
                raise ConfigError(file, key, f"must be {says} {limit:g}, not {value!r}")
    if setting.choices and value not in setting.choices:
        raise ConfigError(file, key, f"{value!r} is not one of: {', '.join(setting.choices)}")
    items = setting.items
    if items is not None and isinstance(value, list) and not all(_item_ok(item, items) for item in value):
        what = "names" if items is str else _type_name(items).split(" ", 1)[1] + "s"
        raise ConfigError(file, key, f"must be a list of {what}, not {value!r}")
    if setting.form:
        problem = _FORMS[setting.form](str(value))
        if problem:
            raise ConfigError(file, key, problem)
    return value


def _item_ok(item: Any, kind: type) -> bool:
    if isinstance(item, bool) or not isinstance(item, kind):
        return False
    return not isinstance(item, str) or bool(item.strip())


def _web_address(url: str) -> str | None:
    if not re.match(r"^https?://[^/\s]+", url):
        return f"{url!r} is not a web address; write it with its scheme, e.g. https://crm.example.com"
    try:
        _ = urlsplit(url).port  # raises for a port out of range or not a number
    except ValueError:
        return f"{url!r} has no valid port; a port is a number from 1 to 65535"
    return None


def _duration(text: str) -> str | None:
    return None if _DURATION.match(text) else f"{text!r} is not a duration; write e.g. 30s, 15m, 6h or 1d"


def _timezone(name: str) -> str | None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {name!r}; write an IANA name such as Europe/Moscow"
    return None


_FORMS: dict[str, Callable[[str], str | None]] = {"url": _web_address, "duration": _duration,
                                                   "timezone": _timezone}


def _job(file: str, index: int, table: Any, systems: set[str]) -> Job:
    key = f"jobs[{index}]"
    _require_table(file, key, table)
    _check_keys(file, f"{key}.", table, {"name", "cron", "every", "pull", "mappings"})
    name = table.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(file, f"{key}.name", "missing or not a simple name (letters, digits, _ and -)")
    key = f"jobs.{name}"
    if "cron" in table and "every" in table:
        raise ConfigError(file, key, "give either cron or every, not both")
    cron = table.get("cron")
    if cron is not None:
        _check_cron(file, f"{key}.cron", cron)
    every = None
    if "every" in table:
        every = parse_duration(table["every"], file=file, key=f"{key}.every")
        if every.total_seconds() <= 0:
            raise ConfigError(file, f"{key}.every", "must be longer than zero")
    pulls = _str_list(file, f"{key}.pull", table.get("pull", []))
    for target in pulls:
        system = target.split(":", 1)[0]
        if system not in systems:
            raise ConfigError(file, f"{key}.pull", f"unknown system {system!r} "
                              f"(configured: {', '.join(systems) or 'none'})")
    mappings = _str_list(file, f"{key}.mappings", table.get("mappings", []))
    return Job(name=name, cron=cron, every=every, pull=pulls, mappings=mappings)


def _check_cron(file: str, key: str, cron: Any) -> None:
    from apscheduler.triggers.cron import CronTrigger

    if not isinstance(cron, str):
        raise ConfigError(file, key, 'must be a crontab string such as "0 2 * * *"')
    try:
        CronTrigger.from_crontab(cron)
    except ValueError as exc:
        raise ConfigError(file, key, f"not a valid crontab expression ({exc}); "
                          'write five fields, e.g. "0 2 * * *"') from None


def _expand_env(value: Any, file: str, key: str) -> Any:
    if isinstance(value, dict):
        return {k: _expand_env(v, file, f"{key}{'.' if key else ''}{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, file, f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str):
        def sub(match: re.Match[str]) -> str:
            var = match.group(1)
            if var not in os.environ:
                raise ConfigError(file, key, f"environment variable {var} is not set; "
                                  f"export {var}=… before running")
            return os.environ[var]
        return _ENV.sub(sub, value)
    return value


def _anchor_sqlite(url: str, base: Path) -> str:
    """A relative SQLite path is relative to the config file, wherever the command runs."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url[len(prefix):] \
            and not url[len(prefix):].startswith(":memory:"):
        return prefix + str((base / url[len(prefix):]).resolve())
    return url


def _check_keys(file: str, prefix: str, table: dict[str, Any], allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(file, f"{prefix}{key}", f"unknown key; allowed here: {', '.join(sorted(allowed))}")


def _require_table(file: str, key: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise ConfigError(file, key, f"must be a table ([{key}]), not {type(value).__name__}")


def _str_list(file: str, key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(file, key, 'must be a list of strings, e.g. ["a", "b"]')
    return value


def _types(t: type | tuple[type, ...]) -> tuple[type, ...]:
    return t if isinstance(t, tuple) else (t,)


def _type_name(t: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             list: "a list", dict: "a table"}
    return " or ".join(dict.fromkeys(names.get(x, x.__name__) for x in _types(t)))
