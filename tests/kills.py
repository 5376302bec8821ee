"""Kill a syncengine process at an exact point of its conversation with a CRM emulator."""
from __future__ import annotations

import os
import signal
import threading

from syncengine.emulators import EmulatorServer


class KillOnRequest:
    """SIGKILL a process from inside an emulator, right after the CRM carried out the NTH request
    of OPERATION (counted from now) and before it answers: a write happened that the process never
    hears of. Armed before the process starts (its pid comes later, with :meth:`started`)."""

    def __init__(self, server: EmulatorServer, operation: str, nth: int = 1) -> None:
        self.pid: int | None = None
        self.known = threading.Event()
        self.fired = False
        server.after_request(operation, self._kill, nth=nth)

    def _kill(self) -> None:
        if self.known.wait(30) and self.pid is not None:
            os.kill(self.pid, signal.SIGKILL)
            self.fired = True

    def started(self, pid: int) -> None:
        self.pid = pid
        self.known.set()

    def disarm(self) -> None:
        """The process has ended: if the request never came, a later one must not kill a reused pid."""
        self.pid = None
        self.known.set()
