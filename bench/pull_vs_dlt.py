"""Alfa CRM customers: `syncengine pull` into SQLite against dlt's `rest_api` source into DuckDB.

Both read the same emulator (its own process, no added latency), alternately, each into a fresh
database, each in its own process so peak RSS (os.wait4) is that pull's alone. Needs the bench
extra: pip install "dlt[duckdb]" psutil.

    python bench/pull_vs_dlt.py                        # 50,000 customers, 3 rounds
    python bench/pull_vs_dlt.py --records 20000 --rounds 1
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pull import run_pull, start_emulator  # bench/pull.py, the vtiger pull benchmark

EMAIL, API_KEY = "admin@example.com", "emulator"


def ours(url: str, tmp: Path) -> tuple[int, float, int]:
    config = tmp / "sync.toml"
    config.write_text(f'[mirror]\nurl = "sqlite:///{tmp}/mirror.db"\n\n[systems.alfa]\nkind = "alfacrm"\n'
                      f'url = "{url}"\nemail = "{EMAIL}"\napi_key = "${{BENCH_ALFA_KEY}}"\n'
                      f'entities = ["customer"]\n')
    os.environ["BENCH_ALFA_KEY"] = API_KEY
    summary, wall, rss = run_pull(config)
    entity = summary["entities"][0]
    return entity["created"] + entity["updated"] + entity["unchanged"], wall, rss


def theirs(url: str, tmp: Path) -> tuple[int, float, int]:
    """(rows loaded, wall seconds, peak RSS in KiB) of one dlt process."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([sys.executable, __file__, "--dlt-child", url, str(tmp)], stdout=out,
                                env={**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false"})
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        out.seek(0)
        text = out.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"dlt failed:\n{text}")
    return int(text.strip().splitlines()[-1]), wall, usage.ru_maxrss


def dlt_child(url: str, tmp: str) -> None:
    """Runs in its own process: log in, then let dlt page customer/index into DuckDB."""
    import dlt
    import requests
    from dlt.sources.rest_api import rest_api_source

    token = requests.post(f"{url}/v2api/auth/login", json={"email": EMAIL, "api_key": API_KEY}).json()["token"]
    source = rest_api_source({
        "client": {"base_url": f"{url}/v2api/", "headers": {"X-ALFACRM-TOKEN": token}},
        "resources": [{
            "name": "customer",
            "endpoint": {
                "path": "1/customer/index", "method": "POST", "json": {"removed": 1},
                "params": {"per-page": 50}, "data_selector": "items",
                "paginator": {"type": "page_number", "base_page": 0, "page_body_path": "page",
                              "total_path": None, "stop_after_empty_page": True},
            },
        }],
    })
    pipeline = dlt.pipeline(pipeline_name="alfa_bench", destination=dlt.destinations.duckdb(f"{tmp}/bench.duckdb"),
                            dataset_name="alfa", pipelines_dir=f"{tmp}/pipelines")
    for step in ("extract", "normalize", "load"):  # timed apart: where dlt spends its time
        started = time.monotonic()
        getattr(pipeline, step)(source) if step == "extract" else getattr(pipeline, step)()
        print(f"dlt {step}: {time.monotonic() - started:.2f} s", file=sys.stderr)
    with pipeline.sql_client() as client:
        print(client.execute_sql("SELECT count(*) FROM customer")[0][0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dlt-child", nargs=2, metavar=("URL", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.dlt_child:
        dlt_child(*args.dlt_child)
        return
    emulator, url = start_emulator("alfacrm", args.records)
    results: dict[str, list[tuple[int, float, int]]] = {"syncengine": [], "dlt": []}
    try:
        print(f"{'round':>5} {'tool':>10} {'records':>8} {'seconds':>8} {'records/s':>10} {'peak RSS':>10}")
        for round_no in range(1, args.rounds + 1):
            for name, run in (("syncengine", ours), ("dlt", theirs)):
                with tempfile.TemporaryDirectory() as tmp:
                    records, wall, rss = run(url, Path(tmp))
                results[name].append((records, wall, rss))
                print(f"{round_no:>5} {name:>10} {records:>8} {wall:>8.2f} {records / wall:>10.0f} "
                      f"{rss / 1024:>8.1f} MiB", flush=True)
    finally:
        emulator.terminate()
        emulator.wait()
    median = {name: statistics.median(r[1] for r in runs) for name, runs in results.items()}
    for name, runs in results.items():
        print(f"{name:>10}: median {median[name]:.2f} s, {runs[0][0] / median[name]:.0f} records/s, "
              f"peak RSS {max(r[2] for r in runs) / 1024:.0f} MiB")
    print(f"throughput ratio syncengine / dlt: {median['dlt'] / median['syncengine']:.2f}x (target ≥ 3x)")


if __name__ == "__main__":
    main()
