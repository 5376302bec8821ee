"""kill -9 at random moments of ``syncengine apply``: no duplicates, same end state as no crash."""
from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from syncengine.mapping import normalize, prepare
from syncengine.mirror import Mirror
from syncengine.mirror.models import OutboxRow
from syncengine.plan import Plan, make_plan
from syncengine.pull import pull
from syncengine.push import apply_plan
from syncengine.sync import run_sync

HERE = Path(__file__).resolve().parent
RUNS = 30


class Zygote:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(HERE / "zygote.py")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)

    def start(self, *args: str) -> int:
        self.proc.stdin.write("\t".join(args) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line.startswith("pid "), line
        return int(line.split()[1])

    def wait(self) -> int:
        line = self.proc.stdout.readline()
        assert line.startswith("exit "), line
        return int(line.split()[1])

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def _wait_for_outbox(mirror: Mirror, plan_id: str, pid: int, limit: float = 30.0) -> None:
    """Until apply has recorded its outbox (its writes start next) or its process has ended."""
    deadline = time.monotonic() + limit
    query = sa.select(sa.func.count()).select_from(OutboxRow).where(OutboxRow.plan_id == plan_id)
    while time.monotonic() < deadline:
        with mirror.engine.connect() as conn:
            if conn.execute(query).scalar():
                return
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.005)


def state(records: dict, email_key: str, name_key: str) -> dict[str, str]:
    """{normalised e-mail: name}; a duplicate e-mail fails the test."""
    out: dict[str, str] = {}
    for r in records.values():
        email = r[email_key][0] if isinstance(r[email_key], list) else r[email_key]
        email = normalize("email", email)
        assert email not in out, f"duplicate record for {email}"
        out[email] = r[name_key]
    return out


@pytest.mark.timeout(600)  # 30 runs of real processes: slow on a loaded 2-core machine, never stuck
def test_kill_9_during_apply_never_duplicates_and_converges(pair):
    rnd = random.Random(6)
    for server in (pair.vt_server, pair.alfa_server):
        server.faults.latency = 0.004  # a window wide enough to land kills inside apply
    config = pair.config
    mirror = Mirror(config.mirror_url)
    expected: dict[str, str] = {}
    vt_ids: dict[str, str] = {}
    alfa_ids: dict[str, str] = {}
    zygote = Zygote()
    interrupted = adopted = 0
    try:
        for run in range(RUNS):
            for k in range(8):
                email = f"crash{run}-{k}-vt@example.com"
                vt_ids[email] = pair.vt_add(lastname=f"ВТ{run}-{k}", email=email)
                expected[email] = f"ВТ{run}-{k}"
                email = f"crash{run}-{k}-alfa@example.com"
                alfa_ids[email] = pair.alfa_add(name=f"Альфа{run}-{k}", email=[email])
                expected[email] = f"Альфа{run}-{k}"
            known = sorted(e for e in expected if not e.startswith(f"crash{run}-"))
            for email in rnd.sample(known, min(8, len(known))):
                name = f"Правка{run}-{email[:12]}"
                expected[email] = name
                vt_side = rnd.random() < 0.5
                if vt_side:
                    pair.vt_edit(_vt_id(pair, email), lastname=name)
                else:
                    pair.alfa_edit(_alfa_id(pair, email), name=name)

            pull(config, mirror=mirror)
            plan = make_plan(mirror, prepare(config, None, mirror))
            plan_file = pair.config_path.parent / f"run{run}.plan"
            plan_file.write_bytes(plan.to_json())
            pid = zygote.start("--config", str(pair.config_path), "apply", str(plan_file))
            _wait_for_outbox(mirror, plan.id, pid)  # the kill lands inside apply however slow the start
            time.sleep(rnd.uniform(0.0, 0.2))
            with contextlib.suppress(ProcessLookupError):  # apply finished first
                os.kill(pid, signal.SIGKILL)
            code = zygote.wait()
            with mirror.engine.connect() as conn:
                states = [s for (s,) in conn.execute(sa.select(OutboxRow.state).where(OutboxRow.plan_id == plan.id))]
            if code == -signal.SIGKILL and states and any(s != "done" for s in states):
                interrupted += 1

            if run % 2 and any(s != "done" for s in states):  # resume the same plan …
                adopted += apply_plan(config, Plan.from_json(plan_file.read_bytes()), mirror=mirror).recovered
                follow = run_sync(config, mirror=mirror)
            else:        # … or let the next sync settle it
                follow = run_sync(config, mirror=mirror)
                adopted += follow.recovered
            assert follow.ok, follow.apply.failed
            again = run_sync(config, mirror=mirror)
            from syncengine.plan_text import plan_lines
            assert again.apply.writes == 0, (run, "\n".join(plan_lines(again.plan)), "\n".join(plan_lines(follow.plan)))
            vt = state(pair.vt_contacts(), "email", "lastname")
            alfa = state(pair.alfa_customers(), "email", "name")
            assert vt == alfa == expected
    finally:
        zygote.close()
    print(f"{interrupted} of {RUNS} kills landed inside apply; {adopted} interrupted creates found and adopted")
    # Timing decides where each kill lands; a third inside apply keeps the test meaningful. (A
    # create whose bookkeeping was lost is also forced deterministically in test_sync.py.)
    assert interrupted >= RUNS // 3, f"only {interrupted} kills landed inside apply"


def _vt_id(pair, email: str) -> str:
    return next(rid for rid, r in pair.vt_contacts().items() if r["email"] == email)


def _alfa_id(pair, email: str) -> str:
    return next(rid for rid, r in pair.alfa_customers().items() if r["email"] == [email])
