"""The Flask app: login, CSRF, and the pages, each a thin layer over the functions the CLI calls.

Security: one password (``[ui] password``, from the environment); failed logins are limited per
client address; the session is a signed cookie (HttpOnly, SameSite=Strict) whose key survives
restarts (:mod:`.security`); every POST carries a CSRF token (Flask-WTF); ``/healthz`` and
``/metrics`` answer without a login, for monitors.
"""
from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, flash, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.wrappers import Response as BaseResponse

from ..config import Config, UiSettings
from ..errors import UsageError
from ..metrics import CONTENT_TYPE, Metrics, health_answer
from ..mirror import Mirror
from ..serving import WsgiServer, health_problems
from . import pages
from .security import LoginAttempts, key_file, session_key

OPEN_ENDPOINTS = {"login", "static", "healthz", "metrics"}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def start_console(config: Config, ui: UiSettings, *, mirror: Mirror | None = None, metrics: Metrics | None = None,
                  alive: Callable[[], bool] = lambda: True) -> WsgiServer:
    """The console listening on UI's address, in a background thread; refused (exit 2) beyond
    loopback without a password, or when the port is taken."""
    if not is_loopback(ui.bind) and not ui.password:
        raise UsageError(f"{config.path}: [ui] bind = {ui.bind!r} reaches beyond this machine but no "
                         'password is set; add password = "${SYNCENGINE_UI_PASSWORD}" to [ui] and export it')
    app = create_app(config, mirror=mirror, metrics=metrics, alive=alive, password=ui.password)
    try:
        return WsgiServer(app, host=ui.bind, port=ui.port, name="console").start()
    except OSError as exc:
        raise UsageError(f"{config.path}: [ui] cannot listen on {ui.bind}:{ui.port} ({exc.strerror}); "
                         "pick another port") from None


def create_app(config: Config, *, mirror: Mirror | None = None, metrics: Metrics | None = None,
               alive: Callable[[], bool] = lambda: True, password: str | None = None) -> Flask:
    """The console for CONFIG's mirror; PASSWORD: ``[ui] password`` (None: no login, loopback only).
    METRICS: the daemon's (the standalone console makes its own)."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY=session_key(key_file(config.path, config.mirror_url), password),
                      SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict",
                      SESSION_COOKIE_NAME="syncengine_session", PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
                      WTF_CSRF_TIME_LIMIT=None,
                      MAX_CONTENT_LENGTH=1024 * 1024)
    CSRFProtect(app)
    mirror = mirror or Mirror(config.mirror_url)
    if metrics is None:
        metrics = Metrics()
        metrics.watch(config, mirror)
    app.extensions["syncengine"] = pages.Context(config=config, mirror=mirror, alive=alive)
    attempts = app.extensions["login_attempts"] = LoginAttempts()

    @app.before_request
    def require_login() -> BaseResponse | None:
        if request.endpoint in OPEN_ENDPOINTS or not password or session.get("who"):
            return None
        return redirect(url_for("login", next=request.full_path if request.method == "GET" else None))

    @app.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        if request.method == "POST":
            if wait := attempts.wait(request.remote_addr):
                flash(f"too many failed logins from your address; try again in {int(wait) + 1} s", "error")
                return render_template("login.html"), 429, {"Retry-After": str(int(wait) + 1)}
            given = request.form.get("password", "")
            if password and hmac.compare_digest(given.encode(), password.encode()):
                attempts.succeeded(request.remote_addr)
                session.clear()
                session.permanent = True
                name = request.form.get("name", "").strip()[:40] or "operator"
                session["who"] = f"{name}@ui {request.remote_addr}"
                return redirect(_safe_next(request.args.get("next")))
            attempts.failed(request.remote_addr)
            flash("wrong password", "error")
            return render_template("login.html"), 401
        if not password:
            return redirect(url_for("pages.overview"))
        return render_template("login.html")

    @app.post("/logout")
    def logout() -> BaseResponse:
        session.clear()
        return redirect(url_for("login"))

    @app.get("/healthz")
    def healthz() -> Response:
        status, body, content_type = health_answer(health_problems(config, mirror, alive=alive))
        return Response(body, status=int(status.split()[0]), content_type=content_type)

    @app.get("/metrics", endpoint="metrics")
    def metrics_page() -> Response:
        return Response(metrics.render(), content_type=CONTENT_TYPE)

    @app.errorhandler(CSRFError)
    def csrf_refused(error: CSRFError) -> tuple[str, int]:
        return render_template("error.html", title="Refused", message=f"{error.description} "
                               "Reload the page and submit the form again."), 400

    @app.errorhandler(UsageError)
    def usage_error(error: UsageError) -> tuple[str, int]:
        return render_template("error.html", title="Cannot do that", message=str(error)), 400

    app.context_processor(lambda: {"who": session.get("who"), "login_required": bool(password),
                                   "config_path": str(config.path)})
    app.register_blueprint(pages.bp)
    return app


def _safe_next(target: str | None) -> str:
    """Only a path of this site (never another host) after login."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("pages.overview")
