"""Push throughput: creates into an emulator that answers every request after 50 ms, under a
request budget (``rate_limit``) of 10 requests/s, with 1 and 4 writers: vtiger Contacts → Alfa CRM
(which allows one request in flight per token, so its writers stay at 1) and Alfa → vtiger.

Prints writes/s, requests per write and the share of the budget the push used (requests/s ÷
rate_limit). A push that keeps its budget busy is as fast as the CRM allows; a larger budget shows
what concurrency buys. ``--op update`` times updates of linked records instead of creates: each
update re-reads its target by id right before its write, so it costs two requests; the bench also
prints how old that re-read is when the write reaches the CRM (the window in which a user's edit
would still be overwritten), median and largest, measured at the emulator.

    python bench/push.py                     # 60 writes at 10 req/s, 200 at 50 req/s, both targets
    python bench/push.py --writes 100 --rate-limit 10 --latency 0.05 --target vt
    python bench/push.py --op update        # updates of linked records, both targets
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from syncengine import emulators, jsonutil  # noqa: E402
from syncengine.config import load_config  # noqa: E402
from syncengine.mapping import prepare  # noqa: E402
from syncengine.mirror import Mirror  # noqa: E402
from syncengine.plan import make_plan  # noqa: E402
from syncengine.pull import pull  # noqa: E402
from syncengine.push import apply_plan  # noqa: E402

MAPPING = """
left = "vt:Contacts"
right = "alfa:customer"
direction = "DIRECTION"
match_on = ["email"]
[fields]
name  = { left = "lastname", right = "name" }
email = { left = "email", right = "email[0]", normalize = "email" }
phone = { left = "phone", right = "phone[0]", normalize = "phone" }
"""


def watch(server: emulators.EmulatorServer, target: str) -> list[tuple[float, str, set[str]]]:
    """Every request the emulator carries out, as (when, "read" or "write", the record ids)."""
    seen: list[tuple[float, str, set[str]]] = []
    handle = server.app.handle

    def logged(request: emulators.Request) -> emulators.Response:
        response = handle(request)
        if target == "vt" and request.param("operation") == "query":
            seen.append((time.monotonic(), "read", set(re.findall(r"'(\d+x\d+)'", request.param("query") or ""))))
        elif target == "vt" and request.param("operation") == "revise":
            seen.append((time.monotonic(), "write", {str(jsonutil.loads(request.param("element") or "{}")["id"])}))
        elif target == "alfa" and request.path.endswith("/customer/index"):
            seen.append((time.monotonic(), "read", {str(i) for i in (request.json() or {}).get("id") or []}))
        elif target == "alfa" and request.path.endswith("/customer/update"):
            seen.append((time.monotonic(), "write", {str(request.query.get("id"))}))
        return response

    server.app.handle = logged  # type: ignore[method-assign]
    return seen


def read_ages(seen: list[tuple[float, str, set[str]]]) -> list[float]:
    """Per write: seconds since the CRM last answered a read of that record."""
    last_read: dict[str, float] = {}
    ages = []
    for when, kind, ids in seen:
        for rid in ids:
            if kind == "read":
                last_read[rid] = when
            elif rid in last_read:
                ages.append(when - last_read[rid])
    return ages


def ages(seconds: list[float]) -> str:
    """Median/largest in ms; "-" without updates."""
    return f"{statistics.median(seconds) * 1000:.0f}/{max(seconds) * 1000:.0f}" if seconds else "-"


def run(writes: int, rate_limit: float, latency: float, workers: int, target: str, op: str = "create"
        ) -> dict[str, Any]:
    os.environ.setdefault("VT_KEY", "bench")
    os.environ.setdefault("ALFA_KEY", "bench")
    vt = emulators.start("vtiger", 0, access_key="bench")
    alfa = emulators.start("alfacrm", 0, api_key="bench")
    for i in range(writes):  # the records to copy, on the other side
        if target == "alfa":
            vt.app.control_write("Contacts", {"lastname": f"Bench{i}", "email": f"bench{i}@example.com",
                                              "phone": f"8 916 000-{i:04d}"})
        else:
            with alfa.app.lock:
                alfa.app.insert("customer", {"branch_ids": [1], "is_study": 1, "legal_type": 1, "name": f"Bench{i}",
                                             "email": [f"bench{i}@example.com"], "phone": [f"+7916000{i:04d}"]})
    server = alfa if target == "alfa" else vt
    direction = "left-to-right" if target == "alfa" else "right-to-left"
    folder = Path(tempfile.mkdtemp(prefix="push-bench-"))
    (folder / "mappings").mkdir()
    (folder / "mappings" / "contacts.toml").write_text(MAPPING.replace("DIRECTION", direction), encoding="utf-8")
    (folder / "sync.toml").write_text(f"""
[mirror]
url = "sqlite:///{folder / 'mirror.db'}"
[systems.vt]
kind = "vtiger"
url = "{vt.url}"
username = "admin"
access_key = "${{VT_KEY}}"
entities = ["Contacts"]
{"rate_limit = " + str(rate_limit) if target == "vt" else ""}
[systems.alfa]
kind = "alfacrm"
url = "{alfa.url}"
email = "admin@example.com"
api_key = "${{ALFA_KEY}}"
entities = ["customer"]
{"rate_limit = " + str(rate_limit) if target == "alfa" else ""}
""", encoding="utf-8")
    try:
        config = load_config(folder / "sync.toml")
        mirror = Mirror(config.mirror_url)
        pull(config, mirror=mirror)
        plan = make_plan(mirror, prepare(config, None, mirror))
        if op == "update":  # link them all first, then rename every source record
            apply_plan(config, plan, mirror=mirror, workers=workers)
            if target == "alfa":
                for rid in vt.app.live_records("Contacts"):
                    vt.app.control_edit(rid, {"lastname": f"Renamed{rid}"})
            else:
                with alfa.app.lock:
                    for rid in alfa.app.live_records("customer"):
                        alfa.app.change("customer", int(rid), {"name": f"Renamed{rid}"})
            pull(config, mirror=mirror)
            plan = make_plan(mirror, prepare(config, None, mirror))
        server.faults.latency = latency
        server.reset_stats()
        seen = watch(server, target)
        started = time.monotonic()
        result = apply_plan(config, plan, mirror=mirror, workers=workers)
        seconds = time.monotonic() - started
        requests = server.stats_json()["total"]
        assert result.writes == writes and not result.failed, result.as_dict()
        ages = read_ages(seen)
        return {"read_ages": ages, "writes": result.writes, "seconds": seconds, "writes_per_s": result.writes / seconds,
                "requests_per_write": requests / result.writes,
                "requests_per_s": requests / seconds, "budget_share": requests / seconds / rate_limit}
    finally:
        vt.stop()
        alfa.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=None)
    parser.add_argument("--rate-limit", type=float, default=None)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--target", choices=["alfa", "vt"], nargs="+", default=["alfa", "vt"])
    parser.add_argument("--op", choices=["create", "update"], default="create")
    args = parser.parse_args()
    cases = [(args.writes or 60, args.rate_limit or 10.0)] if args.rate_limit or args.writes \
        else [(60, 10.0), (200, 50.0)]
    print(f"{'op':>6} {'target':>6} {'budget':>8} {'latency':>8} {'workers':>7} {'writes':>6} {'seconds':>8} "
          f"{'writes/s':>9} {'req/write':>9} {'req/s':>7} {'budget used':>11} {'re-read age ms':>14}")
    for target in args.target:
        for writes, rate in cases:
            for workers in (1, 4):
                r = run(writes, rate, args.latency, workers, target, args.op)
                print(f"{args.op:>6} {target:>6} {rate:>6g}/s {args.latency * 1000:>6.0f}ms {workers:>7} "
                      f"{r['writes']:>6} {r['seconds']:>8.2f} {r['writes_per_s']:>9.1f} "
                      f"{r['requests_per_write']:>9.2f} {r['requests_per_s']:>7.1f} {r['budget_share']:>10.0%} "
                      f"{ages(r['read_ages']):>14}",
                      flush=True)


if __name__ == "__main__":
    main()
