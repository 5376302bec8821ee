"""vtiger Sessions: ``getchallenge``, ``login``, ``logout``, ``extendsession`` (§2)."""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from ..base import Request
from .model import API_VERSION, DENIED, TOKEN_LIFETIME, User, WsError
from .state import VtigerState


class AuthApi(VtigerState):
    """Sessions: ``getchallenge``, ``login``, ``logout``, ``extendsession`` (§2)."""

    def _op_getchallenge(self, request: Request, param: Callable, user: User | None, _sn: Any) -> Any:
        username = param("username")
        if not username:
            raise WsError("ACCESS_DENIED", "No username given")
        found = next((u for u in self.users.values() if u.user_name == username), None)
        if found is None:
            raise WsError("ACCESS_DENIED", "username does not exists")
        now = int(self.now())
        token = self._uniqid()
        self.tokens[found.id] = (token, now + TOKEN_LIFETIME)
        return {"token": token, "serverTime": now, "expireTime": now + TOKEN_LIFETIME}

    def _op_login(self, request: Request, param: Callable, user: User | None, _sn: Any) -> Any:
        try:
            return self._login(param)
        except WsError as exc:
            if self.echo_login_request:  # some installs' error pages repeat the request, hash included
                raise WsError(exc.code, f"{exc.message}; request: {urlencode(request.form)}") from None
            raise

    def _login(self, param: Callable) -> Any:
        username, key = param("username"), param("accessKey")
        found = next((u for u in self.users.values() if u.user_name == username), None)
        token = self.tokens.get(found.id) if found else None
        if found is None or token is None or token[1] < self.now():
            raise WsError("INVALID_AUTH_TOKEN", "Specified token is invalid or expired")
        if not found.access_key:
            raise WsError("ACCESSKEY_UNDEFINED", "Access key for the user is undefined")
        if key != hashlib.md5((token[0] + found.access_key).encode()).hexdigest():
            raise WsError("INVALID_USER_CREDENTIALS", "Invalid username or password")
        session_name = f"{self._random.randrange(1 << 31):x}{self._uniqid()}"
        self.sessions[session_name] = {"user": found.id, "seen": self.now()}
        result: dict[str, Any] = {}
        if self.dialect.login_profile:
            result.update(username=found.user_name, first_name=found.first_name, last_name=found.last_name,
                          email=found.email, time_zone=self.timezone_name, hour_format="12",
                          date_format="yyyy-mm-dd", is_admin="on" if found.is_admin else "off",
                          call_duration="5", other_event_duration="5")
        result.update(sessionName=session_name, userId=f"{self.prefixes['Users']}x{found.id}",
                      version=API_VERSION, vtigerVersion=self.dialect.version)
        return result

    def _op_logout(self, request: Request, param: Callable, user: User | None, session_name: str) -> Any:
        if request.method != "POST":
            raise WsError("OPERATION_NOT_SUPPORTED", DENIED)
        self.sessions.pop(session_name, None)
        return {"message": "successfull"}

    def _op_extendsession(self, request: Request, param: Callable, user: User | None, _sn: Any) -> Any:
        if request.method != "POST" or "operation" not in request.form:
            raise WsError("AUTHENTICATION_REQUIRED", "Authencation required")
        raise WsError("AUTHENTICATION_FAILURE", "Authencation Failed")
