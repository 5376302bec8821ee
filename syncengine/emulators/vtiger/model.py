"""The vtiger emulator's vocabulary: dialects, operations, users, modules and the errors it answers."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
API_VERSION = "0.22"
ADMIN_ID = 1
QUERY_CAP = 100
SYNC_WINDOW = 100
TOKEN_LIFETIME = 300
DENIED = "Permission to perform the operation is denied"
DENIED_FOR_ID = "Permission to perform the operation is denied for id"
BAD_ID = "Id specified is incorrect"
DB_ERROR = "Database error while performing requested operation"
GHOST_REPLY = "Sorry! Attempt to access restricted file."


@dataclass(frozen=True)
class Dialect:
    """What differs between the installs (see §11 of the spec and the two recordings)."""

    name: str
    kind: str                      # the connector kind for sync.toml
    version: str                   # vtigerVersion
    php: str                       # default PHP profile: "legacy" | "7" | "8"
    timezone: str
    escape: bool                   # PHP json_encode defaults: \uXXXX and \/
    login_profile: bool            # V84 login puts the user profile first
    count_rows: bool               # count(*) gives [{"count": "N"}] (vtiger 8.4 gives [])
    russian: bool                  # SalesPlatform layouts, labels and auto-numbers
    error_keys: tuple[str, str]    # (code key, message key), in emitted order reversed below
    strict_element: bool           # V84/PHP 8: missing element → fatal, bad JSON → INTERNAL_SERVER_ERROR
    missing_id_invalid: bool       # update/revise without id: INVALID_ID_ATTRIBUTE (V84) or ACCESS_DENIED
    trim_label: bool               # V84 trims the record label (" Smith" → "Smith")
    dotted_dates: bool             # V84 reads "31.12.1999" as a date; SP stores nothing
    ghost_create: bool             # V84: owner that is no user + emailoptout 0 → text reply, record saved
    tags_fatal: bool               # SP: any query selecting `tags` is a PHP fatal


DIALECTS = {
    "v84": Dialect("v84", "vtiger", "8.4.0", "8", "UTC", escape=False, login_profile=True,
                   count_rows=False, russian=False, error_keys=("code", "message"), strict_element=True,
                   missing_id_invalid=True, trim_label=True, dotted_dates=True, ghost_create=True,
                   tags_fatal=False),
    "sp72": Dialect("sp72", "salesplatform", "7.2.0-202008", "8", "Europe/Moscow", escape=True,
                    login_profile=False, count_rows=True, russian=True, error_keys=("code", "message"),
                    strict_element=False, missing_id_invalid=False, trim_label=False, dotted_dates=False,
                    ghost_create=False, tags_fatal=True),
    "simplycrm": Dialect("simplycrm", "simplycrm", "7.1.0", "7", "UTC", escape=True, login_profile=False,
                         count_rows=True, russian=False, error_keys=("errorCode", "errorMessage"),
                         strict_element=False, missing_id_invalid=False, trim_label=False,
                         dotted_dates=False, ghost_create=False, tags_fatal=False),
}

# Stock ws-entity prefixes (§4); modules after CompanyDetails are numbered in listtypes order.
STOCK_PREFIXES = {
    "Campaigns": 1, "Vendors": 2, "Faq": 3, "Quotes": 4, "PurchaseOrder": 5, "SalesOrder": 6, "Invoice": 7,
    "PriceBooks": 8, "Calendar": 9, "Leads": 10, "Accounts": 11, "Contacts": 12, "Potentials": 13,
    "Products": 14, "Documents": 15, "Emails": 16, "HelpDesk": 17, "Events": 18, "Users": 19, "Groups": 20,
    "Currency": 21, "DocumentFolders": 22, "CompanyDetails": 23,
}


AUTO_NUMBER = {  # module -> (field, v84 prefix, SalesPlatform prefix)
    "Contacts": ("contact_no", "CON", "КОНТАКТ_"),
    "Accounts": ("account_no", "ACC", "КОНТР_"),
    "Leads": ("lead_no", "LEA", "ЛИД_"),
}
# varchar lengths of the text columns (vtiger's schema): MySQL cuts a longer value, counted in
# characters, without an error, and every read answers the cut value.
_PERSON = {"firstname": 40, "lastname": 80, "email": 100, "phone": 50, "mobile": 50, "fax": 50,
           "title": 50, "department": 30, "secondaryemail": 100, "otheremail": 100, "homephone": 50,
           "otherphone": 50, "assistant": 30, "assistantphone": 50, "mailingcity": 40, "mailingstreet": 250,
           "mailingcountry": 40, "mailingstate": 30, "mailingpobox": 30, "mailingzip": 30, "othercity": 40,
           "otherstreet": 250, "othercountry": 30, "otherstate": 50, "otherpobox": 30, "otherzip": 30}
MAX_LENGTH: dict[str, dict[str, int]] = {
    "Contacts": _PERSON,
    "Leads": {**_PERSON, "company": 100, "designation": 50, "website": 255, "lane": 250, "city": 30,
              "state": 30, "code": 30, "country": 30, "pobox": 30},
    "Accounts": {"accountname": 100, "phone": 30, "otherphone": 30, "fax": 30, "email1": 100, "email2": 100,
                 "website": 100, "tickersymbol": 30, "ownership": 50, "siccode": 50, "bill_city": 30,
                 "bill_street": 250, "bill_country": 30, "bill_state": 30, "bill_code": 30, "bill_pobox": 30,
                 "ship_city": 30, "ship_street": 250, "ship_country": 30, "ship_state": 30, "ship_code": 30,
                 "ship_pobox": 30},
}
NUMBER_TYPES = {"integer", "double", "currency"}
PLAIN, DATE, OWNER, USERS, REFERENCE = range(5)  # how _present renders a field
KINDS = {"date": DATE, "owner": OWNER, "reference": REFERENCE}


class WsError(Exception):
    """A JSON error reply: ``{"success": false, "error": {...}}`` with HTTP 200."""

    def __init__(self, code: str | int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class Fatal(Exception):
    """A PHP fatal: no JSON, an empty body."""


@dataclass
class User:
    id: int
    user_name: str
    access_key: str
    first_name: str
    last_name: str
    email: str
    is_admin: bool
    groups: tuple[int, ...] = ()


@dataclass
class Module:
    """One entity module: its describe layout and the shape of its table."""

    name: str
    prefix: int
    describe: dict[str, Any]
    fields: list[str]                 # field names in layout order, without the synthetic id
    types: dict[str, str]
    refers: dict[str, list[str]]
    mandatory: list[str]
    unique: list[str]
    editable: set[str]
    label_fields: list[str]
    table: str

    @property
    def owner_field(self) -> str:
        return "assigned_user_id"

    @property
    def has_tags(self) -> bool:
        return "tags" in self.types


def _module(describe: dict[str, Any], prefix: int) -> Module:
    describe = copy.deepcopy(describe)
    describe["idPrefix"] = str(prefix)
    fields = [f for f in describe["fields"] if f["name"] != "id"]
    return Module(
        name=describe["name"], prefix=prefix, describe=describe,
        fields=[f["name"] for f in fields],
        types={f["name"]: f["type"]["name"] for f in fields},
        refers={f["name"]: f["type"].get("refersTo", []) for f in fields if f["type"]["name"] == "reference"},
        mandatory=[f["name"] for f in fields if f["mandatory"]],
        unique=[f["name"] for f in fields if f.get("isunique")] if not describe["allowDuplicates"] else [],
        editable={f["name"] for f in fields if f["editable"]},
        label_fields=describe["labelFields"].split(","),
        table=f"m_{describe['name']}",
    )


def _q(name: str) -> str:
    return '"' + name + '"'


def _php_escape(text: str) -> str:
    """htmlspecialchars(ENT_QUOTES), what vtiger stores as a record label."""
    return (text.replace("&", "&amp;").replace('"', "&quot;").replace("'", "&#039;")
            .replace("<", "&lt;").replace(">", "&gt;"))


def _html_decode(text: str) -> str:
    return (text.replace("&quot;", '"').replace("&#039;", "'").replace("&lt;", "<")
            .replace("&gt;", ">").replace("&amp;", "&"))
