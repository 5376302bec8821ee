"""Issue 14, engine side: bad input is refused before anything is written, a side that cannot be
read gets no writes, and values are never rewritten into wrong ones."""
from __future__ import annotations

import pytest

from syncengine.errors import ConfigError
from syncengine.scheduler import Daemon
from syncengine.status import collect as status_collect
from syncengine.sync import run_sync


def test_a_phone_not_valid_for_its_country_is_kept_as_written_and_flagged(pair):
    """RU default: a Belarusian or Kyiv number written nationally is not a Russian number."""
    belarus = pair.vt_add(lastname="Минская", email="minsk@example.com", phone="8 029 123-45-67")
    kyiv = pair.vt_add(lastname="Киевская", email="kyiv@example.com", phone="044 123 4567")
    moscow = pair.vt_add(lastname="Московская", email="msk@example.com", phone="8 (915) 387-81-40")

    result = run_sync(pair.config)

    assert result.ok and result.apply.writes == 3
    phones = {c["email"][0]: c["phone"] for c in pair.alfa_customers().values()}
    assert phones == {"minsk@example.com": ["8 029 123-45-67"], "kyiv@example.com": ["044 123 4567"],
                      "msk@example.com": ["+79153878140"]}
    flagged = [n for n in result.notes if "not a valid" in n]
    assert len(flagged) == 1, result.notes
    assert f"vt:Contacts {belarus}" in flagged[0] and f"vt:Contacts {kyiv}" in flagged[0]
    assert f"vt:Contacts {moscow} " not in flagged[0]


HEAD = 'left = "vt:Contacts"\nright = "alfa:customer"\nmatch_on = ["email"]\n[fields]\n' \
       'email = { left = "email", right = "email[0]", normalize = "email" }\n'


@pytest.mark.parametrize("body, key, reason", [
    # two fields write vtiger's lastname: the second would overwrite the first on every sync
    (HEAD + 'name = { left = "lastname", right = "name" }\nfirst = { left = "lastname", right = "legal_name" }\n',
     "fields.first.left", "also written by fields.name"),
    (HEAD + 'mail2 = { left = "secondaryemail", right = "email" }\n', "fields.mail2.right",
     "also written by fields.email"),
    (HEAD + 'kind = { right = "name", const = "x" }\nname = { left = "lastname", right = "name" }\n',
     "fields.name.right", "also written by fields.kind"),
    (HEAD.replace("alfa:customer", "vt:Contacts").replace("email[0]", "email"), "right",
     "the same entity as left"),
    (HEAD + 'payer = { right = "legal_name", template = "{}" }\n', "fields.payer.template", "{}"),
    (HEAD + 'payer = { right = "legal_name", template = "{lastname:{firstname}}" }\n', "fields.payer.template",
     "{lastname:{firstname}}"),
    (HEAD + 'payer = { right = "legal_name", template = "{lastname!z}" }\n', "fields.payer.template",
     "{lastname!z}"),
    (HEAD + 'payer = { right = "legal_name", template = "{lastname.upper}" }\n', "fields.payer.template",
     "{lastname.upper}"),
], ids=["same-key", "same-list-key", "const-and-field", "same-entity", "template-position", "template-nested",
        "template-conversion", "template-attribute"])
def test_a_mapping_that_would_corrupt_data_is_refused_and_nothing_is_written(pair, tmp_path, body, key, reason):
    pair.mapping_file().write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        run_sync(pair.config)
    assert err.value.file.endswith("contacts.toml") and err.value.key == key, err.value
    assert reason in err.value.reason
    assert not (tmp_path / "mirror.db").exists()
    assert pair.requests() == 0


@pytest.mark.parametrize("content", [b"\x00\x01\x02\xff\xfe binary",
                                     'left = "vt:Contacts" # Gr\xfc\xdfe\n'.encode("latin-1")],
                         ids=["binary", "latin-1"])
def test_a_mapping_file_that_is_not_utf8_is_refused(pair, tmp_path, content):
    pair.mapping_file().write_bytes(content)
    with pytest.raises(ConfigError) as err:
        run_sync(pair.config)
    assert err.value.file.endswith("contacts.toml") and "UTF-8" in err.value.reason
    assert not (tmp_path / "mirror.db").exists()


def test_an_unknown_entity_in_a_mapping_is_a_usage_error_with_the_entities_and_a_guess(pair, tmp_path):
    pair.mapping_file().write_text(HEAD.replace("vt:Contacts", "vt:Contact"), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        run_sync(pair.config)
    assert err.value.file.endswith("contacts.toml") and err.value.key == "left"
    assert "vt has no entity 'Contact'; did you mean Contacts" in err.value.reason
    assert "Accounts" in err.value.reason  # the list to choose from
    assert pair.write_requests() == 0
    assert not (tmp_path / "mirror.db").exists()


def test_the_daemon_refuses_to_start_on_a_job_naming_a_missing_mapping(pair, tmp_path):
    text = pair.config_path.read_text(encoding="utf-8").replace('mappings = ["contacts"]', 'mappings = ["contcts"]')
    pair.config_path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        Daemon(pair.config)
    assert err.value.key == "jobs.contacts-job.mappings" and "did you mean contacts?" in err.value.reason
    assert not (tmp_path / "mirror.db").exists()


def test_a_side_whose_pull_fails_gets_no_writes_and_nothing_parked(pair, monkeypatch):
    """A wrong vtiger key: the mapping that needs vtiger is left alone, with one line saying why."""
    ids = [pair.vt_add(lastname=f"Петров{i}", email=f"p{i}@example.com") for i in range(3)]
    assert run_sync(pair.config).ok
    for rid in pair.alfa_customers():  # changes that would be written to vtiger
        pair.alfa_edit(rid, name="Изменено")
    for i in range(4):
        pair.alfa_add(name=f"Новый{i}", email=[f"n{i}@example.com"])
    writes_before = pair.write_requests()
    monkeypatch.setenv("VT_ACCESS_KEY", "a-wrong-key")
    pair.vt_server.reset_stats()

    result = run_sync(pair.config)

    logins = pair.vt_server.stats_json()["requests"]
    assert (logins.get("getchallenge", 0), logins.get("login", 0)) == (1, 1)  # one login try in the run

    assert not result.ok
    assert pair.write_requests() == writes_before
    assert all(c["lastname"].startswith("Петров") for c in pair.vt_contacts().values()) and len(ids) == 3
    assert status_collect(pair.config)["parked"] == 0
    [line] = [n for n in result.notes if "contacts" in n and "vt" in n]
    assert "nothing was written, because vt:Contacts could not be read (vt: login refused" in line, line
    assert result.failed == [line]
