"""Each recorded fixture file replayed against a fresh emulator of its install.

A file passes when every exchange matches except those accepted in ``DEVIATIONS.md`` (each with
its reason), and the accepted ones leave every install at 95 % or more of its exchanges matched.
Skips where ``../shared/fixtures/real`` (or ``$SYNCENGINE_FIXTURES``) is absent, as in a user's clone.
"""
from __future__ import annotations

import pytest

from .replay import accepted_deviations, fixture_files, fixtures_root, load, replay_file

ROOT = fixtures_root()
FILES = fixture_files(ROOT) if ROOT else []
THRESHOLD = 0.95
pytestmark = pytest.mark.skipif(ROOT is None, reason="recorded fixtures not found "
                                "(<repo>/../shared/fixtures/real or SYNCENGINE_FIXTURES)")


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.stem}" for p in FILES])
def test_fixture_file(path):
    accepted = accepted_deviations()
    install = path.parent.name
    total = sum(len(load(p)) for p in FILES if p.parent.name == install)
    allowed = sum(1 for (inst, _file, _label) in accepted if inst == install)
    assert total - allowed >= THRESHOLD * total, f"{install}: accepted deviations leave less than 95 % matched"
    outcomes = replay_file(path)
    unexpected = [o for o in outcomes if not o.ok and (install, path.stem, o.label) not in accepted]
    assert not unexpected, "\n".join(f"{o.label}: {'; '.join(o.reasons)}" for o in unexpected)
