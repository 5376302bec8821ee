"""A mirror URL naming a driver this install lacks is a usage error that says what to install."""
from __future__ import annotations

import pytest

from syncengine.errors import UsageError
from syncengine.mirror.db import create_engine


def test_a_missing_database_driver_names_itself():
    with pytest.raises(UsageError) as caught:
        create_engine("mysql+pymysql://user@127.0.0.1/db")
    assert "mirror.url" in str(caught.value) and "'pymysql' is not installed" in str(caught.value)
    assert caught.value.exit_code == 2
