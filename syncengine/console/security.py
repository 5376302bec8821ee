"""The console's session key and its brake on password guessing.

The key that signs session cookies and CSRF tokens is HMAC-SHA256(a random 32-byte secret, the UI
password). The secret lives in a file readable by its owner only (0600) next to the SQLite mirror
(beside ``sync.toml`` for a server database), never in the mirror's tables: the mirror is a reporting
database that BI users read, and ``sync.toml``'s folder is often kept in git. So a restart keeps everyone
logged in, every console process started from the same config agrees, and changing the password
logs everyone out. A key derived from the password alone (PBKDF2 with a salt in the mirror) would
have needed no file, but a captured cookie would then let its holder test password guesses offline;
a full-entropy secret leaves nothing to guess.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import stat
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import make_url

log = logging.getLogger("syncengine.console")

KEY_FILE = ".syncengine-console.key"


def key_file(config_path: Path, mirror_url: str) -> Path:
    """Where the session secret is kept: beside a SQLite mirror file, else beside the config."""
    url = make_url(mirror_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).resolve().parent / KEY_FILE
    return config_path.resolve().parent / KEY_FILE


def session_key(path: Path, password: str | None) -> bytes:
    """The signing key (see the module docstring) from the secret in PATH; a key for this process
    alone when PATH cannot be written (a read-only folder)."""
    try:
        secret = _stored_secret(path)
    except OSError as exc:
        log.warning("console: cannot keep the session secret in %s (%s); a restart will log everyone out",
                    path, exc.strerror or exc)
        secret = secrets.token_bytes(32)
    return hmac.new(secret, (password or "").encode(), hashlib.sha256).digest()


def _stored_secret(path: Path) -> bytes:
    """The secret in PATH, made first if missing. It is written whole to a private temporary file
    and linked into place, so two consoles starting at once read the same complete secret."""
    while True:
        try:
            info = path.stat()
        except FileNotFoundError:
            pass
        else:
            secret = path.read_bytes()
            if stat.S_IMODE(info.st_mode) & 0o077 == 0 and len(secret) == 32:
                return secret
            log.warning("console: %s is readable by others or damaged; replacing it (everyone logs in again)",
                        path)
            path.unlink(missing_ok=True)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(secrets.token_bytes(32))
            os.link(temporary, path)  # fails if another process linked its secret first: read that one
        except FileExistsError:
            pass
        finally:
            temporary.unlink(missing_ok=True)


class LoginAttempts:
    """Failed logins per client address (IPv6 per /64, which one machine usually holds): after
    ``limit`` failures within ``window`` seconds the address gets 429 until the oldest of them is
    ``window`` old, without its password being checked. Per process and in memory: a restart
    forgets, which a guesser cannot trigger."""

    def __init__(self, limit: int = 5, window: float = 300.0, clock: Callable[[], float] = time.monotonic,
                 addresses: int = 10_000):
        self.limit, self.window, self.clock, self.addresses = limit, window, clock, addresses
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait(self, address: str | None) -> float:
        """Seconds ADDRESS must wait before its next try (0: it may try now)."""
        with self._lock:
            failures = self._recent(_client(address))
            if len(failures) < self.limit:
                return 0.0
            return max(1.0, failures[0] + self.window - self.clock())

    def failed(self, address: str | None) -> None:
        with self._lock:
            key = _client(address)
            failures = self._recent(key)
            failures.append(self.clock())
            self._failures[key] = failures
            if len(self._failures) > self.addresses:  # many addresses: forget the longest quiet
                quiet = min(self._failures, key=lambda k: self._failures[k][-1])
                del self._failures[quiet]

    def succeeded(self, address: str | None) -> None:
        with self._lock:
            self._failures.pop(_client(address), None)

    def _recent(self, key: str) -> deque[float]:
        failures = self._failures.get(key, deque())
        while failures and failures[0] <= self.clock() - self.window:
            failures.popleft()
        if not failures:
            self._failures.pop(key, None)
        return failures


def _client(address: str | None) -> str:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return address or "?"
    if ip.version == 6 and not ip.is_loopback:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
