"""Pull throughput and memory: vtiger contacts from the bundled emulator into SQLite.

Each pull runs as its own process, so its peak RSS is its own (os.wait4). The emulator runs in
another process, so its work and memory are not counted.

    python bench/pull.py                      # 50,000 and 200,000 contacts, sync and query modes
    python bench/pull.py --records 20000 --modes sync
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def start_emulator(kind: str, records: int, *extra: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "syncengine.cli", "emulate", kind, "--port", "0",
                             "--records", str(records), *extra], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    url = next(word for word in line.split() if word.startswith("http://"))
    return proc, url


def run_pull(config: Path) -> tuple[dict, float, int]:
    """(pull --json summary, wall seconds, peak RSS in KiB) of one pull process."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([sys.executable, "-m", "syncengine.cli", "--config", str(config), "pull", "--json"],
                                stdout=out)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        out.seek(0)
        text = out.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"pull failed: {text}")
    return json.loads(text), wall, usage.ru_maxrss


def bench(records: int, mode: str) -> dict:
    extra = ("--sync-broken", "true") if mode == "query" else ()
    emulator, url = start_emulator("vtiger", records, *extra)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp, "sync.toml")
            config.write_text(f'[mirror]\nurl = "sqlite:///{tmp}/mirror.db"\n\n[systems.vt]\nkind = "vtiger"\n'
                              f'url = "{url}"\nusername = "admin"\naccess_key = "${{BENCH_VT_KEY}}"\n'
                              f'entities = ["Contacts"]\n')
            os.environ["BENCH_VT_KEY"] = "emulator"
            summary, wall, rss_kib = run_pull(config)
    finally:
        emulator.terminate()
        emulator.wait()
    contacts = summary["entities"][0]
    pulled = contacts["created"] + contacts["updated"]
    return {"records": records, "mode": mode, "pulled": pulled, "seconds": wall,
            "per_second": pulled / wall, "requests": sum(summary["requests"].values()),
            "peak_rss_mib": rss_kib / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[50_000, 200_000])
    parser.add_argument("--modes", nargs="+", default=["sync", "query"], choices=["sync", "query"])
    args = parser.parse_args()
    print(f"{'records':>8} {'mode':>6} {'pulled':>8} {'seconds':>8} {'records/s':>10} {'requests':>9} {'peak RSS':>10}")
    for records in args.records:
        for mode in args.modes:
            r = bench(records, mode)
            print(f"{r['records']:>8} {r['mode']:>6} {r['pulled']:>8} {r['seconds']:>8.1f} {r['per_second']:>10.0f} "
                  f"{r['requests']:>9} {r['peak_rss_mib']:>8.1f} MiB", flush=True)


if __name__ == "__main__":
    main()
