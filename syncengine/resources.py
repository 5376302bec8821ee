"""Files that live beside the package in a source tree and under ``<prefix>/share/syncengine``
when installed from a wheel: the Alembic migrations and the example mappings."""
from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

from .errors import UsageError


def shared_path(name: str) -> Path:
    """``migrations`` or ``mappings``: the source tree's copy first, then the installed one."""
    candidates = [Path(__file__).resolve().parent.parent / name,
                  Path(sysconfig.get_path("data")) / "share" / "syncengine" / name,
                  Path(sys.prefix) / "share" / "syncengine" / name]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise UsageError(f"the {name} folder is missing from this installation; reinstall syncengine "
                     "(pip install -e . in a clone)")
