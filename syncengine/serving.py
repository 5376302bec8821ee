"""One small threaded HTTP server shape for everything we serve: emulators, metrics, webhooks."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class BackgroundServer:
    """A ThreadingHTTPServer that serves in a background thread (``start``) or the foreground
    (``serve_forever``); a context manager in tests."""

    thread_name = "http"

    def __init__(self, handler: type[BaseHTTPRequestHandler], *, port: int = 0, host: str = "127.0.0.1"):
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self._serving = False

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        host = self._httpd.server_address[0]
        return f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{self.port}"

    def start(self):
        self._serving = True  # before the thread runs: a stop() right after start() must shut it down
        threading.Thread(target=self._httpd.serve_forever, daemon=True, name=self.thread_name).start()
        return self

    def serve_forever(self) -> None:
        self._serving = True
        self._httpd.serve_forever()

    def serve_until_interrupted(self) -> None:
        """Serve in the foreground until Ctrl-C, then close."""
        try:
            self.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def stop(self) -> None:
        if self._serving:
            self._httpd.shutdown()
            self._serving = False
        self._httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
