"""Cyrillic → ASCII identifiers, so CRM names such as "Телефон" become column names ("telefon").

A small GOST 7.79-B-like table (no dependency): predictable for a person reading the mirror, and
stable, so a column name never changes between releases.
"""
from __future__ import annotations

import re

_TABLE = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z",
    "и": "i", "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r",
    "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh",
    "щ": "shch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu", "я": "ya",
    "і": "i", "ї": "yi", "є": "ye", "ґ": "g",
}
_NOT_WORD = re.compile(r"[^A-Za-z0-9]+")


def transliterate(text: str) -> str:
    """Cyrillic letters spelled in Latin ones (capitals kept); other characters unchanged."""
    out = []
    for char in text:
        latin = _TABLE.get(char.lower())
        if latin is None:
            out.append(char)
        else:
            out.append(latin.capitalize() if char.isupper() else latin)
    return "".join(out)


def identifier(text: str, *, lower: bool = True) -> str:
    """An ASCII identifier: "Дата рождения" → "data_rozhdeniya"; "" when nothing is left."""
    name = _NOT_WORD.sub("_", transliterate(text)).strip("_")
    if name and name[0].isdigit():
        name = "f_" + name
    return name.lower() if lower else name
