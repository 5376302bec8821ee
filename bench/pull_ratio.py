"""Is the mirror as fast to write as the API is to read? Alfa CRM customers, one emulator, one run.

Prints, each measured in its own process (peak RSS and CPU seconds via os.wait4; seconds timed
inside the process, so interpreter start-up is left out of them):

* ``read``: the connector alone (login, describe, every page), records thrown away;
* ``pull sqlite`` / ``pull postgresql``: ``syncengine pull`` into a fresh mirror;
* ``bare loop``: requests + sqlite3 (WAL, as the mirror), serially: a page, an executemany, a commit.

The goal of issue 16.6 is pull ≤ 1.3 × read and no slower than the bare loop.

    python bench/pull_ratio.py                                  # 50,000 customers, SQLite
    python bench/pull_ratio.py --records 100000 --postgres postgresql+psycopg://postgres@127.0.0.1/test
    python bench/pull_ratio.py --records 20000 --latency 0.05   # an API that answers in 50 ms

Without latency the read is pure CPU (the emulator answers at once), so the ratio shows what the
mirror costs on top; with a CRM's latency the writes hide behind the next requests. On a busy
machine wall seconds wander from run to run; the CPU seconds (user + system, start-up included)
say more steadily what each costs.
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from pull import start_emulator  # bench/pull.py

EMAIL, API_KEY = "admin@example.com", "emulator"


def config_text(mirror_url: str, url: str) -> str:
    return (f'[mirror]\nurl = "{mirror_url}"\n\n[systems.alfa]\nkind = "alfacrm"\nurl = "{url}"\n'
            f'email = "{EMAIL}"\napi_key = "${{BENCH_ALFA_KEY}}"\nentities = ["customer"]\n')


def child(*args: str) -> tuple[dict, int, float]:
    """(the JSON a child process printed last, its peak RSS in KiB, its CPU seconds)."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([sys.executable, *args], stdout=out, env={**os.environ, "BENCH_ALFA_KEY": API_KEY})
        _, status, usage = os.wait4(proc.pid, 0)
        out.seek(0)
        text = out.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{args} failed:\n{text}")
    return json.loads(text.strip().splitlines()[-1]), usage.ru_maxrss, usage.ru_utime + usage.ru_stime


def read_child(config: str) -> None:
    from syncengine.config import load_config
    from syncengine.connectors import connect

    started = time.perf_counter()
    connector = connect("alfa", load_config(config).system("alfa"))
    connector.describe("customer")
    records = sum(len(batch.records) for batch in connector.read_changes("customer", None))
    print(json.dumps({"records": records, "seconds": time.perf_counter() - started}))


def bare_child(url: str, db: str) -> None:
    import requests

    started = time.perf_counter()
    session = requests.Session()
    token = session.post(f"{url}/v2api/auth/login", json={"email": EMAIL, "api_key": API_KEY}).json()["token"]
    session.headers["X-ALFACRM-TOKEN"] = token
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")  # as the mirror opens SQLite
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE customer (id INTEGER PRIMARY KEY, data TEXT)")
    page = records = 0
    while items := session.post(f"{url}/v2api/1/customer/index", params={"per-page": 50},
                                json={"removed": 1, "page": page}).json()["items"]:
        conn.executemany("INSERT INTO customer VALUES (?, ?)", [(r["id"], json.dumps(r)) for r in items])
        conn.commit()
        records += len(items)
        page += 1
    print(json.dumps({"records": records, "seconds": time.perf_counter() - started}))


def pull_child(config: Path) -> tuple[dict, int, float]:
    summary, rss, cpu = child("-m", "syncengine.cli", "--config", str(config), "pull", "--json")
    entity = summary["entities"][0]
    return {"records": entity["created"] + entity["updated"] + entity["unchanged"],
            "seconds": summary["seconds"]}, rss, cpu


def postgres_schema(base: str) -> tuple[str, str]:
    import sqlalchemy as sa

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}", schema


def drop_schema(base: str, schema: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--postgres", help="a PostgreSQL URL to pull into as well (a fresh schema)")
    parser.add_argument("--latency", type=float, default=0.0,
                        help="seconds the emulator adds to every request (a real CRM: 0.05 to 0.3)")
    parser.add_argument("--read-child", help=argparse.SUPPRESS)
    parser.add_argument("--bare-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.read_child:
        return read_child(args.read_child)
    if args.bare_child:
        return bare_child(*args.bare_child)

    emulator, url = start_emulator("alfacrm", args.records, "--latency", str(args.latency))
    rows: list[tuple[str, dict, int, float]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp, "sync.toml")
            config.write_text(config_text(f"sqlite:///{tmp}/mirror.db", url))
            rows.append(("read", *child(__file__, "--read-child", str(config))))
            rows.append(("pull sqlite", *pull_child(config)))
            if args.postgres:
                mirror_url, schema = postgres_schema(args.postgres)
                try:
                    config.write_text(config_text(mirror_url, url))
                    rows.append(("pull postgresql", *pull_child(config)))
                finally:
                    drop_schema(args.postgres, schema)
            rows.append(("bare loop", *child(__file__, "--bare-child", url, f"{tmp}/bare.db")))
    finally:
        emulator.terminate()
        emulator.wait()
    read, read_cpu = rows[0][1]["seconds"], rows[0][3]
    print(f"{'what':>16} {'records':>8} {'seconds':>8} {'records/s':>10} {'× read':>7} {'CPU s':>6} {'× read':>7} "
          f"{'peak RSS':>10}")
    for name, result, rss, cpu in rows:
        print(f"{name:>16} {result['records']:>8} {result['seconds']:>8.2f} "
              f"{result['records'] / result['seconds']:>10.0f} {result['seconds'] / read:>7.2f} "
              f"{cpu:>6.2f} {cpu / read_cpu:>7.2f} {rss / 1024:>7.1f} MiB")


if __name__ == "__main__":
    main()
