"""A pre-imported ``syncengine`` CLI that forks one real child process per command.

The crash test kills children with SIGKILL; forking from a warm parent (no threads, no open
database) saves the ~1 s interpreter start of each of its runs. Protocol, one line each:
stdin ``arg\\targ…`` → stdout ``pid N`` when the child starts, then ``exit CODE`` when it ends
(``exit -9`` for a killed child).
"""
import os
import sys

import syncengine.cli.sync
import syncengine.connectors.alfacrm
import syncengine.connectors.vtiger
import syncengine.push  # noqa: F401
from syncengine.cli import main


def serve() -> None:
    for line in sys.stdin:
        args = line.rstrip("\n").split("\t")
        pid = os.fork()
        if pid == 0:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            code = 0
            try:
                main(args, prog_name="syncengine", standalone_mode=False)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                code = 1
            os._exit(code)
        print(f"pid {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"exit {os.waitstatus_to_exitcode(status)}", flush=True)


if __name__ == "__main__":
    serve()
