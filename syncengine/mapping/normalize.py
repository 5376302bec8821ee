"""Normalisers: the spellings of one value that two CRMs must agree on.

``phone`` writes E.164 through ``phonenumbers`` (Google's libphonenumber metadata, kept up to
date by its maintainers): a number is read in the mapping's country unless it carries its own
code, and only a number valid for its country is rewritten. Anything else stays as written (a
Belarusian ``8 029 …`` is not a Russian ``+7 029 …``) and :func:`phone_is_valid` lets the plan
flag it.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import phonenumbers

#: The countries a mapping may name as ``phone_country`` / ``country`` (ISO 3166 codes).
COUNTRIES: tuple[str, ...] = tuple(sorted(phonenumbers.SUPPORTED_REGIONS))
_EXTENSION = re.compile(r"(доб\.?|ext\.?|extension|#|,|;).*$", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


def email(value: str) -> str:
    """Trimmed and lower-cased (the local part is case-insensitive in every CRM we met)."""
    return value.strip().lower()


def phone(value: str, country: str = "RU") -> str:
    """E.164 (``+79153878140``) from the ways people write numbers in CRMs.

    ``8 (915) 387-81-40``, ``+7(915)387-81-40``, ``9153878140`` (RU default) → ``+79153878140``;
    ``8 029 123-45-67`` with country BY → ``+375291234567``; an extension (``доб. 12``) is dropped.
    A number that is not valid for its country is returned as written (trimmed).
    """
    number = _parse(value, country)
    if number is None:
        return value.strip()
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_is_valid(value: str, country: str = "RU") -> bool:
    return _parse(value, country) is not None


def _parse(value: str, country: str) -> phonenumbers.PhoneNumber | None:
    text = _EXTENSION.sub("", value.strip())
    if text.startswith("00"):  # the international prefix most of Europe dials
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, country.upper())
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


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
