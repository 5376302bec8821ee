"""The write path's shortcuts give what the slow, obvious code gives."""
from __future__ import annotations

from datetime import datetime

import pytest

from syncengine.mirror.reporting import strptime

VALUES = ["01.02.2020", "1.2.2020", "31.02.2020", " 01.02.2020", "01.02.20", "01.02.2020x", "2020-01-02 03:04:05",
          "2020-01-02  03:04:05", "2020-01-02T03:04:05", "2020-1-2 3:4:5", "2020-01-02 24:00:00", "12/31/2020 23:59",
          "12/31/2020", "01 Feb 2020", "", "٠١.٠٢.٢٠٢٠"]


@pytest.mark.parametrize("fmt", ["%d.%m.%Y", "%Y-%m-%d %H:%M:%S", "%m/%d/%Y %H:%M", "%d %b %Y", "%Y-%m-%d",
                                 "%d.%m.%Y %H:%M", "%H:%M"])
def test_the_compiled_strptime_reads_what_strptime_reads(fmt):
    fast = strptime(fmt)
    for value in VALUES:
        try:
            expected: object = datetime.strptime(value, fmt)
        except ValueError:
            expected = ValueError
        try:
            got: object = fast(value)
        except ValueError:
            got = ValueError
        assert got == expected, (fmt, value)
