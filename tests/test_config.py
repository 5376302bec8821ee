"""sync.toml validation: every mistake is refused before anything runs, naming file, key and reason."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from syncengine.cli import main
from syncengine.config import load_config, parse_duration
from syncengine.errors import ConfigError

GOOD = """
[mirror]
url = "sqlite:///mirror.db"

[systems.vt]
kind = "vtiger"
url = "https://crm.example.com"
username = "sync-bot"
access_key = "${VT_TEST_KEY}"

[[jobs]]
name = "nightly"
cron = "0 2 * * *"
pull = ["vt:Contacts"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sync.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_good_config_loads_with_defaults_and_env(tmp_path, monkeypatch):
    monkeypatch.setenv("VT_TEST_KEY", "s3cr3t-key")
    config = load_config(write(tmp_path, GOOD))
    vt = config.system("vt")
    assert vt["access_key"] == "s3cr3t-key"
    assert vt["sweep_every"] == "6h" and vt["max_delete_share"] == 0.10 and vt["verify_tls"] is True
    assert config.mirror_url == f"sqlite:///{(tmp_path / 'mirror.db').resolve()}"
    assert config.job("nightly").pull == ["vt:Contacts"]


def vt(line: str) -> str:
    """GOOD with one more line in [systems.vt]."""
    return GOOD.replace('kind = "vtiger"', f'kind = "vtiger"\n{line}')


#: issue 14.7: values refused (exit 2, file and key) instead of a traceback or silent acceptance
BAD_VALUES = [
    (vt("timeout = 0"), "systems.vt.timeout", "greater than 0"),
    (vt("timeout = -5"), "systems.vt.timeout", "greater than 0"),
    (GOOD.replace("https://crm.example.com", "https://crm.example.com:99999"), "systems.vt.url", "port"),
    (GOOD.replace('url = "sqlite:///mirror.db"', 'url = "mysql://u@db.example.com/sync"'), "mirror.url",
     "postgresql"),
    (GOOD.replace('url = "sqlite:///mirror.db"', 'url = "postgresql+psycopg://u@db:abc/sync"'), "mirror.url",
     "port"),
    (GOOD.replace('url = "sqlite:///mirror.db"', 'url = "postgresql+psycopg://u@db:99999/sync"'), "mirror.url",
     "port"),
    ("mappings_dir = 5\n" + GOOD, "mappings_dir", "must be a path"),
    (vt('timezone = "Mars/Olympus"'), "systems.vt.timezone", "unknown time zone"),
    (vt("overlap = -1"), "systems.vt.overlap", "at least 0"),
    (vt("retries = -1"), "systems.vt.retries", "at least 0"),
    (vt("rate_limit = nan"), "systems.vt.rate_limit", "a number"),
    (vt("rate_limit = inf"), "systems.vt.rate_limit", "a number"),
    (vt('change_feed = "both"'), "systems.vt.change_feed", "one of: auto, sync, query"),
    (vt("entities = [1, 2]"), "systems.vt.entities", "list of names"),
    (vt('entities = [""]'), "systems.vt.entities", "list of names"),
]


@pytest.mark.parametrize("text, key, reason", [
    (GOOD.replace('kind = "vtiger"', 'kind = "sugarcrm"'), "systems.vt.kind", "unknown kind 'sugarcrm'"),
    (GOOD.replace('username = "sync-bot"\n', ""), "systems.vt.username", "missing"),
    (GOOD.replace('url = "https://crm.example.com"', "url = 42"), "systems.vt.url", "must be a string"),
    (GOOD.replace('${VT_TEST_KEY}', "${VT_UNSET_VARIABLE}"), "systems.vt.access_key",
     "environment variable VT_UNSET_VARIABLE is not set"),
    (GOOD.replace('pull = ["vt:Contacts"]', 'pull = ["alfa"]'), "jobs.nightly.pull", "unknown system 'alfa'"),
    (GOOD.replace('cron = "0 2 * * *"', 'cron = "every night"'), "jobs.nightly.cron", "not a valid crontab"),
    (GOOD + '\n[systems.vt2]\nkind = "vtiger"\nurl = "https://x.example"\nusername = "u"\naccess_key = "k"'
     '\nsweep_every = "soon"\n',
     "systems.vt2.sweep_every", "is not a duration"),
    (GOOD.replace("[mirror]", "[mirror]\ncolour = 1"), "mirror.colour", "unknown key"),
    (GOOD.replace('kind = "vtiger"', 'kind = "vtiger"\nrate_limit = true'), "systems.vt.rate_limit", "not a boolean"),
    *BAD_VALUES,
])
def test_bad_config_is_refused_with_file_key_and_reason(tmp_path, monkeypatch, text, key, reason):
    monkeypatch.setenv("VT_TEST_KEY", "s3cr3t-key")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.file == str(path) and info.value.key == key
    assert reason in info.value.reason


def test_cli_exits_2_with_one_line_and_no_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("VT_TEST_KEY", "s3cr3t-key")
    path = write(tmp_path, GOOD.replace('kind = "vtiger"', 'kind = "sugarcrm"'))
    result = CliRunner().invoke(main, ["--config", str(path), "status"])
    assert result.exit_code == 2
    assert "systems.vt.kind" in result.output and "sugarcrm" in result.output
    assert "Traceback" not in result.output


def test_missing_file_and_env_var_config(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNCENGINE_CONFIG", str(tmp_path / "nowhere.toml"))
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 2 and "nowhere.toml" in result.output and "syncengine init" in result.output


def test_secret_type_error_does_not_echo_the_secret(tmp_path, monkeypatch):
    text = GOOD.replace('access_key = "${VT_TEST_KEY}"', "access_key = 123456789")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert "123456789" not in str(info.value)


def test_durations():
    assert parse_duration("15m").total_seconds() == 900
    assert parse_duration("6h").total_seconds() == 6 * 3600
    assert parse_duration("0s").total_seconds() == 0
    with pytest.raises(ConfigError):
        parse_duration("fortnight")


def test_init_writes_a_config_that_validates(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VT_ACCESS_KEY", "x" * 8)
    runner = CliRunner()
    assert runner.invoke(main, ["init"]).exit_code == 0
    assert load_config(tmp_path / "sync.toml").system("vt")["kind"] == "vtiger"
    again = runner.invoke(main, ["init"])
    assert again.exit_code == 2 and "--force" in again.output


def test_a_url_without_its_scheme_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("VT_TEST_KEY", "s3cr3t-key")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, GOOD.replace("https://crm.example.com", "crm.example.com")))
    assert info.value.key == "systems.vt.url" and "https://" in info.value.reason


def test_every_problem_of_a_file_is_reported_at_once_and_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("VT_TEST_KEY", "s3cr3t-key")
    path = write(tmp_path, vt('timeout = 0\nretries = -1\nchange_feed = "both"')
                 .replace('cron = "0 2 * * *"', 'cron = "every night"'))
    result = CliRunner().invoke(main, ["--config", str(path), "pull"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    for key in ("systems.vt.timeout", "systems.vt.retries", "systems.vt.change_feed", "jobs.nightly.cron"):
        assert key in result.output, key
    assert not (tmp_path / "mirror.db").exists()
