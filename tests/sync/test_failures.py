"""Issue 14, engine side: bad input is refused before anything is written, a side that cannot be
read gets no writes, and values are never rewritten into wrong ones."""
from __future__ import annotations

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
