"""Alfa CRM's REST API (``/v2api``, a Yii2 app; see specs/alfacrm.md).

Every call is a POST with a JSON body and the token of ``/v2api/auth/login`` in
``X-ALFACRM-TOKEN``. The token is renewed ``token_refresh`` seconds after login (Alfa tokens live
15 min to 1 h depending on the docs' age) and once more on any 401.

Change capture. Alfa has no change feed, so every entity but ``log`` is a *scan* entity:

* A **full scan** pages ``index`` (0-based ``page`` in the body, ``?per-page=50``) branch by branch,
  de-duplicating rows by id, and yields ``scan=True`` batches; the engine hashes them and sweeps
  away what the scan did not list. Customers and groups are read with ``removed=1``, so archived
  rows stay live records carrying ``archived: true`` (archive is not delete; a row archived in
  the CRM is *updated* in the mirror, not deleted).
* Customers are ordered by name, so an edit during a scan moves rows across pages and offset paging
  can skip a row. Before the scan ends, the rows the Log names as changed since the scan began are
  re-read and listed too, and each branch's listing is checked against a fresh ``total``; a shortfall
  is re-paged once more, and if rows are still missing the scan raises instead of ending (an ended
  scan would delete what it skipped). A page that comes back empty while ``total`` says rows
  remain is retried as a transient fault.
* Between full scans the Log is polled: rows with a Log id above the cursor are re-read by id
  (``removed=1``); ids no longer found are deletions. The engine asks for a full scan (cursor None)
  on the first pull, on ``pull --full`` and whenever a sweep is due (``sweep_every``:
  ``sweep_reads_records``, because edits the Log does not record would otherwise never be seen).
  A Log that is unreadable, switched off (``use_log = false``) or trimmed past the cursor makes
  the pull a full scan too.

Cursor (JSON): ``{"log": <highest Log id of the entity's class seen, or null when the Log is
unreadable>}``. The ``log`` entity itself is append-only and read incrementally with the same cursor.

A full scan resumes. ``index`` has no sort, no keyset and no cheap id listing, and customers come
by name, so a page number alone cannot say where a cut-short scan stood once rows moved. The Log
can: every ``CHECKPOINT`` pages the scan asks for the Log's newest entry of the class, and while it
is still the one the scan began at, nothing moved, the pages read are exact and the batch carries
``{"log": <start>, "scan": {"branch", "page", "size"}}``. A read cut short goes on from the page
after it, one page earlier for every page-size of rows the Log names as changed since the start
(each change moves a row by at most one place), re-reads those rows by id, and checks the resumed
branch against its ``total`` counting the pages before it as full. Once the Log shows a change
during the scan, later pages carry no cursor (a skip before the cut could not be found again): the
read resumes at the last exact checkpoint. Without a readable Log a cut-short scan starts over.
"""
from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import requests

from ..errors import AuthError, NotFound, ProtocolError, TransientError, Unsupported, ValidationError
from ..http import HttpClient, json_body
from ..jsonutil import dumps, loads
from ..redact import SECRETS
from ..types import Capture, ChangeBatch, EntitySchema, Field, SystemSettings, setting
from .base import Connector
from .listing import Page, offset_pages
from .session import SessionCache

log = logging.getLogger("syncengine.alfacrm")

TOKEN_HEADER = "X-ALFACRM-TOKEN"
MAX_PAGE = 50                 # Yii2 clamps per-page to 1..50
ACTIVE_E_DATE = "2030-12-31"  # e_date of rows that are not archived
EVENT_DELETE = 3
CHECKPOINT = 10               # scan pages per resumable cursor (each costs one Log request)
EDITED_AT = "edited_at"       # added to rows read because the Log named them: the Log's newest date_time

# Field lists: "name:type" with type one of base.FIELD_TYPES, ">model" for a reference and
# "@format" (strptime) for a date that is not ISO. Labels are the CRM's (they name fields in validation errors).
_DICTIONARY = "id:integer name:string is_enabled:boolean weight:integer"
_FIELDS: dict[str, str] = {
    "customer": "id:integer branch_ids:json teacher_ids:json name:string barcode:string color:string "
                "is_study:integer study_status_id:reference>study-status lead_status_id:reference>lead-status "
                "lead_reject_id:integer lead_source_id:reference>lead-source assigned_id:owner "
                "legal_type:integer legal_name:string company_id:integer dob:date@%d.%m.%Y balance:number "
                "balance_base:number balance_bonus:number paid_count:integer next_lesson_date:datetime "
                "paid_till:datetime last_attend_date:date b_date:datetime e_date:date note:text "
                "paid_lesson_count:integer paid_lesson_date:datetime phone:json email:json web:json addr:json",
    "group": "id:integer branch_ids:json teacher_ids:json name:string level_id:integer status_id:integer "
             "company_id:integer streaming_id:integer limit:integer note:text b_date:date e_date:date "
             "created_at:datetime updated_at:datetime",
    "lesson": "id:integer branch_id:reference>branch date:date time_from:datetime time_to:datetime "
              "lesson_type_id:integer status:integer subject_id:reference>subject room_id:integer "
              "teacher_ids:json customer_ids:json group_ids:json streaming:json note:text topic:string "
              "homework:text details:json",
    "pay": "id:integer branch_id:reference>branch location_id:reference>location customer_id:reference>customer "
           "pay_type_id:integer pay_account_id:integer pay_item_id:integer teacher_id:reference>teacher "
           "commodity_id:integer ctt_id:integer document_date:date income:number payer_name:string note:text "
           "is_confirmed:boolean",
    "teacher": "id:integer branch_ids:json name:string dob:date@%d.%m.%Y gender:integer streaming_id:integer "
               "note:text e_date:date avatar_url:url phone:json email:json web:json addr:json teacher-to-skill:json",
    "task": "id:integer company_id:integer branch_ids:json user_id:owner assigned_ids:json group_ids:json "
            "customer_ids:json title:string text:text is_archive:boolean created_at:datetime is_done:boolean "
            "is_private:boolean due_date:date done_date:datetime is_public_entry:boolean is_notify:boolean "
            "priority:integer",
    "communication": "id:integer type_id:integer class:string related_id:integer user_id:owner "
                     "added:datetime comment:text",
    "lead-status": _DICTIONARY, "study-status": _DICTIONARY, "lead-reject": _DICTIONARY,
    "lead-source": "id:integer code:string name:string is_enabled:boolean weight:integer",
    "subject": "id:integer name:string weight:integer",
    "branch": "id:integer name:string is_active:boolean subject_ids:json weight:integer",
    "location": "id:integer branch_id:reference>branch is_active:boolean name:string weight:integer",
    "log": "id:integer entity:string entity_id:integer user_id:owner event:integer fields_old:json "
           "fields_new:json fields_rel:json date_time:datetime",
}
LABELS = {"name": "Имя", "is_study": "Клиент/лид", "legal_type": "Тип клиента", "branch_ids": "Филиалы",
          "dob": "Дата рождения", "email": "E-mail", "phone": "Телефон", "balance": "Баланс",
          "date": "Дата", "lesson_type_id": "Тип урока", "customer_id": "Клиент", "income": "Сумма",
          "text": "Текст", "comment": "Комментарий", "class": "Класс", "related_id": "Объект",
          "title": "Заголовок", "document_date": "Дата документа", "archived": "В архиве",
          EDITED_AT: "Изменён (по Логу)"}
MANDATORY = {"customer": ("name", "is_study", "legal_type", "branch_ids"), "lesson": ("date", "lesson_type_id"),
             "pay": ("customer_id", "income"), "task": ("text",), "communication": ("class", "related_id", "comment")}


@dataclass(frozen=True)
class Model:
    """How one entity is read: its Log class, whether it lives in branches, whether it archives."""

    log_class: str | None
    per_branch: bool = False
    archivable: bool = False


MODELS: dict[str, Model] = {
    "customer": Model("Customer", per_branch=True, archivable=True),
    "group": Model("Group", per_branch=True, archivable=True),
    "lesson": Model("Lesson", per_branch=True),
    "pay": Model("Pay", per_branch=True),
    "teacher": Model("Teacher", per_branch=True),
    "task": Model("Task", per_branch=True),
    "location": Model("Location", per_branch=True),
    "communication": Model(None),   # nested under its customer: read customer by customer
    "lead-status": Model("LeadStatus"), "lead-source": Model("LeadSource"),
    "lead-reject": Model("LeadReject"), "study-status": Model("StudyStatus"),
    "subject": Model("Subject"), "branch": Model("Branch"), "log": Model(None),
}


@dataclass(frozen=True, kw_only=True)
class AlfaSettings(SystemSettings):
    url: str = setting(form="url", help="the account's address, e.g. https://school.s20.online")
    email: str = setting(help="the API user's e-mail")
    api_key: str = setting(secret=True, help="the API user's key (Настройки → API)")
    branch: int = setting(1, minimum=1, help="branch (филиал) id used for company-wide models and writes")
    branches: list[int] | None = setting(  # noqa: RUF009 - setting() makes a dataclasses.field
        None, help="branch ids to read (default: every active branch)")
    token_refresh: float = setting(840, minimum=0,
                                   help="seconds after login at which the token is renewed (tokens live 15–60 min)")
    page_size: int = setting(MAX_PAGE, minimum=1, maximum=MAX_PAGE, help="rows per index page, 1..50")
    use_log: bool = setting(True, help="poll the Log between full scans (false: every pull is a full scan)")
    timezone: str = setting("Europe/Moscow", form="timezone", help="the account's time zone (date-times are local)")


class AlfaCrmConnector(Connector):
    kind = "alfacrm"
    max_concurrency = 1  # one request in flight per token (spec §9.2)
    sweep_reads_records = True  # the Log may miss edits (imports, bulk actions): sweeps re-read rows
    Settings = AlfaSettings
    settings: AlfaSettings
    default_entities = ("customer", "group", "lesson", "pay", "teacher", "task", "lead-status",
                        "lead-source", "study-status", "subject", "branch", "location")

    def __init__(self, name: str, config: Mapping[str, Any], http: HttpClient) -> None:
        super().__init__(name, config, http)
        self.base = re.sub(r"/v2api$", "", self.settings.url.rstrip("/")) + "/v2api"
        self.branch = self.settings.branch
        self.page_size = self.settings.page_size
        self.use_log = self.settings.use_log
        self.timezone = self.settings.timezone
        self._token = SessionCache(self._login, max_age=self.settings.token_refresh)
        self._branches = self.settings.branches or None

    # -- transport ---------------------------------------------------------------------------
    def _call(self, path: str, body: dict[str, Any] | None = None, query: dict[str, Any] | None = None,
              *, parse: Any = None) -> Any:
        """POST /v2api/PATH with the token; a refused token is renewed once and the call repeated."""
        op = "/".join(path.split("/")[-2:])
        for attempt in (1, 2):
            token = self._token.get()
            try:
                return self.http.request("POST", f"{self.base}/{path}", op=op, parse=parse or self._parse,
                                         idempotent=not path.endswith("/create"), json=body or {}, params=query,
                                         headers={TOKEN_HEADER: token, "Accept": "application/json"})
            except _TokenRefused as exc:
                self._token.drop(token)
                if attempt == 2:
                    raise self._token.refuse(AuthError(
                        f"the token was refused right after login ({exc}); check that the API user may "
                        "use v2api", system=self.name)) from None
        raise AssertionError("unreachable")

    def _parse(self, response: requests.Response) -> Any:
        status = response.status_code
        if status == 401:
            raise _TokenRefused(_message(response), system=self.name)
        if status == 403:
            raise _AccessDenied(f"access denied ({_message(response)}); give the API user the v2api "
                                "role and access to this section", system=self.name)
        if status == 404:
            raise NotFound(_message(response), system=self.name)
        if status == 422:  # a Yii validation list instead of the documented success:false
            raise _refused(json_body(response, self.name)).for_system(self.name)
        if 400 <= status < 500:
            raise ProtocolError(f"HTTP {status}: {_message(response)}", system=self.name)
        body = json_body(response, self.name)  # 5xx and unreadable JSON are transient
        if not isinstance(body, dict):
            raise ProtocolError("the answer is not a JSON object; is url the Alfa CRM account's address?",
                                system=self.name)
        return body

    def _login(self) -> str:
        email = self.settings.email
        try:
            body = self.http.request("POST", f"{self.base}/auth/login", op="auth/login", parse=self._parse,
                                     json={"email": email, "api_key": self.settings.api_key})
        except (_AccessDenied, _TokenRefused):
            raise AuthError(f"login refused for {email!r}; check email and api_key "
                            "(the key of that user in Alfa CRM's API settings)", system=self.name) from None
        except NotFound:
            raise AuthError(f"no /v2api/auth/login at {self.base}; is url the account's address "
                            "(e.g. https://school.s20.online)?", system=self.name) from None
        token = body.get("token")
        if not isinstance(token, str) or not token:
            raise ProtocolError("login answered without a token", system=self.name)
        SECRETS.add_derived(token)
        return token

    # -- paging ------------------------------------------------------------------------------
    def _index(self, model: str, branch: int, page: int, filters: dict[str, Any], *, size: int | None = None,
               parents: dict[str, Any] | None = None, known_size: int = 0) -> dict[str, Any]:
        """One ``index`` page; a page emptied while ``total`` says rows remain is a transient fault."""
        size = size or self.page_size

        def parse(response: requests.Response) -> dict[str, Any]:
            body = self._parse(response)
            items, total = body.get("items"), body.get("total")
            if not isinstance(items, list) or not isinstance(total, int):
                raise ProtocolError(f"{model}/index answered without items/total")
            if not items and page * (known_size or size) < total:
                raise TransientError(f"{model}/index page {page} came back empty although total is {total}")
            return body

        return self._call(f"{branch}/{model}/index", {**filters, "page": page},
                          {"per-page": size, **(parents or {})}, parse=parse)

    def _pages(self, model: str, branch: int, filters: dict[str, Any],
               parents: dict[str, Any] | None = None) -> Iterator[list[dict[str, Any]]]:
        """Every page of a listing: until an empty page or until the rows read reach ``total``
        (one pass: a scan checks its branches against fresh totals itself)."""
        largest = 0  # the server may clamp per-page: the largest page seen is its page size

        def fetch(page: int) -> Page:
            nonlocal largest
            body = self._index(model, branch, page, filters, parents=parents, known_size=largest)
            largest = max(largest, len(body["items"]))
            return Page(body["items"], body["total"])

        return (rows for _, rows in offset_pages(fetch, what=model, system=self.name, restarts=None))

    def _numbered_pages(self, model: str, branch: int, filters: dict[str, Any], first: int,
                        before: int) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        """(number, rows) of the pages FIRST, FIRST+1, … of a listing whose earlier pages hold
        BEFORE rows (one pass, as :meth:`_pages`)."""
        largest = 0

        def fetch(page: int) -> Page:
            nonlocal largest
            body = self._index(model, branch, page, filters, known_size=largest)
            largest = max(largest, len(body["items"]))
            return Page(body["items"], body["total"])

        return offset_pages(fetch, what=model, system=self.name, first=first, before=before, restarts=None)

    def _total(self, model: str, branch: int, filters: dict[str, Any]) -> int:
        return self._index(model, branch, 0, filters, size=1)["total"]

    def _read_branches(self, entity: str) -> list[int]:
        if not MODELS[entity].per_branch:
            return [self.branch]
        if self._branches is None:
            self._branches = sorted({row["id"] for items in self._pages("branch", self.branch, {"is_active": 1})
                                     for row in items}) or [self.branch]
        return self._branches

    # -- metadata ----------------------------------------------------------------------------
    def check(self) -> str:
        branches = self._read_branches("customer")
        customers = sum(self._total("customer", b, {"removed": 1}) for b in branches)
        return f"Alfa CRM at {self.base} as {self.settings.email}: {len(branches)} branch(es), {customers} customers"

    def entities(self) -> list[str]:
        return list(MODELS)

    def describe(self, entity: str) -> EntitySchema:
        model = _model(entity, self.name)
        fields = [_field(spec, entity) for spec in _FIELDS[entity].split()]
        if model.archivable:
            fields.append(Field("archived", "boolean", LABELS["archived"], editable=False))
        if model.log_class:
            fields.append(Field(EDITED_AT, "datetime", LABELS[EDITED_AT], editable=False))
        if entity != "communication":  # custom fields (custom_<code>) show only in the rows
            known = {f.name for f in fields}
            sample = self._index(entity, self._read_branches(entity)[0], 0, _scan_filters(model), size=1)["items"]
            fields += [Field(key, "string", key) for row in sample[:1] for key in row if key not in known]
        return EntitySchema(entity, fields, label=model.log_class or entity, timezone=self.timezone,
                            modified_field=EDITED_AT if model.log_class else None,
                            name_fields=("name",) if any(f.name == "name" for f in fields) else ())

    def capture(self, entity: str) -> Capture:
        return Capture.INCREMENTAL if entity == "log" else Capture.SCAN

    def change_reading(self, entity: str, cursor: str | None) -> str:
        state = loads(cursor) if cursor else {}
        if entity == "log":
            return f"Log after entry #{state.get('log') or 0}"
        if cursor is None:
            return "full `index` scan (no cursor yet)"
        if not _model(entity, self.name).log_class:
            return "full `index` scan every pull (no Log for this entity)"
        if not self.use_log:
            return "full `index` scan every pull (use_log = false)"
        if "scan" in state:
            return f"full `index` scan cut short: resumes in branch {state['scan']['branch']} near page " \
                   f"{state['scan']['page'] + 1}, then rows the Log names re-read by id"
        if state.get("log") is None:
            return "full `index` scan every pull (the Log was unreadable)"
        return f"Log after entry #{state['log']}, rows re-read by id; full `index` scan at each sweep"

    # -- change capture ----------------------------------------------------------------------
    def read_changes(self, entity: str, cursor: str | None) -> Iterator[ChangeBatch]:
        model = _model(entity, self.name)
        state = loads(cursor) if cursor else {}
        if entity == "log":
            yield from self._read_log(state.get("log") or 0)
            return
        if "scan" in state and self.use_log and model.log_class:   # a first read cut short
            resume = self._resume_point(entity, state)
            if resume is not None:
                yield from self._read_scan(entity, mark=state["log"], resume=resume)
                return
        elif state.get("log") is not None and self.use_log and model.log_class:
            try:
                yield from self._read_hinted(entity, state)
                return
            except _LogGap as exc:
                log.info("%s:%s: %s; scanning everything", self.name, entity, exc)
        yield from self._read_scan(entity)

    def _read_scan(self, entity: str, mark: int | None = None,
                   resume: _Checkpoint | None = None) -> Iterator[ChangeBatch]:
        """A full scan; every CHECKPOINT pages a cursor to resume from, while the Log shows that
        nothing of ENTITY changed since the scan began (pages of an unchanged listing are exact).
        A resumed scan (RESUME) is not a complete listing: no ``scan`` batches."""
        scan = _Scan(log_id=self._log_head(entity) if resume is None else mark)
        for records, checkpoint in self._scan_pages(entity, scan, resume):
            cursor = dumps({"log": scan.start, "scan": asdict(checkpoint)}) if checkpoint else None
            if records or cursor:
                yield ChangeBatch(records=records, scan=resume is None, cursor=cursor)
        yield ChangeBatch(scan=resume is None, cursor=dumps({"log": scan.log_id}))

    def _resume_point(self, entity: str, state: dict[str, Any]) -> _Checkpoint | None:
        """Where a scan cut short goes on: the page after its last checkpoint, moved back one page
        per page-size of rows the Log names as changed since (each can shift a row back by one);
        None (scan again) when the Log no longer reaches the scan's start."""
        try:
            changed, _ = self._log_since(entity, int(state["log"]))
        except _LogGap as exc:
            log.info("%s:%s: %s; scanning everything", self.name, entity, exc)
            return None
        last = _Checkpoint(**state["scan"])
        page = max(last.page + 1 - -(-len(changed) // last.size), 0)
        return _Checkpoint(last.branch, page, last.size)

    def _scan_pages(self, entity: str, scan: _Scan, resume: _Checkpoint | None = None,
                    ) -> Iterator[tuple[list[dict[str, Any]], _Checkpoint | None]]:
        """A complete listing of ENTITY in pages of new rows, each with a checkpoint or None (see
        the module docstring); RESUME: the branches and pages before it were read by a scan cut short."""
        model = MODELS[entity]
        if entity == "communication":
            yield from ((rows, None) for rows in self._scan_communications(scan))
            return
        filters = _scan_filters(model)
        listed: dict[int, set[int]] = {}
        before: dict[int, int] = {}   # rows of the pages a resumed branch starts after
        branches = self._read_branches(entity)
        if resume and resume.branch in branches:
            branches = branches[branches.index(resume.branch):]
        for branch in branches:
            first = resume.page if resume and branch == resume.branch else 0
            before[branch] = first * resume.size if resume and first else 0
            largest = 0
            for number, items in self._numbered_pages(entity, branch, filters, first, before[branch]):
                largest = max(largest, len(items))
                checkpoint = None
                if scan.exact and (number + 1) % CHECKPOINT == 0:
                    scan.exact = self._log_head(entity) == scan.start
                    checkpoint = _Checkpoint(branch, number, largest) if scan.exact else None
                yield [r for rows in scan.fresh([items], listed.setdefault(branch, set()), model)
                       for r in rows], checkpoint
        gone: set[int] = set()
        if scan.log_id is not None:
            try:
                changed, scan.log_id = self._log_since(entity, scan.log_id)
            except _LogGap as exc:
                log.info("%s:%s: %s; the scan is checked by totals only", self.name, entity, exc)
                changed, scan.log_id = {}, None
            for chunk in _chunks(sorted(changed), self.page_size):
                found = self._fetch_ids(entity, chunk, listed)
                gone.update(set(chunk) - {r["id"] for r in found})
                scan.seen.update(r["id"] for r in found)
                if found:
                    yield [_record(model, r) for r in found], None
        for branch, ids in listed.items():
            for attempt in (1, 2):
                total = self._total(entity, branch, filters)
                if before.get(branch, 0) + len(ids - gone) >= total:
                    break
                if attempt == 2:
                    raise TransientError(f"{entity} rows kept moving between pages while branch {branch} was "
                                         f"read ({len(ids - gone)} of {total} listed); nothing was deleted, "
                                         "the next pull scans again", system=self.name)
                log.info("%s:%s: branch %d listed %d of %d rows (edits moved rows between pages); reading "
                         "it again", self.name, entity, branch, before.get(branch, 0) + len(ids - gone), total)
                before[branch] = 0
                yield from ((rows, None) for rows in scan.fresh(self._pages(entity, branch, filters), ids, model))

    def _scan_communications(self, scan: _Scan) -> Iterator[list[dict[str, Any]]]:
        """Communications are nested under their customer: one listing per customer (costly)."""
        for customers, _ in self._scan_pages("customer", _Scan(log_id=None)):
            for customer in customers:
                parents = {"class": "Customer", "related_id": customer["id"]}
                yield from scan.fresh(self._pages("communication", self.branch, {}, parents), set(),
                                      MODELS["communication"])

    def _read_hinted(self, entity: str, state: dict[str, Any]) -> Iterator[ChangeBatch]:
        model = MODELS[entity]
        changed, log_id = self._log_since(entity, int(state["log"]))
        for chunk in _chunks(sorted(changed), self.page_size):
            found = self._fetch_ids(entity, chunk)
            missing = set(chunk) - {r["id"] for r in found}
            records = [{**_record(model, r), EDITED_AT: changed[r["id"]]} for r in found]
            yield ChangeBatch(records=records, deleted=[str(i) for i in sorted(missing)])
        yield ChangeBatch(cursor=dumps({"log": log_id}))

    def _log_head(self, entity: str) -> int | None:
        """The newest Log id of ENTITY's class (0: none yet), or None when the Log cannot be used."""
        model = MODELS[entity]
        if not self.use_log or not model.log_class:
            return None
        try:
            items = self._index("log", self.branch, 0, {"entity": model.log_class}, size=1)["items"]
        except _AccessDenied:
            log.info("%s: the Log is not readable by this API user; every pull scans", self.name)
            return None
        return items[0]["id"] if items else 0

    def _log_since(self, entity: str, since: int) -> tuple[dict[int, str], int]:
        """Ids of ENTITY that the Log names after Log id SINCE with their newest Log ``date_time``
        (Alfa keeps no change time on the rows themselves), and the newest Log id seen."""
        changed: dict[int, str] = {}
        newest, reached = since, False
        try:
            for items in self._pages("log", self.branch, {"entity": MODELS[entity].log_class}):
                for row in items:  # newest first; rows logged meanwhile push older ones down (repeats)
                    if row["id"] <= since:
                        reached = True
                    else:
                        changed[row["entity_id"]] = max(changed.get(row["entity_id"], ""), row["date_time"])
                        newest = max(newest, row["id"])
                if reached:
                    break
        except _AccessDenied:
            raise _LogGap("the Log is no longer readable by this API user") from None
        if since and not reached:
            raise _LogGap(f"the Log no longer reaches back to entry {since}")
        return changed, newest

    def _read_log(self, since: int) -> Iterator[ChangeBatch]:
        """The Log itself: entries above SINCE, newest pages first (entries never change)."""
        newest, seen = since, set[int]()
        for items in self._pages("log", self.branch, {}):
            fresh = [r for r in items if r["id"] > since and r["id"] not in seen]
            seen.update(r["id"] for r in fresh)
            if fresh:
                newest = max(newest, max(r["id"] for r in fresh))
                yield ChangeBatch(records=[_record(MODELS["log"], r) for r in fresh])
            if any(r["id"] <= since for r in items):
                break
        yield ChangeBatch(cursor=dumps({"log": newest}))

    def list_ids(self, entity: str) -> Iterator[list[str]]:
        if entity == "log":
            for items in self._pages("log", self.branch, {}):
                yield [str(r["id"]) for r in items]
            return
        scan = _Scan(log_id=self._log_head(entity))
        scan.exact = False   # a listing of ids commits no cursor: no Log request per checkpoint
        for records, _ in self._scan_pages(entity, scan):
            if records:
                yield [str(r["id"]) for r in records]

    def fetch(self, entity: str, ids: Iterable[str]) -> list[dict[str, Any]]:
        model = _model(entity, self.name)
        if entity == "communication":
            raise Unsupported("communications can only be read through their customer", system=self.name)
        wanted = sorted({int(i) for i in ids})
        return [_record(model, r) for chunk in _chunks(wanted, self.page_size) for r in self._fetch_ids(entity, chunk)]

    def outside_scope(self, entity: str, ids: Iterable[str]) -> list[str]:
        """Ids found in a branch that ``branches`` leaves out (a customer moved to another branch)."""
        if not MODELS[entity].per_branch or not self.settings.branches:
            return []
        every = {row["id"] for items in self._pages("branch", self.branch, {}) for row in items}
        others = sorted(every - set(self._read_branches(entity)))
        wanted = sorted({int(i) for i in ids})
        return [str(r["id"]) for chunk in _chunks(wanted, self.page_size)
                for r in self._fetch_ids(entity, chunk, branches=others)] if others and wanted else []

    def _fetch_ids(self, entity: str, ids: list[int], listed: dict[int, set[int]] | None = None,
                   branches: list[int] | None = None) -> list[dict[str, Any]]:
        """Rows with these ids in any branch read (or in BRANCHES; archived too); LISTED collects
        ids per branch."""
        found: dict[int, dict[str, Any]] = {}
        for branch in self._read_branches(entity) if branches is None else branches:
            for items in self._pages(entity, branch, {**_scan_filters(MODELS[entity]), "id": ids}):
                for row in items:
                    found.setdefault(row["id"], row)
                    if listed is not None:
                        listed.setdefault(branch, set()).add(row["id"])
        return list(found.values())

    def search(self, entity: str, criteria: dict[str, Any]) -> list[dict[str, Any]]:
        model = _model(entity, self.name)
        found: dict[int, dict[str, Any]] = {}
        for branch in self._read_branches(entity):
            for items in self._pages(entity, branch, {**_scan_filters(model), **criteria}):
                for row in items:  # Alfa's text filters match substrings: keep exact matches only
                    if all(_matches(row.get(k), v) for k, v in criteria.items()):
                        found.setdefault(row["id"], _record(model, row))
        return list(found.values())

    # -- writes ------------------------------------------------------------------------------
    def create(self, entity: str, values: dict[str, Any]) -> dict[str, Any]:
        """Create a row; customers get the CRM's mandatory defaults (this branch, a client, a person)."""
        model = _writable(entity, self.name)
        payload = _outgoing(values)
        if entity == "customer":
            payload = {"branch_ids": [self.branch], "is_study": 1, "legal_type": 1, **payload}
        query: dict[str, Any] = {k: payload[k] for k in ("class", "related_id")
                                 if entity == "communication" and k in payload}
        body = self._call(f"{self.branch}/{entity}/create", payload, query)
        return _record(model, self._written(body, entity, "create"))

    def update(self, entity: str, remote_id: str, values: dict[str, Any]) -> dict[str, Any]:
        model = _writable(entity, self.name)
        try:
            body = self._call(f"{self.branch}/{entity}/update", _outgoing(values), {"id": remote_id})
        except NotFound:
            raise NotFound(f"update of {entity} {remote_id}: no such record", system=self.name) from None
        return _record(model, self._written(body, entity, "update"))

    def delete(self, entity: str, remote_id: str) -> None:
        """Delete a row; Alfa may archive customers and groups instead (they then read as archived)."""
        _writable(entity, self.name)
        with contextlib.suppress(NotFound):  # already gone: a delete is done either way
            self._written(self._call(f"{self.branch}/{entity}/delete", {}, {"id": remote_id}), entity, "delete")

    def _written(self, body: dict[str, Any], entity: str, action: str) -> dict[str, Any]:
        if body.get("success") is False:
            raise _refused(body.get("errors"), f"{action} of {entity}").for_system(self.name)
        if action != "delete" and not isinstance(body.get("model"), dict):
            raise ProtocolError(f"{action} of {entity} answered without the stored model", system=self.name)
        return body.get("model") or {}


@dataclass(frozen=True)
class _Checkpoint:
    """Where a scan stood: branch, the last page read (0-based) and the server's page size."""

    branch: int
    page: int
    size: int


@dataclass
class _Scan:
    """One full listing in progress: the ids yielded so far and the Log position it started at
    (``log_id`` moves on to the newest entry the scan read; ``start`` stays)."""

    log_id: int | None
    seen: set[int] = field(default_factory=set)
    start: int | None = None
    exact: bool = False   # the Log names no change since the start: the pages read are exact

    def __post_init__(self) -> None:
        self.start = self.log_id
        self.exact = self.log_id is not None

    def fresh(self, pages: Iterable[list[dict[str, Any]]], listed: set[int],
              model: Model) -> Iterator[list[dict[str, Any]]]:
        """Pages reduced to rows not yielded before (a row listed in two branches, or twice after a shift)."""
        for items in pages:
            listed.update(r["id"] for r in items)
            new = [r for r in items if r["id"] not in self.seen]
            self.seen.update(r["id"] for r in new)
            if new:
                yield [_record(model, r) for r in new]


class _TokenRefused(AuthError):
    """HTTP 401: the token expired or is unknown; log in again."""


class _AccessDenied(AuthError):
    """HTTP 403: wrong login, or the API user's role lacks this section."""


class _LogGap(Exception):
    """The Log was trimmed past the cursor: what changed in between is unknown."""


def _model(entity: str, system: str) -> Model:
    if entity not in MODELS:
        raise Unsupported(f"unknown Alfa CRM entity {entity!r}; known: {', '.join(MODELS)}", system=system)
    return MODELS[entity]


def _writable(entity: str, system: str) -> Model:
    if entity == "log":
        raise Unsupported("the Log is read-only", system=system)
    return _model(entity, system)


def _field(spec: str, entity: str) -> Field:
    name, _, kind = spec.partition(":")
    kind, _, fmt = kind.partition("@")
    kind, _, target = kind.partition(">")
    return Field(name, kind, LABELS.get(name, name), mandatory=name in MANDATORY.get(entity, ()),
                 editable=name != "id", refers_to=(target,) if target else (), format=fmt or None)


def _scan_filters(model: Model) -> dict[str, Any]:
    return {"removed": 1} if model.archivable else {}


def _record(model: Model, row: dict[str, Any]) -> dict[str, Any]:
    """A row as the mirror keeps it: archive state made explicit, PHP's ``[]`` maps as ``{}``."""
    if model.archivable:
        e_date = row.get("e_date")
        return {**row, "archived": bool(e_date) and e_date != ACTIVE_E_DATE}
    if "fields_old" in row:
        return {**row, **{k: row[k] or {} for k in ("fields_old", "fields_new", "fields_rel") if k in row}}
    return row


def _outgoing(values: dict[str, Any]) -> dict[str, Any]:
    """Write payload: our computed fields and the id are not the CRM's to receive."""
    return {k: v for k, v in values.items() if k not in ("id", "archived")}


def _refused(errors: Any, action: str = "write") -> ValidationError:
    """``success:false`` (or a Yii 422 list) as a ValidationError naming the first field refused."""
    field = None
    if isinstance(errors, dict) and errors:
        field = next(iter(errors))
        messages = [m for ms in errors.values() for m in (ms if isinstance(ms, list) else [ms])]
    elif isinstance(errors, list) and errors and all(isinstance(e, dict) for e in errors):
        field = errors[0].get("field")
        messages = [e.get("message", "") for e in errors]
    else:
        messages = [str(e) for e in (errors if isinstance(errors, list) else [errors]) if e]
        by_label = {label: name for name, label in LABELS.items()}
        for message in messages:
            quoted = re.search(r"«([^»]+)»", message)
            if quoted and quoted.group(1) in by_label:
                field = by_label[quoted.group(1)]
                break
    text = "; ".join(str(m) for m in messages) or "no reason given"
    return ValidationError(f"{action} refused: {text}", field=field, errors=errors)


def _message(response: requests.Response) -> str:
    try:
        body = response.json()
        return f"{body.get('name', '')}: {body.get('message', '')}".strip(": ")
    except (ValueError, AttributeError):
        return f"HTTP {response.status_code}"


def _matches(value: Any, wanted: Any) -> bool:
    if isinstance(value, list) and not isinstance(wanted, list):
        return wanted in value or str(wanted) in map(str, value)
    return value == wanted or str(value) == str(wanted)


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
