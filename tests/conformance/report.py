"""Per-install conformance summary: ``python -m tests.conformance.report [-v]``.

Replays every recorded fixture file against its emulator and prints exchanges matched / total per
install (and with ``-v`` every mismatch with its reasons).
"""
from __future__ import annotations

import sys
import time
from collections import defaultdict

from .replay import PROFILES, accepted_deviations, fixture_files, fixtures_root, replay_file


def main(argv: list[str]) -> int:
    root = fixtures_root()
    if root is None:
        print("recorded fixtures not found (<repo>/../shared/fixtures/real or SYNCENGINE_FIXTURES)")
        return 0
    verbose = "-v" in argv
    accepted = accepted_deviations()
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    started = time.monotonic()
    unexpected = 0
    for path in fixture_files(root):
        outcomes = replay_file(path)
        install = path.parent.name
        totals[install][0] += sum(o.ok for o in outcomes)
        totals[install][1] += len(outcomes)
        for o in outcomes:
            if o.ok:
                continue
            known = (install, path.stem, o.label) in accepted
            unexpected += not known
            if verbose or not known:
                print(f"  {'accepted ' if known else 'MISMATCH '}{install}/{path.stem} {o.label}: "
                      f"{'; '.join(o.reasons)[:300]}")
    print(f"{'install':<20} {'emulator profile':<16} {'matched':>8} {'total':>6} {'share':>7}")
    for install, (ok, total) in totals.items():
        profile = PROFILES[install]
        print(f"{install:<20} {profile.kind:<16} {ok:>8} {total:>6} {ok / total:>7.1%}")
    print(f"unexpected mismatches: {unexpected}; {time.monotonic() - started:.1f} s")
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
