"""The mirror writer alone: CPU seconds of ``EntityWriter.apply`` for N Alfa CRM customers.

The customers are read once from the bundled emulator (no latency); then, for each repeat, a
fresh mirror (SQLite file, and with ``--postgres`` a fresh schema) gets them in batches of 500,
each with a cursor as a pull commits them. Only the ``apply`` calls are timed (CPU of this
process, user + system, and wall); reading, migrating and the writer's set-up are left out. A
second pass over the same records (all unchanged) shows what a repeated full read costs.

    python bench/write_path.py                       # 20,000 customers, SQLite, 3 repeats
    python bench/write_path.py --records 20000 --repeat 5 \\
        --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from pull import start_emulator  # bench/pull.py
from pull_ratio import API_KEY, EMAIL, drop_schema, postgres_schema

BATCH = 500


def read_customers(url: str) -> tuple[Any, list[dict[str, Any]]]:
    from syncengine.config import load_config
    from syncengine.connectors import connect

    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp, "sync.toml")
        config.write_text(f'[mirror]\nurl = "sqlite:///{tmp}/unused.db"\n\n[systems.alfa]\nkind = "alfacrm"\n'
                          f'url = "{url}"\nemail = "{EMAIL}"\napi_key = "{API_KEY}"\nentities = ["customer"]\n')
        connector = connect("alfa", load_config(str(config)).system("alfa"))
        schema = connector.describe("customer")
        records = [r for batch in connector.read_changes("customer", None) for r in batch.records]
    return schema, records


def write(mirror_url: str, schema: Any, records: list[dict[str, Any]]) -> tuple[float, float, float, float]:
    """(CPU s, wall s) of a first write into an empty mirror, then of the same records again."""
    from syncengine.mirror.store import Mirror

    mirror = Mirror(mirror_url)
    try:
        writer = mirror.writer("alfa", schema)
        timings = []
        for _ in range(2):
            # the connector's dicts are handed over as they are; a copy keeps the second pass honest
            batches = [[dict(r) for r in records[i:i + BATCH]] for i in range(0, len(records), BATCH)]
            cpu, wall = time.process_time(), time.perf_counter()
            for number, batch in enumerate(batches):
                writer.apply(batch, cursor=str(number))
            timings += [time.process_time() - cpu, time.perf_counter() - wall]
    finally:
        mirror.dispose()
    return timings[0], timings[1], timings[2], timings[3]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", help="a PostgreSQL URL to write into as well (a fresh schema per repeat)")
    args = parser.parse_args()
    emulator, url = start_emulator("alfacrm", args.records, "--latency", "0")
    try:
        schema, records = read_customers(url)
    finally:
        emulator.terminate()
        emulator.wait()
    print(f"{len(records)} customers, {len(schema.fields)} fields, batches of {BATCH}, {args.repeat} repeats")
    print(f"{'mirror':>11} {'pass':>10} {'CPU s (median)':>15} {'wall s':>7}  CPU s of each repeat")
    targets = ["sqlite"] + (["postgresql"] if args.postgres else [])
    for target in targets:
        runs = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                if target == "sqlite":
                    runs.append(write(f"sqlite:///{tmp}/mirror.db", schema, records))
                else:
                    mirror_url, name = postgres_schema(args.postgres)
                    try:
                        runs.append(write(mirror_url, schema, records))
                    finally:
                        drop_schema(args.postgres, name)
        for label, cpu_at in (("new", 0), ("unchanged", 2)):
            cpus = [run[cpu_at] for run in runs]
            walls = [run[cpu_at + 1] for run in runs]
            print(f"{target:>11} {label:>10} {statistics.median(cpus):>15.3f} {statistics.median(walls):>7.2f}  "
                  + " ".join(f"{c:.3f}" for c in cpus), flush=True)


if __name__ == "__main__":
    main()
