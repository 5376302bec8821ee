"""Mapping files: refusals with file, key and reason; normalisers; canonical values."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from syncengine.cli import main
from syncengine.errors import ConfigError
from syncengine.mapping import Translator, load_mappings, normalize, validate
from syncengine.types import EntitySchema, Field

GOOD = """
left = "vt:Contacts"
right = "alfa:customer"
match_on = ["email"]
[fields]
email = { left = "email", right = "email[0]", normalize = "email" }
"""


@pytest.mark.parametrize("raw, expected", [
    ("8 (915) 387-81-40", "+79153878140"), ("+7(915)387-81-40", "+79153878140"), ("9153878140", "+79153878140"),
    ("7 915 387 81 40", "+79153878140"), ("8-915-387-81-40 доб. 12", "+79153878140"),
    ("+375 29 123-45-67", "+375291234567"), ("+380 67 123 4567", "+380671234567"), ("0079153878140", "+79153878140"),
    ("8 7012 34 56 78", "+77012345678"), ("12-34", "12-34"), ("8 029 123-45-67", "8 029 123-45-67"),
    ("044 123 4567", "044 123 4567"),
])
def test_phone_to_e164(raw, expected):
    assert normalize("phone", raw) == expected


def test_phone_country_defaults():
    assert normalize("phone", "8 029 123-45-67", country="BY") == "+375291234567"
    assert normalize("phone", "067 123 45 67", country="UA") == "+380671234567"
    assert normalize("email", "  Ivan.Petrov@Mail.RU ") == "ivan.petrov@mail.ru"


def _config(pair, text: str, name: str = "contacts"):
    pair.mapping_file(name).write_text(text, encoding="utf-8")
    return pair.config


@pytest.mark.parametrize("body, key, reason", [
    ('[fields]\nstage = { left = "leadsource", right = "lead_source_id", values = { "Web" = 1, "Cold Call" = 1 } }',
     "fields.stage.values", "not one-to-one"),
    ('[fields]\nnote = { left = "description", right = "note", template = "{firstname}" }',
     "fields.note", "cannot be synced both ways"),
    ('[fields]\nnote = { right = "note", template = "{firstname}", direction = "both" }',
     "fields.note.direction", "synced both ways"),
    ('[fields]\naccount = { left = "account_id", right = "company_id", ref = "accounts" }',
     "fields.account.ref", "no mapping named 'accounts'"),
    ('[fields]\nemail = { left = "email" }', "fields.email.right", "missing"),
    ('conflict = "loudest"\n[fields]\nemail = { left = "email", right = "email[0]" }', "conflict", "not one of"),
    ('[fields]\nemail = { left = "email", right = "email[0]", normalise = "email" }', "fields.email.normalise",
     "unknown key"),
])
def test_refused_before_anything_runs(pair, body, key, reason):
    _config(pair, 'left = "vt:Contacts"\nright = "alfa:customer"\n' + body)
    with pytest.raises(ConfigError) as err:
        load_mappings(pair.config)
    assert err.value.file.endswith("contacts.toml") and err.value.key == key and reason in err.value.reason


def test_unknown_fields_are_refused_against_describe(pair):
    config = _config(pair, GOOD + 'phone = { left = "phon", right = "phone[0]" }\n')
    result = CliRunner().invoke(main, ["--config", str(pair.config_path), "plan"])
    assert result.exit_code == 2
    assert "contacts.toml: fields.phone.left: vt:Contacts has no field 'phon'; did you mean phone" in result.output
    _config(pair, GOOD + 'no = { left = "contact_no", right = "barcode" }\n')
    result = CliRunner().invoke(main, ["--config", str(pair.config_path), "sync"])
    assert result.exit_code == 2 and "read-only" in result.output
    assert config.mappings_dir.is_dir()


def test_value_maps_must_use_the_picklist_values(pair):
    _config(pair, GOOD + 'source = { left = "leadsource", right = "lead_source_id", values = { "Webb" = 1 } }\n')
    result = CliRunner().invoke(main, ["--config", str(pair.config_path), "plan"])
    assert result.exit_code == 2 and "fields.source.values: 'Webb' not among the picklist values" in result.output


def test_canonical_values_ignore_formatting(pair):
    _config(pair, GOOD + """
when  = { left = "birthday", right = "dob", type = "date" }
name  = { left = "lastname", right = "name" }
flag  = { left = "donotcall", right = "is_study", type = "boolean" }
stage = { left = "leadsource", right = "lead_source_id", values = { "Web Site" = 3, "Cold Call" = 1 } }
""")
    [mapping] = load_mappings(pair.config).values()
    schemas = {"left": EntitySchema("Contacts", [Field("email", "email"), Field("birthday", "date"),
                                                 Field("lastname"), Field("donotcall", "boolean"),
                                                 Field("leadsource", "picklist", choices=(("Web Site", "Web Site"),
                                                                                          ("Cold Call", "Cold Call")))],
                                 html_encoded=True),
               "right": EntitySchema("customer", [Field("email", "json"), Field("dob", "date", format="%d.%m.%Y"),
                                                  Field("name"), Field("is_study", "integer"),
                                                  Field("lead_source_id", "reference")])}
    validate(mapping, schemas)
    tr = Translator(mapping, schemas)
    left = tr.canonical("left", {"email": " A@B.ru", "birthday": "2001-02-03", "lastname": "Tom &amp; Jerry ",
                                 "donotcall": "1", "leadsource": "Web Site"})
    right = tr.canonical("right", {"email": ["a@b.ru"], "dob": "03.02.2001", "name": "Tom & Jerry",
                                   "is_study": 1, "lead_source_id": 3})
    assert left == right == {"email": "a@b.ru", "when": "2001-02-03", "name": "Tom & Jerry", "flag": True,
                             "stage": "Web Site"}
    assert tr.to_raw("right", {"stage": "Cold Call", "email": "x@y.z"}, {"email": ["old@y.z", "2nd@y.z"]}) == \
        {"lead_source_id": 1, "email": ["x@y.z", "2nd@y.z"]}
