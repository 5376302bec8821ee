"""Normalisers: the spellings of one value that two CRMs must agree on.

Small and dependency-free. ``phone`` writes E.164 for the numbering plans our users live in
(Russia and Kazakhstan +7, Belarus +375, Ukraine +380, and any number already written with its
country code); a number it cannot read is kept as its digits, so it still compares stably.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

#: country -> (calling code, national significant number length, trunk prefixes dropped)
COUNTRIES: dict[str, tuple[str, int, tuple[str, ...]]] = {
    "RU": ("7", 10, ("8",)),
    "KZ": ("7", 10, ("8",)),
    "BY": ("375", 9, ("80", "8")),
    "UA": ("380", 9, ("0",)),
}
_CODE_LENGTHS = {"7": 10, "375": 9, "380": 9, "374": 8, "996": 9, "998": 9, "992": 9, "993": 8,
                 "994": 9, "995": 9, "373": 8, "370": 8, "371": 8, "372": 7}
_EXTENSION = re.compile(r"(доб\.?|ext\.?|extension|#|,|;).*$", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


def email(value: str) -> str:
    """Trimmed and lower-cased (the local part is case-insensitive in every CRM we met)."""
    return value.strip().lower()


def phone(value: str, country: str = "RU") -> str:
    """E.164 (``+79153878140``) from the ways people write numbers in CRMs.

    ``8 (915) 387-81-40``, ``+7(915)387-81-40``, ``9153878140`` (RU default) → ``+79153878140``;
    ``8 029 123-45-67`` with country BY → ``+375291234567``; an extension (``доб. 12``) is dropped.
    """
    text = _EXTENSION.sub("", value.strip())
    plus = text.startswith("+")
    digits = re.sub(r"\D", "", text)
    if not digits:
        return value.strip()
    if digits.startswith("00"):
        digits, plus = digits[2:], True
    if plus or _has_code(digits):
        return "+" + digits
    code, length, trunks = COUNTRIES.get(country.upper(), COUNTRIES["RU"])
    if len(digits) == length:
        return f"+{code}{digits}"
    for trunk in trunks:
        if digits.startswith(trunk) and len(digits) == len(trunk) + length:
            return f"+{code}{digits[len(trunk):]}"
    return digits


def _has_code(digits: str) -> bool:
    for code, length in _CODE_LENGTHS.items():
        if digits.startswith(code) and len(digits) == len(code) + length:
            return code != "7" or digits[1] in "3456789"  # 7 + a plausible RU/KZ area code
    return False


def text(value: str) -> str:
    """Trimmed, inner runs of whitespace made one space."""
    return _WHITESPACE.sub(" ", value.strip())


def digits(value: str) -> str:
    return re.sub(r"\D", "", value)


NORMALIZERS: dict[str, Callable[..., str]] = {
    "email": email, "phone": phone, "text": text, "lower": str.lower, "upper": str.upper,
    "digits": digits,
}


def normalize(name: str, value: Any, *, country: str = "RU") -> Any:
    if not isinstance(value, str):
        return value
    if name == "phone":
        return phone(value, country)
    return NORMALIZERS[name](value)
