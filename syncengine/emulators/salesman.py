"""SalesMan CRM REST API v2 (``/developer/v2/<method>``), as spec ``salesman.md`` §7 describes it.

Every answer is HTTP 200 with errors in the body; PHP fatals are HTML fragments under a JSON content
type. The defects a sync engine must work around are on by default, each behind its own switch:
``person_update_overwrites`` (a contact update blanks what it does not receive and drops the owner
unless a numeric ``iduser`` is sent), ``deal_update_clears`` (a deal update zeroes ``marga`` and
clears ``pid_list``/``coid1``), ``change_start_bug`` (``dateChangeStart`` alone compares with
``dateStart``), ``deal_info_nulls``, ``task_list_needs_active`` (PHP 8), ``task_update_resets``,
``unstable_order`` (no tie-breaker in the default order) and, off by default as in the recorded
fixtures, ``person_write_fatal`` (PHP 8 prints a fatal page after a successful contact write).

Webhooks are POSTed from a background thread to ``webhook_url`` (every event) and to URLs registered
with ``control_webhook``; bodies carry ids and diffs with every scalar a string.
"""
from __future__ import annotations

import http.client
import json
import queue
import random
import re
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from .base import EmulatorApp, Request, Response

PAGE = 200
FAR = "9999-12-31 23:59:59"
CONTENT_TYPE = "application/json; charset=utf-8"
NOT_DEFINED = "--не определено--"
IDENTICAL = "Данные корректны, но идентичны имеющимся."

CLIENT_FIELDS = {  # enabled client fields in the field table's physical order, with labels
    "clid": "Уникальный идентификатор записи клиента в CRM",
    "uid": "Уникальный идентификатор записи клиента в вашей ИС",
    "type": "Тип записи (допустимые - client,person,concurent,contractor,parnter)",
    "date_create": "Дата создания. Timestamp", "date_edit": "Дата последнего изменения. Timestamp",
    "input1": "Внешний код", "title": "Название", "iduser": "Ответственный", "idcategory": "Категория",
    "head_clid": "Головн. орг-ия", "pid": "Осн. контакт", "address": "Адрес", "phone": "Телефон",
    "fax": "Факс", "site_url": "Сайт", "mail_url": "Почта", "territory": "Территория",
    "des": "Описание", "scheme": "Принятие решений", "tip_cmr": "Тип отношений", "recv": "Реквизиты",
    "clientpath": "Источник клиента",
}
CLIENT_TEXT = ("uid", "input1", "title", "address", "phone", "fax", "site_url", "mail_url", "des",
               "scheme", "tip_cmr")
RECV_KEYS = ("castUrName", "castInn", "castKpp", "castBank", "castBankKs", "castBankRs",
             "castBankBik", "castOkpo", "castOgrn", "castDirName", "castDirSignature",
             "castDirStatus", "castDirStatusSig", "castDirOsnovanie", "castUrAddr")
PERSON_FIELDS = {
    "pid": "Уникальный идентификатор записи контакта", "date_create": "Дата создания. Timestamp",
    "date_edit": "Дата последнего изменения. Timestamp", "clid": "Клиент", "ptitle": "Должность",
    "person": "Ф.И.О.", "tel": "Тел.", "fax": "Факс", "mob": "Моб.", "mail": "Почта", "rol": "Роль",
    "iduser": "Куратор", "loyalty": "Лояльность", "input2": "Хобби", "input7": "Добавочный",
    "clientpath": "Канал привлечения",
}
PERSON_TEXT = ("ptitle", "person", "tel", "fax", "mob", "mail", "rol", "input2", "input7")
SOCIAL = {"blog": "Блог", "mysite": "Сайт", "twitter": "Twitter", "icq": "ICQ", "skype": "Skype",
          "google": "Google", "yandex": "Я.ru", "mykrug": "Мой круг"}
DEAL_FIELDS = {
    "did": "Уникальный идентификатор записи", "uid": "Уникальный идентификатор записи во внешней системе",
    "datum": "Дата создания. YYYY-MM-DD", "datum_izm": "Дата последнего изменения. YYYY-MM-DD",
    "clid": "Клиент", "mcid": "ID своей компании", "iduser": "Куратор", "datum_plan": "Дата план.",
    "step": "Этап", "dog_num": "Договор", "tip": "Тип сделки", "direction": "Направление",
    "adres": "Адрес", "content": "Описание", "payer": "Плательщик", "kol": "Сумма план.",
    "marga": "Прибыль", "input1": "Номер 1С", "datum_start": "Период действия. Начало",
    "datum_end": "Период действия. Конец", "close": "Признак закрытой сделки",
    "datum_close": "Дата закрытия. YYYY-MM-DD", "status_close": "Результат закрытия сделки",
    "des_fact": "Комментарий закрытия сделки", "kol_fact": "Фактическая сумма продажи",
}
DEAL_TEXT = ("uid", "title", "adres", "content", "input1", "datum_plan", "datum_start", "datum_end")
TASK_FIELDS = {
    "tid": "Идентификатор напоминания", "datum": "Дата", "totime": "Время", "title": "Тема",
    "des": "Агенда", "tip": "Тип напоминания", "active": "Признак: выполнено,активно",
    "priority": "Важность", "speed": "Срочность", "iduser": "Ответственный", "autor": "Автор напоминания",
    "clid": "ID клиента", "pid": "ID контакта", "did": "ID сделки", "readonly": "Только для чтения",
    "day": "На весь день", "status": "Статус выполнения",
}
STEPS = [(10, "0", "Проявлен/Выявлен интерес"), (2, "20", "Подтвержден интерес"),
         (11, "40", "Отправлено КП"), (5, "60", "Обсуждение деталей - продукты, услуги, оплата"),
         (6, "80", "Согласован договор, Выставлен счет"), (7, "90", "Получена предоплата, Выполнение договора"),
         (8, "100", "Закрытие сделки, Подписание документов")]
DEAL_TYPES = [(6, "Продажа быстрая", "yes"), (1, "Продажа простая", ""), (2, "Продажа с разработкой", ""),
              (4, "Продажа услуг", ""), (5, "Тендер", ""), (3, "Услуги", "")]
STATUS_CLOSE = [(7, "Закрыл менеджер. Отказ"), (6, "Отказ от участия"), (5, "Отменена Заказчиком"),
                (1, "Победа полная"), (2, "Победа, договорились с конкурентами"), (3, "Проигрыш по цене"),
                (4, "Проигрыш, договорились с конкурентами")]
TASK_TIPS = [("Первичный звонок", "#009900", "all"), ("Факс", "#cc00cc", "activ"),
             ("Встреча", "#ffcc00", "all"), ("Задача", "#ff6600", "all"), ("Предложение", "#66ccff", "activ"),
             ("Событие", "#666699", "activ"), ("Звонок", "#99cc00", "all")]
LEAD_STATUS = {0: "Открыт", 1: "В работе", 2: "Обработан", 3: "Закрыт"}

ACTIONS = {
    "client": {"fields", "list", "info", "add", "add.list", "update", "delete"},
    "person": {"fields", "list", "info", "add", "add.list", "update", "delete"},
    "deal": {"fields", "steplist", "direction", "type", "statusclose", "funnel", "list", "info", "add",
             "update", "delete", "change.step", "change.close", "change.user"},
    "task": {"fields", "tips", "list", "info", "add", "update", "doit", "delete"},
    "history": {"fields", "list", "info", "add", "delete"},
    "lead": {"list", "info", "add"},
    "user": {"user", "user.list", "user.add"},
    "guides": {"category", "territory", "relations", "clientpath", "company.list", "company.listfull",
               "company.bank", "company.signers"},
}
ID_KEY = {"client": "clid", "person": "pid", "deal": "did", "task": "tid", "lead": "id"}

_BRACKETS = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])+)$")
_TAGS = re.compile(r"<[^>]*>")


class _Fail(Exception):
    """Ends a handler with this reply."""

    def __init__(self, response: Response):
        self.response = response


def _reply(value: Any) -> Response:
    return Response(200, php_json(value).encode("utf-8"), CONTENT_TYPE)


def _error(code: int | str, text: str, *, result: bool = True, **extra: Any) -> _Fail:
    body: dict[str, Any] = {"result": "Error"} if result else {}
    body.update(extra)
    body["error"] = {"code": code, "text": text}
    return _Fail(_reply(body))


def php_json(value: Any) -> str:
    """``json_encode_cyr``: Cyrillic raw, other non-ASCII as \\uXXXX, ``/`` as ``\\/``."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("/", "\\/")
    return "".join(ch if ord(ch) < 128 or 0x400 <= ord(ch) <= 0x4FF else _u_escape(ch) for ch in text)


def _u_escape(ch: str) -> str:
    return json.dumps(ch)[1:-1]


def fatal_page(message: str, file: str, line: int) -> str:
    """A PHP fatal error printed with display_errors=1."""
    return (f"<br />\n<b>Fatal error</b>:  {message} in {file}:{line}\nStack trace:\n#0 {{main}}\n"
            f"  thrown in <b>{file}</b> on line <b>{line}</b><br />\n")


def _num(value: Any) -> int | float:
    try:
        f = float(str(value).replace(",", ".").replace(" ", "")) if value not in (None, "") else 0.0
    except ValueError:
        return 0
    return int(f) if f.is_integer() else f


def _intval(value: Any) -> int:
    try:
        return int(float(str(value).strip())) if value not in (None, "") else 0
    except ValueError:
        return 0


def _is_numeric(value: Any) -> bool:
    return isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit())


def _text(value: Any) -> str:
    """Business-class cleanup of free text: tags stripped, double quotes turned typographic."""
    return _TAGS.sub("", str(value)).replace('"', "”").strip()


def format_title(title: str) -> str:
    """``clientFormatTitle``: ООО/ЗАО/ОАО moved to the end, quotes and tags removed."""
    title = re.sub(r"\s+", " ", _TAGS.sub("", str(title)).replace('"', "").replace("«", "").replace("»", "")).strip()
    token = title[:3]
    if token in ("ООО", "ЗАО", "ОАО"):
        title = re.sub(r"\s+", " ", title.replace(token, "")).strip(" ,")
        title = f"{title}, {token}"
    return title


def _sfdate(value: str | None) -> str:
    if not value:
        return ""
    return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").strftime("%d.%m.%y,  %H:%M")


def _moment(value: str) -> str:
    """A filter value as a comparable local-time string (a bare date is midnight)."""
    value = str(value).strip()
    return value + " 00:00:00" if len(value) == 10 else value


def _like(stored: Any, wanted: Any) -> bool:
    return str(wanted).lower() in str("" if stored is None else stored).lower()


def _phone_tails(phones: Any) -> set[str]:
    return {re.sub(r"\D", "", p)[-7:] for p in str(phones or "").split(",") if re.sub(r"\D", "", p)}


def _loose_equal(a: Any, b: Any) -> bool:
    return str("" if a is None else a) == str("" if b is None else b)


def _strings(value: Any) -> Any:
    """Webhook values: the internal hop is form-encoded, so every scalar becomes a string."""
    if isinstance(value, dict):
        return {k: _strings(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strings(v) for v in value]
    if value is None or value is False:
        return ""
    if value is True:
        return "1"
    return str(value)


class SalesManApp(EmulatorApp):
    kind = "salesman"

    def __init__(self, records: int = 100, *, login: str = "admin", api_key: str = "emulator",
                 seed: int = 1, webhook_url: str | None = None, timezone_name: str = "Europe/Moscow",
                 person_update_overwrites: bool = True, deal_update_clears: bool = True,
                 change_start_bug: bool = True, deal_info_nulls: bool = True,
                 task_list_needs_active: bool = True, task_update_resets: bool = True,
                 unstable_order: bool = True, person_write_fatal: bool = False,
                 deal_numbering: bool = True, workers: int = 4):
        super().__init__()
        self.workers = workers  # PHP's built-in server with PHP_CLI_SERVER_WORKERS=4
        self.login, self.api_key = login, api_key
        self.zone = ZoneInfo(timezone_name)
        self.timezone_name = timezone_name
        self.person_update_overwrites = person_update_overwrites
        self.deal_update_clears = deal_update_clears
        self.change_start_bug = change_start_bug
        self.deal_info_nulls = deal_info_nulls
        self.task_list_needs_active = task_list_needs_active
        self.task_update_resets = task_update_resets
        self.unstable_order = unstable_order
        self.person_write_fatal = person_write_fatal
        self.deal_numbering = deal_numbering
        self.random = random.Random(seed)
        self.clock_offset = timedelta()
        self.users: dict[int, dict[str, Any]] = {
            1: {"iduser": 1, "login": login, "title": "Админ Админов", "tip": "Руководитель организации",
                "user_post": "Руководитель", "email": f"{login}@example.com" if "@" not in login else login,
                "active": "yes", "isadmin": "on"},
            2: {"iduser": 2, "login": "manager@example.com", "title": "Менеджер Петров", "tip": "Менеджер продаж",
                "user_post": "Менеджер", "email": "manager@example.com", "active": "yes", "isadmin": "off"},
        }
        self.categories = {1: ("Физические лица", "client"), 2: ("Розница", "client"), 3: ("Опт", "client")}
        self.territories = {1: "Пермь", 3: "Тюмень", 4: "Челябинск", 5: "Москва"}
        self.relations = {1: ("0 - Не работаем", "#333333"), 2: ("1 - Холодный клиент", "#99ccff"),
                          3: ("3 - Текущий клиент", "#3366ff"), 4: ("2 - Потенциальный клиент", "#99ff66")}
        self.clientpaths = {1: ("Личные связи", ""), 2: ("Маркетинг", ""), 3: ("Справочник", ""),
                            4: ("Заказ с сайта", ""), 5: ("Рекомендации клиентов", "fromfriend")}
        self.loyalties = {1: "Нейтрален", 2: "Лоялен", 3: "Адвокат бренда"}
        self.default_clientpath = 2
        self.clients: dict[int, dict[str, Any]] = {}
        self.persons: dict[int, dict[str, Any]] = {}
        self.deals: dict[int, dict[str, Any]] = {}
        self.tasks: dict[int, dict[str, Any]] = {}
        self.history: dict[int, dict[str, Any]] = {}
        self.leads: dict[int, dict[str, Any]] = {}
        self.next_id = {"client": 1, "person": 1, "deal": 1, "task": 1, "history": 1, "lead": 1}
        self.deal_number = 0
        self.webhooks: list[tuple[str, str]] = [("*", webhook_url)] if webhook_url else []
        self.webhook_log: list[dict[str, Any]] = []
        self._outbox: queue.Queue[tuple[str, bytes] | None] = queue.Queue()
        self._sender: threading.Thread | None = None
        self._html_errors: list[str] = []
        self._seed(records)

    # -- time -----------------------------------------------------------------------------
    def now(self) -> datetime:
        """Account-local wall time (naive), shifted by the clock hook."""
        return (datetime.now(self.zone).replace(tzinfo=None, microsecond=0) + self.clock_offset)

    def stamp(self) -> str:
        return self.now().strftime("%Y-%m-%d %H:%M:%S")

    def today(self) -> str:
        return self.now().strftime("%Y-%m-%d")

    # -- sample data ----------------------------------------------------------------------
    def _seed(self, records: int) -> None:
        rnd = self.random
        names = ["Ромашка", "Вектор", "Северсталь-Сервис", "Уралтехснаб", "Альфа-Строй", "Гранит", "Сибирь Логистик",
                 "Бета Инжиниринг", "Волга-Трейд", "Кедр", "Меридиан", "Прогресс", "Заря", "Техноком", "Оптима"]
        forms = ["ООО", "ЗАО", "ИП", "АО", "ООО"]
        cities = ["Москва", "Пермь", "Тюмень", "Челябинск", "Казань", "Екатеринбург"]
        first = ["Иван", "Мария", "Сергей", "Ольга", "Алексей", "Наталья", "Дмитрий", "Елена"]
        last = ["Иванов", "Петров", "Смирнов", "Кузнецов", "Попов", "Соколов", "Лебедев", "Козлов"]
        posts = ["Директор", "Главный бухгалтер", "Менеджер по закупкам", "Инженер", "Юрист"]
        start = now = self.now() - timedelta(days=1)
        start -= timedelta(days=400)
        stride = max(1, int(400 * 86400 / max(records, 1)))
        moment = start
        for i in range(records):
            moment += timedelta(seconds=rnd.choice([0, 0, 1, stride, 2 * stride]))  # bulk imports share a second
            created = moment.strftime("%Y-%m-%d %H:%M:%S")
            edited = None
            if rnd.random() < 0.3:
                edited = min(moment + timedelta(hours=rnd.randint(1, 500)), now).strftime("%Y-%m-%d %H:%M:%S")
            clid = self._new_id("client")
            city = rnd.choice(cities)
            title = format_title(f"{rnd.choice(forms)} {rnd.choice(names)} {clid}")
            self.clients[clid] = {
                "clid": clid, "uid": f"EXT-{clid:05d}" if i % 3 == 0 else None, "type": "client",
                "date_create": created, "date_edit": edited, "input1": f"1C-{clid:04d}",
                "title": title, "iduser": 1 if i % 5 else 2, "idcategory": rnd.choice([0, 1, 2, 3]),
                "head_clid": 0, "pid": 0, "address": f"г. {city}, ул. Ленина, д. {i + 1}",
                "phone": f"+7 (9{i % 100:02d}) 555-{i % 100:02d}-{(i * 7) % 100:02d}", "fax": None,
                "site_url": f"https://client{clid}.example", "mail_url": f"info@client{clid}.example",
                "territory": rnd.choice([0, 1, 3, 4, 5]), "des": None, "scheme": None, "tip_cmr": None,
                "clientpath": rnd.choice([1, 2, 3]), "recv": {"castInn": f"77{clid:08d}"} if i % 2 else {},
                "creator": 1, "editor": 1 if edited else None,
            }
            for k in range(1 + (i % 2)):
                pid = self._new_id("person")
                self.persons[pid] = {
                    "pid": pid, "date_create": created, "date_edit": edited if k == 0 else None, "clid": clid,
                    "ptitle": rnd.choice(posts), "person": f"{rnd.choice(last)} {rnd.choice(first)}",
                    "tel": f"+7 (343) 2{pid % 100:02d}-00-{k:02d}", "fax": None,
                    "mob": f"+7 912 {pid % 1000:03d}-11-22", "mail": f"contact{pid}@client{clid}.example",
                    "rol": rnd.choice(["ЛПР", "Бухгалтер", None]), "iduser": self.clients[clid]["iduser"],
                    "loyalty": rnd.choice([0, 1, 2]), "input2": None, "input7": None,
                    "clientpath": self.clients[clid]["clientpath"],
                }
                if k == 0:
                    self.clients[clid]["pid"] = pid
            if i % 2 == 0:
                did = self._new_id("deal")
                self.deal_number += 1
                day = moment.strftime("%Y-%m-%d")
                step = rnd.choice(STEPS)
                contacts = [p for p, r in self.persons.items() if r["clid"] == clid]
                self.deals[did] = {
                    "did": did, "uid": f"DEAL-{did}" if i % 4 == 0 else None, "datum": day,
                    "datum_izm": min(moment + timedelta(days=rnd.randint(1, 30)), now).strftime("%Y-%m-%d")
                    if rnd.random() < 0.4 else None,
                    "clid": clid, "title": f"СД{self.deal_number}: Поставка оборудования {did}", "mcid": 0,
                    "iduser": self.clients[clid]["iduser"],
                    "datum_plan": (moment + timedelta(days=60)).strftime("%Y-%m-%d"),
                    "idcategory": step[0], "dog_num": 0, "tip": 6, "direction": 1, "adres": None,
                    "content": f"Поставка {rnd.randint(1, 50)} единиц", "payer": clid,
                    "kol": float(rnd.randint(10, 900) * 1000), "marga": float(rnd.randint(1, 90) * 100),
                    "input1": None, "datum_start": None, "datum_end": None, "close": "no", "datum_close": None,
                    "sid": 0, "des_fact": None, "kol_fact": 0, "pid_list": ";".join(map(str, contacts)),
                    "coid1": "",
                }
        for n in range(min(records // 10, 20)):
            tid = self._new_id("task")
            clid = rnd.choice(list(self.clients)) if self.clients else 0
            self.tasks[tid] = {"tid": tid, "datum": (start + timedelta(days=n * 17)).strftime("%Y-%m-%d"),
                               "totime": "10:00", "title": f"Позвонить клиенту {clid}", "des": "Обсудить КП",
                               "tip": "Звонок", "active": "yes" if n % 3 else "no", "priority": "0",
                               "speed": "0", "iduser": 1, "autor": 1, "clid": clid, "pid": "", "did": 0,
                               "readonly": "no", "day": None, "status": "0", "created": self.stamp()}
        for n in range(min(records // 20, 10)):
            lid = self._new_id("lead")
            self.leads[lid] = {"id": lid, "datum": (start + timedelta(days=n * 30)).strftime("%Y-%m-%d %H:%M:%S"),
                               "datum_do": None, "status": 0, "rezult": 0, "title": f"Заявка с сайта {lid}",
                               "email": f"lead{lid}@example.net", "phone": f"+7 999 000-00-{lid:02d}",
                               "site": "example.net", "company": f"ИП Лидов {lid}", "description": "Нужен расчёт",
                               "ip": None, "city": "Казань", "country": "Россия", "iduser": 0, "clientpath": 0,
                               "pid": 0, "clid": 0, "did": 0, "partner": 0}

    def _new_id(self, table: str) -> int:
        value = self.next_id[table]
        self.next_id[table] += 1
        return value

    # -- request parsing ------------------------------------------------------------------
    def _parse(self, request: Request) -> dict[str, Any]:
        cached = getattr(request, "_salesman", None)
        if cached is not None:
            return cached
        match = re.fullmatch(r"/developer/v2/([A-Za-z]+)(?:\.php)?/?", request.path)
        method = match.group(1) if match else None
        json_mode = request.headers.get("content-type") == "application/json"
        if json_mode:
            body = request.json()
            params = dict(body) if isinstance(body, dict) else {}
            for key, value in request.query.items():
                params.setdefault(key, value)
            login = request.headers.get("login", params.get("login"))
            apikey = request.headers.get("apikey", params.get("apikey"))
        else:
            params = {}
            raw = {**request.query, **request.form}
            for key, value in raw.items():
                m = _BRACKETS.match(key)
                if not m:
                    params[key] = value.replace('"', "”").replace("'", "&acute;").strip()
                    continue
                node = params.setdefault(m.group(1), {})
                parts = re.findall(r"\[([^\[\]]*)\]", m.group(2))
                for part in parts[:-1]:
                    node = node.setdefault(part, {}) if isinstance(node, dict) else {}
                if isinstance(node, dict):
                    node[parts[-1] or str(len(node))] = value
            login, apikey = params.get("login"), params.get("apikey")
        parsed = {"method": method, "action": str(params.get("action") or ""), "params": params,
                  "json": json_mode, "login": login, "apikey": apikey}
        request._salesman = parsed
        return parsed

    def operation(self, request: Request) -> str:
        parsed = self._parse(request)
        if not parsed["method"] or parsed["method"] not in ACTIONS:
            return request.path
        return f"{parsed['method']}.{parsed['action'] or '-'}"

    def fault_response(self) -> Response:
        return Response.html("<html><body><h1>500 Internal Server Error</h1></body></html>", 500)

    # -- dispatch -------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        parsed = self._parse(request)
        method, action, params = parsed["method"], parsed["action"], parsed["params"]
        if method not in ACTIONS:
            return Response.html("<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n"
                                 "<title>404 Not Found</title>\n</head><body>\n<h1>Not Found</h1>\n"
                                 "</body></html>\n", 404)
        with self.lock:
            user = next((u for u in self.users.values() if u["login"] == parsed["login"]), None)
            if parsed["apikey"] != self.api_key or user is None:
                return _reply({"result": "Error", "error": {"code": 401, "text": "Неизвестный пользователь"}})
            if action not in ACTIONS[method]:
                return self._unknown_action(method)
            if self._html_errors:
                message = self._html_errors.pop(0)
                return Response(200, fatal_page(message, f"/var/www/salesman/developer/v2/{method}.php", 377)
                                .encode("utf-8"), CONTENT_TYPE)
            handler: Callable[[dict[str, Any], dict[str, Any], bool], Any] = getattr(
                self, f"_{method}_{action.replace('.', '_')}")
            try:
                return _reply(handler(params, user, parsed["json"]))
            except _Fail as fail:
                return fail.response

    def _unknown_action(self, method: str) -> Response:
        if method == "lead":
            return _reply({"result": "Error", "error": {"code": 402, "text": "Не известный метод"}})
        if method in ("user", "guides"):
            return _reply({"result": "Error", "error": {"code": "402", "text": "Неизвестный метод"}})
        return _reply({"error": {"code": 402, "text": "Неизвестный метод"}})

    def _fatal(self, message: str, file: str, line: int) -> _Fail:
        return _Fail(Response(200, fatal_page(message, f"/var/www/salesman/{file}", line).encode("utf-8"),
                              CONTENT_TYPE))

    # -- shared helpers -------------------------------------------------------------------
    def _people(self, user: dict[str, Any]) -> set[int]:
        if user["tip"] in ("Руководитель организации", "Руководитель с доступом", "Поддержка продаж",
                           "Администратор"):
            return set(self.users)
        return {user["iduser"]}

    def _visible(self, table: dict[int, dict[str, Any]], params: dict[str, Any],
                 user: dict[str, Any]) -> list[dict[str, Any]]:
        """Client/deal list visibility: ``user=<login>`` replaces it, ``isadmin`` lifts it."""
        if params.get("user"):
            owner = self._user_id(params["user"])
            return [r for r in table.values() if _intval(r["iduser"]) == owner]
        if user.get("isadmin") == "on":
            return list(table.values())
        people = self._people(user)
        return [r for r in table.values() if _intval(r["iduser"]) in people]

    def _user_id(self, login: Any) -> int:
        return next((u["iduser"] for u in self.users.values() if u["login"] == login), 0)

    def _login(self, iduser: Any) -> str | None:
        u = self.users.get(_intval(iduser))
        return u["login"] if u else None

    def _dictionary_id(self, table: dict[int, Any], value: Any, create: bool) -> int:
        """An id or a name; unknown names are created (as the client card does)."""
        if value in (None, ""):
            return 0
        if _is_numeric(value):
            return int(value)
        for key, entry in table.items():
            if (entry[0] if isinstance(entry, tuple) else entry) == value:
                return key
        if not create:
            return 0
        key = max(table, default=0) + 2
        if table is self.categories:
            table[key] = (str(value), "client")
        elif table is self.clientpaths:
            table[key] = (str(value), "")
        else:
            table[key] = str(value)
        return key

    @staticmethod
    def _title_of(table: dict[int, Any], key: Any) -> str | None:
        entry = table.get(_intval(key))
        if entry is None:
            return None
        return entry[0] if isinstance(entry, tuple) else entry

    def _order(self, rows: list[dict[str, Any]], params: dict[str, Any], columns: set[str], default: str,
               synonyms: dict[str, str], id_key: str) -> list[dict[str, Any]]:
        """``order`` is a raw column (unknown: SQL error page); ``first=old`` ascending; no tie-breaker."""
        order = str(params.get("order") or default)
        order = synonyms.get(order, order)
        if order not in columns:
            raise self._fatal(f"Uncaught mysqli_sql_exception: Unknown column '{order}' in 'ORDER BY'",
                              "vendor/colshrapnel/safemysql/safemysql.class.php", 466)
        rows = sorted(rows, key=lambda r: r[id_key])
        if self.unstable_order:
            self.random.shuffle(rows)  # ties come back in no particular order

        def key(row: dict[str, Any]) -> tuple[int, float, str]:
            value = row.get(order)
            if value is None:
                return (0, 0.0, "")
            if isinstance(value, (int, float)):
                return (1, float(value), "")
            return (1, 0.0, str(value))
        return sorted(rows, key=key, reverse=params.get("first") != "old")

    def _shown(self, entity: str, rows: list[dict[str, Any]], params: dict[str, Any]) -> list[dict[str, Any]]:
        """A listing's rows less those ``hide_rows`` hides; a listing filtered by id is a read by id."""
        key = ID_KEY[entity]
        filters = params.get("filter") if isinstance(params.get("filter"), dict) else {}
        hide = None if key in filters or params.get(key) else self.listing_filter(entity)
        return rows if hide is None else [r for r in rows if not hide(r[key])]

    @staticmethod
    def _page(rows: list[Any], params: dict[str, Any]) -> list[Any]:
        page = max(_intval(params.get("offset")), 0)
        return rows[page * PAGE:(page + 1) * PAGE]

    @staticmethod
    def _select(record: dict[str, Any], params: dict[str, Any], enabled: dict[str, str],
                groups: dict[str, tuple[str, ...]]) -> dict[str, Any]:
        """``fields=a,b``: the listed enabled names in the asked order, each with its companion keys."""
        wanted = [f.strip() for f in str(params.get("fields") or "").split(",") if f.strip()]
        if not wanted:
            return record
        out: dict[str, Any] = {}
        for name in wanted:
            if name in enabled:
                out.update({key: record[key] for key in groups.get(name, (name,)) if key in record})
        return out

    @staticmethod
    def _date_window(value_of: Callable[[dict[str, Any]], str | None], rows: list[dict[str, Any]],
                     start: Any, end: Any, strict: bool) -> list[dict[str, Any]]:
        if start and end:
            lo, hi = _moment(start), _moment(end)
            return [r for r in rows if value_of(r) is not None and lo <= value_of(r) <= hi]
        if start:
            lo = _moment(start)
            return [r for r in rows if value_of(r) is not None and (value_of(r) > lo if strict else value_of(r) >= lo)]
        if end:
            hi = _moment(end)
            return [r for r in rows if value_of(r) is not None and (value_of(r) < hi if strict else value_of(r) <= hi)]
        return rows

    def _change_window(self, rows: list[dict[str, Any]], params: dict[str, Any], column: str,
                       as_moment: Callable[[Any], str | None]) -> list[dict[str, Any]]:
        start, end = params.get("dateChangeStart"), params.get("dateChangeEnd")
        if start and not end and self.change_start_bug:
            # client.php:280: the start compares with dateStart, or with '' when that is absent
            bound = _moment(params["dateStart"]) if params.get("dateStart") else ""
            return [r for r in rows if as_moment(r.get(column)) is not None and as_moment(r.get(column)) > bound]
        return self._date_window(lambda r: as_moment(r.get(column)), rows, start, end, strict=False)

    # -- webhooks -------------------------------------------------------------------------
    def fire(self, event: str, payload: dict[str, Any]) -> None:
        """Queue ``event`` for every URL registered for it (delivered by a background thread)."""
        urls = [url for name, url in self.webhooks if name in ("*", event)]
        if not urls:
            return
        body = {**payload, "event": event, "identity": "1", "iduser1": "1"}
        raw = json.dumps(_strings(body)).replace("/", "\\/").encode("ascii")
        for url in urls:
            self._outbox.put((url, raw))
        if self._sender is None or not self._sender.is_alive():
            self._sender = threading.Thread(target=self._deliver, daemon=True, name="salesman-webhooks")
            self._sender.start()

    def _deliver(self) -> None:
        while True:
            item = self._outbox.get()
            try:
                if item is None:
                    return
                url, raw = item
                status = _post(url, raw)
                with self.lock:
                    self.webhook_log.append({"url": url, "body": json.loads(raw), "status": status})
            finally:
                self._outbox.task_done()

    def flush_webhooks(self) -> None:
        """Wait until every queued webhook has been sent (or has failed)."""
        self._outbox.join()

    # -- control hooks (what a UI user or an admin would do) --------------------------------
    def control_webhook(self, url: str, event: str = "*") -> int:
        self.webhooks.append((event, url))
        return len(self.webhooks)

    def control_clock(self, advance: float = 0, days: float = 0) -> str:
        self.clock_offset += timedelta(seconds=advance, days=days)
        return self.stamp()

    def control_html_error_next(self, message: str = "Uncaught Error: Call to a member function "
                                "getOne() on null", count: int = 1) -> int:
        self._html_errors.extend([message] * count)
        return len(self._html_errors)

    def control_edit(self, entity: str, id: int | str, values: dict[str, Any],
                     bump_change_date: bool = True) -> dict[str, Any]:
        """Change a record as the UI does; ``bump_change_date=False`` is an owner/flag-like change."""
        row = self._table(entity).get(int(id))
        if row is None:
            raise ValueError(f"no {entity} {id}")
        diff = {k: v for k, v in values.items() if not _loose_equal(row.get(k), v)}
        row.update(values)
        if bump_change_date and entity in ("client", "person"):
            row["date_edit"] = self.stamp()
        elif bump_change_date and entity == "deal":
            row["datum_izm"] = self.today()
        if entity in ("client", "person", "deal"):
            key = ID_KEY[entity]
            extra = {"user": "0"} if entity == "client" else {}
            self.fire(f"{entity}.edit", {key: row[key], "autor": 1, **extra, "newparam": diff})
        elif entity == "task":
            self.fire("task.edit", {"id": row["tid"], "autor": 0})
        return dict(row)

    def control_delete(self, entity: str, id: int | str) -> bool:
        """Hard delete from the UI (no checks); fires ``<entity>.delete`` where the CRM has it."""
        row = self._table(entity).pop(int(id), None)
        if row is not None and entity in ("client", "person", "deal"):
            self.fire(f"{entity}.delete", {ID_KEY[entity]: int(id), "autor": 1})
        return row is not None

    def control_create(self, entity: str, values: dict[str, Any]) -> int:
        """Insert a record as the UI would (no webhook)."""
        key = ID_KEY[entity]
        new = self._new_id(entity)
        stamp = self.stamp()
        defaults: dict[str, Any] = {"client": {"type": "client", "date_create": stamp, "date_edit": None,
                                               "iduser": 1, "idcategory": 0, "head_clid": 0, "pid": 0,
                                               "territory": 0, "clientpath": self.default_clientpath, "recv": {}},
                                    "person": {"date_create": stamp, "date_edit": None, "clid": 0, "iduser": 1,
                                               "loyalty": 0, "clientpath": self.default_clientpath},
                                    "deal": {"datum": self.today(), "datum_izm": None, "clid": 0, "payer": 0,
                                             "iduser": 1, "idcategory": STEPS[0][0], "tip": 6, "direction": 1,
                                             "kol": 0.0, "marga": 0.0, "close": "no", "sid": 0, "kol_fact": 0,
                                             "pid_list": "", "coid1": "", "mcid": 0, "dog_num": 0}}.get(entity, {})
        self._table(entity)[new] = {key: new, **defaults, **values}
        return new

    def _table(self, entity: str) -> dict[int, dict[str, Any]]:
        tables = {"client": self.clients, "person": self.persons, "deal": self.deals, "task": self.tasks,
                  "lead": self.leads, "history": self.history}
        if entity not in tables:
            raise ValueError(f"unknown entity {entity!r}; one of {', '.join(tables)}")
        return tables[entity]

    def live_records(self, entity: str) -> list[dict[str, Any]]:
        """Stored rows of ENTITY (copies), by id."""
        with self.lock:
            return [dict(row) for _, row in sorted(self._table(entity).items())]

    def toml_section(self, name: str, url: str) -> str:
        var = f"{name.upper()}_API_KEY"
        return (f"# export {var}={self.api_key}\n[systems.{name}]\nkind = \"salesman\"\nurl = \"{url}\"\n"
                f"login = \"{self.login}\"\napi_key = \"${{{var}}}\"\ntimezone = \"{self.timezone_name}\"\n")

    # ======================================================================================
    # client
    # ======================================================================================
    def _client_fields(self, params, user, json_mode):
        return {"data": dict(CLIENT_FIELDS)}

    def _client_record(self, row: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in CLIENT_FIELDS:
            if name == "recv":
                continue
            value = row.get(name)
            if name == "iduser":
                out["user"] = self._login(value)
                out["iduser"] = _intval(value)
            elif name == "idcategory":
                out["idcategoryTitle"] = self._title_of(self.categories, value) or NOT_DEFINED
                out["idcategory"] = _intval(value)
            elif name == "head_clid":
                out["head_clidTitle"] = self._title_of(self.categories, value) or NOT_DEFINED  # sic
                out["head_clid"] = _intval(value)
            elif name == "pid":
                person = self.persons.get(_intval(value))
                out["person"] = person["person"] if person else ""
                out["pid"] = _intval(value)
            elif name == "territory":
                out["territoryTitle"] = self._title_of(self.territories, value)
                out["territory"] = _intval(value)
            elif name == "clientpath":
                out["clientpathTitle"] = self._title_of(self.clientpaths, value)
                out["clientpath"] = _intval(value)
            elif name == "clid":
                out["clid"] = int(value)
            else:
                out[name] = value
        return out

    def _recv(self, row: dict[str, Any]) -> dict[str, str]:
        return {key: str(row.get("recv", {}).get(key, "")) for key in RECV_KEYS}

    def _client_list(self, params, user, json_mode):
        rows = self._visible(self.clients, params, user)
        word = str(params.get("word") or "")
        if word:
            rows = [r for r in rows if any(_like(r.get(f), word) for f in ("title", "des", "mail_url", "site_url",
                                                                             "address"))
                    or _like(re.sub(r"[+() \-]", "", str(r.get("phone") or "")), word)]
        rows = self._date_window(lambda r: r["date_create"], rows, params.get("dateStart"), params.get("dateEnd"),
                                 strict=True)
        rows = self._change_window(rows, params, "date_edit", lambda v: v)
        filters = params.get("filter") if isinstance(params.get("filter"), dict) else {}
        for key, value in filters.items():
            if key == "type":
                rows = [r for r in rows if r.get("type") == value]
            elif key in ("idcategory", "territory", "clientpath"):
                table = {"idcategory": self.categories, "territory": self.territories,
                         "clientpath": self.clientpaths}[key]
                wanted = self._dictionary_id(table, value, create=False)
                rows = [r for r in rows if _intval(r.get(key)) == wanted]
            elif key == "relations":
                rows = [r for r in rows if r.get("tip_cmr") == value]
            elif re.fullmatch(r"input\d+", key) and key in CLIENT_FIELDS:
                rows = [r for r in rows if _like(r.get(key), value)]
        rows = self._shown("client", rows, params)
        rows = self._order(rows, params, set(CLIENT_FIELDS) - {"recv"}, "date_create", {"date_change": "date_edit"},
                           "clid")
        page = []
        for row in self._page(rows, params):
            record = self._select(self._client_record(row), params, CLIENT_FIELDS, _CLIENT_COMPANIONS)
            if params.get("bankinfo") == "yes":
                record["bankinfo"] = self._recv(row)
            if params.get("uids") == "yes":
                record["uids"] = []
            page.append(record)
        return {"data": page, "count": len(rows)} if page else {"count": len(rows)}

    def _client_info(self, params, user, json_mode):
        if params.get("uid"):
            row = next((r for r in self.clients.values() if r.get("uid") == params["uid"]), None)
            if row is None:
                raise _error(404, "Не найдено")
        elif params.get("inn"):
            row = next((r for r in self.clients.values() if str(params["inn"]) in r.get("recv", {}).values()), None)
            if row is None:
                raise _error(404, "Не найдено")
        elif params.get("clid"):
            row = self.clients.get(_intval(params["clid"]))
        else:
            raise _error(405, "Отсутствуют параметры клиента")
        if row is None or _intval(row["iduser"]) not in self._people(user):
            raise _error(403, "Клиент не найден в пределах аккаунта указанного пользователя.")
        full: dict[str, Any] = {}
        for name in CLIENT_FIELDS:
            value = row.get(name)
            if name == "recv":
                continue
            if name == "date_create":
                full["created"], full["date_create"] = value, _sfdate(value)
            elif name == "date_edit":
                full["edited"], full["date_edit"] = value, _sfdate(value)
            elif name == "iduser":
                full["iduser"], full["user"] = _intval(value), self._login(value)
            elif name == "idcategory":
                full["idcategory"] = _intval(value)
                full["categoryName"] = self._title_of(self.categories, value) or NOT_DEFINED
            elif name == "head_clid":
                head = self.clients.get(_intval(value))
                full["head_clid"] = head["title"] if head else ""
            elif name == "pid":
                person = self.persons.get(_intval(value))
                full["pid"], full["person"] = _intval(value), person["person"] if person else ""
            elif name == "territory":
                full["territory"] = _intval(value)
                full["territoryName"] = self._title_of(self.territories, value)
            elif name == "clientpath":
                full["clientpath"] = self._title_of(self.clientpaths, value)
            elif name == "clid":
                full["clid"] = int(value)
            else:
                full[name] = None if value == "" else value
        data = self._select(full, params, CLIENT_FIELDS, _CLIENT_INFO_COMPANIONS)
        if params.get("bankinfo") == "yes":
            data["bankinfo"] = self._recv(row)
        reply: dict[str, Any] = {"data": data}
        if params.get("contacts") == "yes":
            reply["contacts"] = [
                {"pid": str(p["pid"]), "person": p["person"], "ptitle": p.get("ptitle"), "clid": str(p["clid"]),
                 "tel": p.get("tel"), "mob": p.get("mob"), "mail": p.get("mail"), "iduser": str(p.get("iduser") or ""),
                 "rol": p.get("rol"), "date_create": p["date_create"], "client": row["title"],
                 "user": (self.users.get(_intval(p.get("iduser"))) or {}).get("title"), "color": None,
                 "relation": None, "clientpath": self._title_of(self.clientpaths, p.get("clientpath"))}
                for p in self.persons.values() if p.get("clid") == row["clid"] and p.get("mail")]
        return reply

    def _client_values(self, params: dict[str, Any], json_mode: bool) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in CLIENT_FIELDS:
            if name in ("clid", "date_create", "date_edit", "recv") or name not in params:
                continue
            value = params[name]
            if isinstance(value, (list, dict)):
                value = ", ".join(map(str, value.values() if isinstance(value, dict) else value))
            if name == "title":
                value = format_title(value)
            elif name == "phone":
                value = ",".join(p.strip() for p in re.split(r"[,;]", str(value)) if p.strip())
            elif name in ("idcategory", "territory", "clientpath"):
                table = {"idcategory": self.categories, "territory": self.territories,
                         "clientpath": self.clientpaths}[name]
                value = self._dictionary_id(table, value, create=True)
            elif name in ("iduser", "head_clid", "pid"):
                if name == "iduser" and not _is_numeric(value):
                    continue
                value = _intval(value)
            elif name == "type":
                value = str(value) or "client"
            elif isinstance(value, str):
                value = _text(value)
            elif value is not None:
                value = str(value)
            values[name] = value
        return values

    def _client_add(self, params, user, json_mode):
        if not str(params.get("title") or "").strip():
            raise _error(402, "Отсутствуют параметры - Название клиента")
        values = self._client_values(params, json_mode)
        title = values["title"]
        for row in self.clients.values():
            if row["title"] != title:
                continue
            if values.get("phone") and not _phone_tails(values["phone"]) & _phone_tails(row.get("phone")):
                continue
            if values.get("mail_url") and values["mail_url"] != row.get("mail_url"):
                continue
            raise _error(304, f"Найден существующий клиент - {row['title']} (clid = {row['clid']}). Запрос отклонен.",
                         exists=row["clid"])
        owner = user["iduser"]
        if _is_numeric(params.get("iduser")):
            owner = int(params["iduser"])
        elif params.get("user"):
            owner = self._user_id(params["user"])
        created = self.stamp()
        if params.get("date_create"):
            created = self._local_time(str(params["date_create"]))
        clid = self._new_id("client")
        row = {name: None for name in CLIENT_FIELDS if name != "recv"}
        row.update({"clid": clid, "type": "client", "idcategory": 0, "head_clid": 0, "pid": 0, "territory": 0,
                    "clientpath": self.default_clientpath, "date_create": created, "date_edit": None,
                    "creator": user["iduser"], "editor": None})
        row.update(values)
        row["iduser"] = owner
        row["recv"] = {k: str(v) for k, v in (params.get("recv") or {}).items()} \
            if isinstance(params.get("recv"), dict) else {}
        self.clients[clid] = row
        self.fire("client.add", {"clid": clid, "autor": user["iduser"], "user": owner})
        return {"result": "Успешно", "data": clid}

    def _local_time(self, value: str) -> str:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return self.stamp()
        if moment.tzinfo is not None:
            moment = moment.astimezone(self.zone).replace(tzinfo=None)
        return moment.strftime("%Y-%m-%d %H:%M:%S")

    def _client_add_list(self, params, user, json_mode):
        items = params.get("client") or {}
        items = items.values() if isinstance(items, dict) else items
        replies = []
        for item in items:
            try:
                replies.append(self._client_add(dict(item), user, json_mode))
            except _Fail as fail:
                replies.append(json.loads(fail.response.body))
        return replies

    def _client_update(self, params, user, json_mode):
        row = self.clients.get(_intval(params.get("clid")))
        if row is None:
            raise _error(403, "Клиент с указанным clid не найден в пределах аккаунта")
        values = self._client_values({k: v for k, v in params.items() if k not in ("user", "uid")}, json_mode)
        if "uid" in params and not row.get("uid"):
            values["uid"] = str(params["uid"])
        if values.get("type", "x") == "":
            values["type"] = "client"
        diff = {k: v for k, v in values.items() if not _loose_equal(row.get(k), v)}
        recv_changed = False
        if isinstance(params.get("recv"), dict):
            merged = {**row.get("recv", {}), **{k: str(v) for k, v in params["recv"].items()}}
            recv_changed = merged != row.get("recv", {})
            row["recv"] = merged
        suffix = "; Реквизиты обновлены" if isinstance(params.get("recv"), dict) else ""
        if not diff:
            if recv_changed:
                self.fire("client.change.recv", {"clid": row["clid"], "autor": user["iduser"]})
            return {"data": row["clid"], "result": IDENTICAL + suffix}
        row.update(diff)
        row["date_edit"], row["editor"] = self.stamp(), user["iduser"]
        hid = self._add_history("Изменены данные клиента", clid=row["clid"], user=user)
        self.fire("client.edit", {"clid": row["clid"], "autor": user["iduser"], "user": 0, "newparam": diff})
        return {"data": row["clid"], "hid": hid, "result": "Успешно" + suffix}

    def _client_delete(self, params, user, json_mode):
        if not params.get("clid"):
            raise self._fatal("Uncaught TypeError: Salesman\\Client::delete(): Argument #1 ($clid) must be of type "
                              "int, null given", "inc/class/Client.php", 1317)
        clid = _intval(params["clid"])
        if clid not in self.clients:
            raise _error(403, "Не найдена запись")
        if any(d["clid"] == clid or d["payer"] == clid for d in self.deals.values()):
            raise _error(408, "Клиент не удален. Внимание: К сожалению Удаление записи не возможно. Причина - "
                              "Имеются связанные записи - Сделки.")
        del self.clients[clid]
        removed = [h for h, r in self.history.items() if r.get("clid") == clid]
        for h in removed:
            del self.history[h]
        detached = 0
        for person in self.persons.values():
            if person.get("clid") == clid:
                person["clid"], detached = 0, detached + 1
        self.fire("client.delete", {"clid": clid, "autor": user["iduser"]})
        return {"message": f"Успешно: Клиент удален.<br>Также удалено {len(removed)} записи истории активностей. "
                           f"Снята привязка к Клиенту у {detached} Контактов. Удалено 0 записей напоминаний. "
                           f"Удалено 0 файлов.", "result": "Клиент удален", "data": clid}

    def _add_history(self, content: str, *, user: dict[str, Any], clid: int = 0, pid: Any = "", did: int = 0,
                     datum: str | None = None, tip: str = "Событие") -> int:
        cid = self._new_id("history")
        self.history[cid] = {"cid": cid, "datum": datum or self.stamp(), "content": content, "tip": tip,
                             "iduser": user["iduser"], "clid": clid, "pid": str(pid or ""), "did": did}
        return cid

    # ======================================================================================
    # person
    # ======================================================================================
    def _person_fields(self, params, user, json_mode):
        return {"data": {**PERSON_FIELDS, "social": dict(SOCIAL)}}

    def _person_record(self, row: dict[str, Any], *, info: bool = False) -> dict[str, Any]:
        client = self.clients.get(_intval(row.get("clid")))
        out: dict[str, Any] = {}
        for name in PERSON_FIELDS:
            value = row.get(name)
            if name == "clid":
                out["clid"], out["client"] = _intval(value), client["title"] if client else ""
            elif name == "iduser":
                if info:
                    out["iduser"] = self._login(value) or ""
                else:
                    out["user"], out["iduser"] = self._login(value), _intval(value) if value is not None else None
            elif name == "loyalty":
                out["loyalty"] = self._title_of(self.loyalties, value)
            elif name == "clientpath":
                out["clientpath"] = "" if info else (self._title_of(self.clientpaths, value) or "")
            else:
                out[name] = value
        return out

    def _person_visible(self, row: dict[str, Any], people: set[int]) -> bool:
        return row.get("iduser") is not None and _intval(row["iduser"]) in people

    def _person_list(self, params, user, json_mode):
        rows = list(self.persons.values())
        if params.get("user"):
            owner = self._user_id(params["user"])
            rows = [r for r in rows if r.get("iduser") is not None and _intval(r["iduser"]) == owner]
        else:
            people = self._people(user)
            rows = [r for r in rows if self._person_visible(r, people)]
        word = str(params.get("word") or "")
        if word:
            rows = [r for r in rows if any(_like(r.get(f), word) for f in ("person", "ptitle", "mail"))
                    or _like(re.sub(r"\D", "", str(r.get("tel") or "")), word)]
        rows = self._date_window(lambda r: r["date_create"], rows, params.get("dateStart"), params.get("dateEnd"),
                                 strict=True)
        filters = params.get("filter") if isinstance(params.get("filter"), dict) else {}
        for key, value in filters.items():
            if key == "clid":
                rows = [r for r in rows if _intval(r.get("clid")) == _intval(value)]
            elif key in ("loyalty", "clientpath"):
                table = self.loyalties if key == "loyalty" else self.clientpaths
                wanted = self._dictionary_id(table, value, create=False)
                rows = [r for r in rows if _intval(r.get(key)) == wanted]
            elif key in PERSON_FIELDS:
                rows = [r for r in rows if _like(r.get(key), value)]
        rows = self._shown("person", rows, params)
        rows = self._order(rows, params, set(PERSON_FIELDS), "date_create", {}, "pid")
        page = [self._select(self._person_record(r), params, PERSON_FIELDS, _PERSON_COMPANIONS)
                for r in self._page(rows, params)]
        return {"data": page, "count": len(rows)} if page else {"count": len(rows)}

    def _person_info(self, params, user, json_mode):
        row = self.persons.get(_intval(params.get("pid")))
        if row is None or not self._person_visible(row, self._people(user)) or not row.get("person"):
            empty = dict.fromkeys(PERSON_FIELDS)
            empty.update({"client": "", "iduser": "", "clientpath": ""})
            return {"data": {k: empty[k] for k in self._person_record({}, info=True)}}
        data = self._person_record(row, info=True)
        return {"data": self._select(data, params, PERSON_FIELDS, {"clid": ("clid", "client")})}

    def _person_values(self, params: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in PERSON_TEXT:
            if name in params:
                values[name] = _text(params[name]) if params[name] is not None else ""
        if "clid" in params:
            values["clid"] = _intval(params["clid"])
        if "loyalty" in params:
            values["loyalty"] = _intval(params["loyalty"])
        if "clientpath" in params:
            values["clientpath"] = int(params["clientpath"]) if _is_numeric(params["clientpath"]) \
                else self.default_clientpath
        if _is_numeric(params.get("iduser")):
            values["iduser"] = int(params["iduser"])
        return values

    def _person_write_reply(self, reply: dict[str, Any]) -> dict[str, Any]:
        if self.person_write_fatal:
            raise self._fatal("Uncaught TypeError: Cannot access offset of type string on string",
                              "developer/v2/person.php", 560)
        return reply

    def _person_add(self, params, user, json_mode):
        if not str(params.get("person") or "").strip():
            return {"result": "", "data": 0, "error": ""}
        values = {k: v for k, v in self._person_values(params).items() if v not in ("", 0, "0", None)}
        if "iduser" not in values:
            values["iduser"] = self._user_id(params["user"]) if params.get("user") else user["iduser"]
        pid = self._new_id("person")
        row = dict.fromkeys(PERSON_FIELDS)
        row.update({"pid": pid, "date_create": self.stamp(), "date_edit": None, "clid": 0, "loyalty": 0,
                    "clientpath": self.default_clientpath})
        row.update(values)
        self.persons[pid] = row
        if params.get("mperson") == "yes" and row["clid"] in self.clients:
            self.clients[row["clid"]]["pid"] = pid
        if params.get("did") and _intval(params["did"]) in self.deals:
            deal = self.deals[_intval(params["did"])]
            deal["pid_list"] = ";".join([p for p in str(deal.get("pid_list") or "").split(";") if p] + [str(pid)])
        self.fire("person.add", {"pid": pid, "autor": user["iduser"]})
        return self._person_write_reply({"result": "Контакт добавлен", "data": pid, "error": ""})

    def _person_add_list(self, params, user, json_mode):
        items = params.get("persons") or {}
        items = items.values() if isinstance(items, dict) else items
        return [self._person_add(dict(item), user, json_mode) for item in items]

    def _person_update(self, params, user, json_mode):
        pid = _intval(params.get("pid"))
        row = self.persons.get(pid)
        if row is None:
            self._add_history("Изменены данные контакта", pid=pid, user=user)
            return self._person_write_reply({"result": "Данные контакта обновлены", "data": pid, "error": ""})
        given = self._person_values(params)
        if self.person_update_overwrites:  # Person::fullupdate: a full replacement
            values = {name: given.get(name, "") for name in PERSON_TEXT}
            values["iduser"] = given.get("iduser")
            values["loyalty"] = given.get("loyalty", 0)
            values["clientpath"] = given.get("clientpath", self.default_clientpath)
            values["clid"] = given.get("clid", row.get("clid"))
        else:
            values = dict(given)
            if "iduser" not in values and params.get("user"):
                values["iduser"] = self._user_id(params["user"])
        diff = {k: v for k, v in values.items() if not _loose_equal(row.get(k), v)}
        if not diff:
            return self._person_write_reply({"result": "", "data": pid, "error": ""})
        row.update(values)
        row["date_edit"] = self.stamp()
        self.fire("person.edit", {"pid": pid, "autor": user["iduser"],
                                  "newparam": {**diff, "date_edit": row["date_edit"], "editor": user["iduser"]}})
        return self._person_write_reply({"result": "Данные контакта обновлены", "data": pid, "error": ""})

    def _person_delete(self, params, user, json_mode):
        pid = _intval(params.get("pid"))
        if not pid and any(not lead.get("pid") for lead in self.leads.values()):
            raise self._fatal("Uncaught mysqli_sql_exception: Incorrect integer value: '' for column "
                              "`salesman`.`app_leads`.`pid` at row 1",
                              "vendor/colshrapnel/safemysql/safemysql.class.php", 466)
        if any(_intval(d.get("pid")) == pid and pid for d in self.deals.values()):
            return {"result": "Контакт не удален", "error": "Контакт является основным в сделках", "data": pid}
        self.persons.pop(pid, None)
        for client in self.clients.values():
            if client.get("pid") == pid and pid:
                client["pid"] = 0
        self.fire("person.delete", {"pid": pid, "autor": user["iduser"]})
        return {"message": "Успешно: Контакт удален. Также удалено 0 записи истории активностей. Удалено 0 записей "
                           "напоминаний. Удалено 0 файлов.\n\t\t\t", "result": "Клиент удален", "data": pid}

    # ======================================================================================
    # deal
    # ======================================================================================
    def _deal_fields(self, params, user, json_mode):
        return {"data": dict(DEAL_FIELDS)}

    def _deal_steplist(self, params, user, json_mode):
        return {"data": [{"idcategory": str(i), "title": t, "content": c} for i, t, c in STEPS]}

    def _deal_direction(self, params, user, json_mode):
        return {"data": [{"id": "1", "title": "Основное", "isDefault": "yes"}]}

    def _deal_type(self, params, user, json_mode):
        return {"data": [{"tid": str(i), "title": t, "isDefault": d} for i, t, d in DEAL_TYPES]}

    def _deal_statusclose(self, params, user, json_mode):
        return {"data": [{"sid": str(i), "title": t} for i, t in STATUS_CLOSE]}

    def _deal_funnel(self, params, user, json_mode):
        return {"data": []}

    @staticmethod
    def _step(idcategory: Any) -> tuple[int, str, str] | None:
        return next((s for s in STEPS if s[0] == _intval(idcategory)), None)

    def _deal_record(self, row: dict[str, Any]) -> dict[str, Any]:
        client = self.clients.get(_intval(row.get("clid")))
        payer = self.clients.get(_intval(row.get("payer")))
        owner = self.users.get(_intval(row.get("iduser")))
        step = self._step(row.get("idcategory"))
        tip = next((t for t in DEAL_TYPES if t[0] == _intval(row.get("tip"))), None)
        status = next((s[1] for s in STATUS_CLOSE if s[0] == _intval(row.get("sid"))), False)
        return {
            "did": row["did"], "uid": row.get("uid"), "datum": row.get("datum"), "datum_izm": row.get("datum_izm"),
            "clid": _intval(row.get("clid")), "clientTitle": client["title"] if client else None,
            "title": row.get("title"), "mcid": _intval(row.get("mcid")), "iduser": _intval(row.get("iduser")),
            "user": owner["login"] if owner else None, "userTitle": owner["title"] if owner else None,
            "datum_plan": row.get("datum_plan"), "step": int(step[1]) if step else 0,
            "stepID": step[0] if step else 0, "stepTitle": step[2] if step else None,
            "contractID": _intval(row.get("dog_num")), "contractTitle": None, "contractNumber": None,
            "contractDate": None, "tipID": tip[0] if tip else 0, "tip": tip[1] if tip else None,
            "directionID": _intval(row.get("direction")), "direction": "Основное" if row.get("direction") else None,
            "adres": row.get("adres"), "content": row.get("content"), "payer": _intval(row.get("payer")),
            "payerTitle": payer["title"] if payer else None, "kol": _num(row.get("kol")),
            "marga": _num(row.get("marga")), "input1": row.get("input1"), "datum_start": row.get("datum_start"),
            "datum_end": row.get("datum_end"), "close": row.get("close") or "no",
            "datum_close": row.get("datum_close"), "status_close": status, "des_fact": row.get("des_fact"),
            "kol_fact": _num(row.get("kol_fact")),
        }

    def _deal_list(self, params, user, json_mode):
        rows = self._visible(self.deals, params, user)
        if params.get("active") in ("yes", "no"):
            rows = [r for r in rows if (r.get("close") != "yes") == (params["active"] == "yes")]
        word = str(params.get("word") or "")
        if word:
            rows = [r for r in rows if any(_like(r.get(f), word) for f in ("title", "content", "adres"))]
        if params.get("steps"):
            wanted = {s.strip() for s in str(params["steps"]).split(",")}
            rows = [r for r in rows if (self._step(r.get("idcategory")) or (0, ""))[1] in wanted]

        def day(value: Any) -> str | None:
            return None if value is None else _moment(str(value)[:10])
        rows = self._date_window(lambda r: day(r.get("datum")), rows, params.get("dateStart"), params.get("dateEnd"),
                                 strict=False)
        rows = self._change_window(rows, params, "datum_izm", day)
        filters = params.get("filter") if isinstance(params.get("filter"), dict) else {}
        for key, value in filters.items():
            if key in ("clid", "payer", "idcategory", "direction", "tip"):
                rows = [r for r in rows if _intval(r.get(key)) == _intval(value)]
            elif key in DEAL_FIELDS or key in ("did", "uid"):
                rows = [r for r in rows if _like(r.get(key), value)]
        columns = set(DEAL_FIELDS) - {"step", "status_close"} | {"idcategory", "sid"}
        rows = self._shown("deal", rows, params)
        rows = self._order(rows, params, columns, "datum", {"date_create": "datum", "date_change": "datum_izm"},
                           "did")
        page = [self._select(self._deal_record(r), params, {**DEAL_FIELDS, "title": ""}, _DEAL_COMPANIONS)
                for r in self._page(rows, params)]
        return {"data": page, "count": len(rows)} if page else {"count": len(rows)}

    def _deal_row(self, params: dict[str, Any], user: dict[str, Any], missing: str) -> dict[str, Any]:
        row = None
        if params.get("did"):
            row = self.deals.get(_intval(params["did"]))
        elif params.get("uid"):
            row = next((d for d in self.deals.values() if d.get("uid") == params["uid"]), None)
        if row is None or _intval(row["iduser"]) not in self._people(user):
            raise _error(403, missing)
        return row

    def _deal_info(self, params, user, json_mode):
        if not params.get("did") and not params.get("uid"):
            raise self._fatal("Uncaught mysqli_sql_exception: You have an error in your SQL syntax; check the manual "
                              "that corresponds to your MariaDB server version for the right syntax to use near "
                              "'and iduser IN (1,2) and identity = '1'' at line 1",
                              "vendor/colshrapnel/safemysql/safemysql.class.php", 466)
        row = self._deal_row(params, user, "Сделка не найдена в пределах аккаунта указанного пользователя.")
        record = self._deal_record(row)
        special = {"iduser", "user", "step", "stepID", "stepTitle", "contractID", "contractTitle", "contractNumber",
                   "contractDate", "tipID", "tip", "directionID", "direction", "status_close"}
        data: dict[str, Any] = {}
        for key, value in record.items():
            if key in ("clientTitle", "userTitle", "payerTitle"):
                continue
            if key == "payer":
                if params.get("payer") == "yes":
                    data["payer"] = self._client_card(_intval(value))
                continue
            data[key] = value if key in special or not self.deal_info_nulls else None
            if key == "user":
                data["userUID"] = ""
        if params.get("client") == "yes":
            data["client"] = self._client_card(_intval(row.get("clid")))
        persons = [self.persons[int(p)] for p in str(row.get("pid_list") or "").split(";")
                   if p.strip().isdigit() and int(p) in self.persons]
        if persons:
            data["person"] = [{"pid": p["pid"], "title": p.get("person"), "post": p.get("ptitle"),
                               "phone": p.get("tel"), "mob": p.get("mob"), "email": p.get("mail")} for p in persons]
        return {"data": data}

    def _client_card(self, clid: int) -> dict[str, Any] | None:
        row = self.clients.get(clid)
        if row is None:
            return None
        creator, editor = self.users.get(_intval(row.get("creator"))), self.users.get(_intval(row.get("editor")))
        return {
            "clid": clid, "uid": row.get("uid"), "clientUID": row.get("uid"), "iduser": _intval(row.get("iduser")),
            "title": row["title"], "des": row.get("des"), "idcategory": _intval(row.get("idcategory")),
            "category": self._title_of(self.categories, row.get("idcategory")), "phone": row.get("phone"),
            "fax": row.get("fax"), "site_url": row.get("site_url"), "mail_url": row.get("mail_url"),
            "address": row.get("address"), "pid": _intval(row.get("pid")), "fav": "no", "trash": "no",
            "head_clid": _intval(row.get("head_clid")), "head": "", "scheme": row.get("scheme"),
            "tip_cmr": row.get("tip_cmr"), "relation": row.get("tip_cmr"), "territory": _intval(row.get("territory")),
            "territoryname": self._title_of(self.territories, row.get("territory")), "created": row["date_create"],
            "creator": creator["title"] if creator else "", "creatorID": _intval(row.get("creator")),
            "date_create": _sfdate(row["date_create"]), "edited": row.get("date_edit"),
            "editor": editor["title"] if editor else "", "editorID": _intval(row.get("editor")),
            "date_edit": _sfdate(row.get("date_edit")),
            "clientpath": self._title_of(self.clientpaths, row.get("clientpath")),
            "clientpath2": _intval(row.get("clientpath")), "type": row.get("type"), "priceLevel": "price_1",
            "input1": row.get("input1"),
            "recv": {"clid": clid, "castUrName": "", "castUrNameShort": "", "castName": row["title"],
                     **self._recv(row), "castFacAddr": row.get("address") or "", "castType": row.get("type")},
        }

    def _deal_add(self, params, user, json_mode):
        if not str(params.get("title") or "").strip():
            raise _error(406, "Отсутствуют параметры - Название сделки")
        clid, payer = _intval(params.get("clid")), _intval(params.get("payer"))
        clid, payer = clid or payer, payer or clid
        if clid not in self.clients or payer not in self.clients:
            raise _error(407, "Клиент или Плательщик не найден.")
        title = format_title(params["title"])
        if self.deal_numbering:
            self.deal_number += 1
            title = f"СД{self.deal_number}: {title}"
        step = next((s for s in STEPS if s[1] == str(params.get("step"))), STEPS[0])
        owner = self._user_id(params["user"]) if params.get("user") else user["iduser"]
        did = self._new_id("deal")
        row = {"did": did, "uid": params.get("uid") or None, "datum": self.today(), "datum_izm": None, "clid": clid,
               "title": title, "mcid": _intval(params.get("mcid")), "iduser": owner,
               "datum_plan": params.get("datum_plan") or (self.now() + timedelta(days=30)).strftime("%Y-%m-%d"),
               "idcategory": step[0], "dog_num": 0, "tip": _intval(params.get("tip")) or 6,
               "direction": _intval(params.get("direction")) or 1,
               "adres": _text(params["adres"]) if params.get("adres") else None,
               "content": _text(params["content"]) if params.get("content") else None, "payer": payer,
               "kol": float(_num(params.get("kol", params.get("summa")))),
               "marga": float(_num(params.get("marga", params.get("marg")))),
               "input1": params.get("input1") or None, "datum_start": params.get("datum_start") or None,
               "datum_end": params.get("datum_end") or None, "close": "no", "datum_close": None, "sid": 0,
               "des_fact": None, "kol_fact": 0, "pid": _intval(params.get("pid")),
               "pid_list": str(params.get("pid_list") or "").replace(",", ";"), "coid1": str(params.get("coid1") or "")}
        self.deals[did] = row
        newparam = {k: row[k] for k in ("title", "kol", "marga", "datum_plan", "content", "adres", "input1", "uid",
                                        "clid", "pid_list", "idcategory", "iduser", "payer", "direction", "tip",
                                        "close", "mcid", "pid")}
        self.fire("deal.add", {"did": did, "autor": user["iduser"], "userUID": "",
                               "newparam": {**newparam, "calculate": "no", "datum": row["datum"],
                                            "autor": user["iduser"], "identity": 1, "idcurrency": 0,
                                            "idcourse": 0, "did": did}})
        return {"result": "Успешно", "data": did}

    def _deal_update(self, params, user, json_mode):
        if not params.get("did"):
            raise _error(402, "Отсутствуют параметры - did сделки")
        row = self._deal_row(params, user, "Сделка с указанным did не найдена в пределах аккаунта указанного "
                                           "пользователя.")
        values: dict[str, Any] = {}
        for name in DEAL_TEXT:
            if name in params and name != "uid":
                values[name] = _text(params[name]) if params[name] not in (None, "") else None
        if values.get("title"):
            values["title"] = format_title(values["title"])
        for name in ("clid", "payer", "mcid", "direction", "tip"):
            if name in params:
                values[name] = _intval(params[name])
        if "kol" in params or "summa" in params:
            values["kol"] = float(_num(params.get("kol", params.get("summa"))))
        sent_marga = "marga" in params or "marg" in params
        if sent_marga:
            values["marga"] = float(_num(params.get("marga", params.get("marg"))))
        for name in ("pid_list", "coid1"):
            if name in params:
                values[name] = str(params[name] or "").replace(",", ";")
        if self.deal_update_clears:  # Deal::fullupdate always writes these three
            values.setdefault("marga", 0.0)
            values.setdefault("pid_list", "")
            values.setdefault("coid1", "")
        diff = {k: v for k, v in values.items()
                if not _loose_equal(_num(row.get(k)) if k in ("kol", "marga") else row.get(k),
                                    _num(v) if k in ("kol", "marga") else v)}
        if not diff:
            return {"result": IDENTICAL, "data": row["did"], "error": {"code": 302}}
        row.update(values)
        row["datum_izm"] = self.today()
        reported = {k: v for k, v in diff.items() if k != "marga" or sent_marga}
        self.fire("deal.edit", {"did": row["did"], "autor": user["iduser"], "newparam": reported})
        return {"result": "Готово", "data": row["did"]}

    def _deal_change_step(self, params, user, json_mode):
        if not params.get("did") and not params.get("uid"):
            raise _error(406, "Отсутствуют параметры - did сделки")
        row = self._deal_row(params, user, "Сделка не найдена в пределах аккаунта указанного пользователя.")
        step = next((s for s in STEPS if s[1] == str(params.get("step") or "")), None)
        if step is None:
            raise _error(405, "Отсутствуют параметры - Новый этап")
        old = self._step(row.get("idcategory"))
        row["idcategory"] = step[0]
        self.fire("deal.change.step", {"did": row["did"], "autor": user["iduser"], "stepOld": old[1] if old else "",
                                       "stepNew": step[1], "reason": params.get("description", ""),
                                       "comment": params.get("description", "")})
        return {"result": f"Этап сделки изменен на {step[1]}%. Предыдущий этап {old[1] if old else 0}%.",
                "data": row["did"]}

    def _deal_change_close(self, params, user, json_mode):
        row = self._deal_row(params, user, "Сделка не найдена в пределах аккаунта указанного пользователя.")
        if row.get("close") == "yes":
            return {"result": "Error", "data": "Сделка уже закрыта",
                    "error": {"code": 407, "text": "Сделка уже закрыта"}}
        status = next((s for s in STATUS_CLOSE if str(s[0]) == str(params.get("sid"))
                       or s[1] == params.get("status_close")), STATUS_CLOSE[3])
        row.update({"close": "yes", "sid": status[0], "datum_close": params.get("datum") or self.today(),
                    "kol_fact": _num(params.get("kol_fact")), "des_fact": params.get("des_fact",
                                                                                     params.get("description"))})
        if "marga" in params:
            row["marga"] = float(_num(params["marga"]))
        self.fire("deal.close", {"did": row["did"], "autor": user["iduser"], "summa": row["kol_fact"],
                                 "status": status[1]})
        return {"result": "Ok", "data": f"Сделка закрыта со статусом {status[1]}"}

    def _deal_change_user(self, params, user, json_mode):
        row = self._deal_row(params, user, "Сделка не найдена в пределах аккаунта указанного пользователя.")
        owner = self._user_id(params.get("user"))
        if not owner:
            raise _error(405, "Отсутствуют параметры - Новый ответственный")
        row["iduser"] = owner
        self.fire("deal.change.user", {"did": row["did"], "autor": user["iduser"], "newuser": owner})
        return {"result": "Успешно. Клиент не переведен<br>Контакты не переведены", "data": row["did"]}

    def _deal_delete(self, params, user, json_mode):
        if not params.get("did") and not params.get("uid"):
            raise self._fatal("Uncaught mysqli_sql_exception: You have an error in your SQL syntax; check the manual "
                              "that corresponds to your MariaDB server version for the right syntax to use near "
                              "'and iduser IN (1,2) and identity = '1'' at line 1",
                              "vendor/colshrapnel/safemysql/safemysql.class.php", 466)
        row = self._deal_row(params, user, "Сделка с указанным did не найдена в пределах аккаунта указанного "
                                           "пользователя.")
        del self.deals[row["did"]]
        self.fire("deal.delete", {"did": row["did"], "autor": user["iduser"]})
        return {"result": "Сделка удалена", "data": row["did"]}

    # ======================================================================================
    # task, history, lead
    # ======================================================================================
    def _task_fields(self, params, user, json_mode):
        return {"data": dict(TASK_FIELDS)}

    def _task_tips(self, params, user, json_mode):
        return {"data": [{"title": t, "color": c, "filter": f} for t, c, f in TASK_TIPS]}

    def _task_record(self, row: dict[str, Any], *, info: bool = False) -> dict[str, Any]:
        owner, author = self.users.get(_intval(row.get("iduser"))), self.users.get(_intval(row.get("autor")))
        client, deal = self.clients.get(_intval(row.get("clid"))), self.deals.get(_intval(row.get("did")))
        out = {"tid": str(row["tid"]), "datum": row["datum"], "totime": row["totime"], "title": row["title"],
               "des": row.get("des"), "tip": row.get("tip"), "active": row.get("active"),
               "priority": str(row.get("priority") or 0), "speed": str(row.get("speed") or 0),
               "iduser": _intval(row.get("iduser")), "user": owner["login"] if owner else "",
               "autor": _intval(row.get("autor")), "autorlogin": author["login"] if author else "",
               "clid": _intval(row.get("clid")), "client": client["title"] if client else ""}
        if info:
            pids = [p for p in re.split(r"[;,]", str(row.get("pid") or "")) if p.strip()] or ["0"]
            out["person"] = [{"pid": int(p), "person": (self.persons.get(int(p)) or {}).get("person", "")}
                             for p in pids]
        out.update({"did": _intval(row.get("did")), "dogovor": deal["title"] if deal else "",
                    "readonly": row.get("readonly") or "no", "day": row.get("day"),
                    "status": str(row.get("status") or 0)})
        return out

    def _task_list(self, params, user, json_mode):
        rows = list(self.tasks.values())
        start, end = params.get("dateStart") or self.today(), params.get("dateEnd") or self.today()
        rows = [r for r in rows if _moment(start) <= _moment(r["datum"]) <= _moment(end)]
        active = params.get("active")
        if active in (None, "") and self.task_list_needs_active:
            rows = []  # PHP 8: `active = ''`
        elif active in ("yes", "no"):
            rows = [r for r in rows if r.get("active") == active]
        people = self._people(user)
        if params.get("user"):
            rows = [r for r in rows if _intval(r["iduser"]) == self._user_id(params["user"])]
        else:
            rows = [r for r in rows if _intval(r["iduser"]) in people]
        for key in ("clid", "did"):
            if params.get(key):
                rows = [r for r in rows if _intval(r.get(key)) == _intval(params[key])]
        if params.get("word"):
            rows = [r for r in rows if _like(r.get("title"), params["word"]) or _like(r.get("des"), params["word"])]
        rows = self._shown("task", rows, params)
        rows = self._order(rows, params, set(TASK_FIELDS) | {"created"}, "datum", {}, "tid")
        page = [self._task_record(r) for r in self._page(rows, params)]
        return {"data": page} if page else []

    def _task_row(self, params: dict[str, Any], user: dict[str, Any], text: str, code: int | str) -> dict[str, Any]:
        if not params.get("id"):
            raise _error(405, "Отсутствуют параметры - id напоминания")
        row = self.tasks.get(_intval(params["id"]))
        if row is None or _intval(row["iduser"]) not in self._people(user):
            raise _error(code, text)
        return row

    def _task_info(self, params, user, json_mode):
        row = self._task_row(params, user, "Напоминание с указанным id не найдено в пределах аккаунта указанного "
                                           "пользователя.", "403")
        return {"data": self._task_record(row, info=True)}

    def _task_values(self, params: dict[str, Any]) -> dict[str, Any]:
        return {k: (_text(params[k]) if k in ("title", "des") else params[k])
                for k in ("title", "des", "tip", "datum", "totime", "priority", "speed", "active", "clid", "pid",
                          "did", "readonly", "day", "status") if k in params}

    def _task_add(self, params, user, json_mode):
        if not str(params.get("title") or "").strip():
            raise _error(405, "Отсутствуют параметры - Заголовок")
        tid = self._new_id("task")
        owner = self._user_id(params["user"]) if params.get("user") else user["iduser"]
        row = {"tid": tid, "datum": self.today(), "totime": (self.now() + timedelta(hours=1)).strftime("%H:%M"),
               "title": "", "des": "", "tip": "Звонок", "active": "yes", "priority": "0", "speed": "0",
               "iduser": owner, "autor": user["iduser"], "clid": 0, "pid": "", "did": 0, "readonly": "no",
               "day": None, "status": "0", "created": self.stamp()}
        row.update(self._task_values(params))
        self.tasks[tid] = row
        self.fire("task.add", {"id": tid, "autor": user["iduser"]})
        return {"result": "Успешно", "data": tid}

    def _task_update(self, params, user, json_mode):
        row = self._task_row(params, user, "Напоминание не найдено.", 403)
        values = self._task_values(params)
        if self.task_update_resets:
            for key, blank in (("des", ""), ("priority", "0"), ("pid", ""), ("day", "")):
                values.setdefault(key, blank)
            values["autor"] = 0
        values["iduser"] = self._user_id(params["user"]) if params.get("user") else user["iduser"]
        row.update(values)
        self.fire("task.edit", {"id": row["tid"], "autor": 0})
        return {"result": "Успешно", "data": row["tid"]}

    def _task_doit(self, params, user, json_mode):
        row = self._task_row(params, user, "Напоминание не найдено.", 403)
        row["active"], row["status"] = "no", str(params.get("status") or 1)
        cid = self._add_history(params.get("description") or row["title"], user=user, clid=_intval(row.get("clid")),
                                pid=row.get("pid"), did=_intval(row.get("did")))
        self.fire("task.doit", {"id": row["tid"], "autor": user["iduser"]})
        return {"result": "Успешно", "data": row["tid"], "message": "Добавлена Активность", "historyID": cid}

    def _task_delete(self, params, user, json_mode):
        row = self._task_row(params, user, "Напоминание не найдено.", 403)
        del self.tasks[row["tid"]]  # no event exists for task deletes
        return {"result": "Успешно", "data": row["tid"], "message": "Запись удалена"}

    def _history_fields(self, params, user, json_mode):
        return {"data": {"cid": "Идентификатор", "datum": "Дата", "content": "Содержание", "tip": "Тип",
                         "iduser": "Автор", "clid": "Клиент", "pid": "Контакт", "did": "Сделка"}}

    def _history_list(self, params, user, json_mode):
        pid = str(params.get("pid") or "")  # the typo FIND_IN_SET('<pid>', pid): nothing without pid
        rows = [r for r in self.history.values() if pid and pid in str(r.get("pid") or "").split(";")]
        return {"data": [dict(r) for r in self._page(rows, params)]} if rows else []

    def _history_info(self, params, user, json_mode):
        row = self.history.get(_intval(params.get("id")))
        if row is None:
            raise _error(403, "Запись не найдена.")
        return {"data": dict(row)}

    def _history_add(self, params, user, json_mode):
        if not any(params.get(k) for k in ("clid", "pid", "did")) or not params.get("content"):
            raise _error(405, "Отсутствуют параметры")
        if not params.get("datum"):
            raise _error(500, "Incorrect datetime value: ' " + self.now().strftime("%H:%M:%S") + "' for column "
                              "`datum` at row 1")
        cid = self._add_history(_text(params["content"]), user=user, clid=_intval(params.get("clid")),
                                pid=params.get("pid"), did=_intval(params.get("did")),
                                datum=f"{str(params['datum'])[:10]} {self.now():%H:%M:%S}",
                                tip=params.get("tip") or "Событие")
        self.fire("history.add", {"id": cid, "autor": user["iduser"]})
        return {"result": "Успешно", "data": cid}

    def _history_delete(self, params, user, json_mode):
        if self.history.pop(_intval(params.get("id")), None) is None:
            raise _error(403, "Запись не найдена.")
        return {"result": "Успешно"}

    def _lead_record(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"id": row["id"], "datum": row["datum"], "datum_do": row.get("datum_do"), "email": row.get("email"),
                "phone": row.get("phone"), "site": row.get("site"), "company": row.get("company"),
                "city": row.get("city"), "country": row.get("country"), "content": row.get("description"),
                "clid": row.get("clid", 0), "client": None, "pid": row.get("pid", 0), "person": None,
                "did": row.get("did", 0), "deal": None, "user": 0, "userName": "Не определен",
                "status": row.get("status", 0), "statusName": LEAD_STATUS.get(row.get("status", 0)),
                "rezult": row.get("rezult") or None, "rezultName": "", "clientpath": str(row.get("clientpath", 0)),
                "clientpathName": None, "uids": []}

    def _lead_list(self, params, user, json_mode):
        rows = list(self.leads.values())
        if params.get("dateStart"):  # DATE_FORMAT(datum, '%y-%m-%d') = value
            rows = [r for r in rows if r["datum"][2:10] == str(params["dateStart"])]
        if str(params.get("status") or "") != "":
            rows = [r for r in rows if str(r.get("status")) == str(params["status"])]
        rows = self._order(rows, params, {"id", "datum", "datum_do", "status", "email", "title"}, "datum", {}, "id")
        page = [self._lead_record(r) for r in self._page(rows, params)]
        if not page:
            raise _error(404, "Не найдено")
        return {"data": page}

    def _lead_info(self, params, user, json_mode):
        lid = _intval(params.get("id"))
        row = self.leads.get(lid)
        if row is None:
            return {"data": {"description": "", "statusName": "", "rezultName": None, "clientpathName": "",
                             "userName": None, "client": None, "person": None, "deal": None}, "id": lid}
        data = {k: row.get(k) for k in ("id", "datum", "datum_do", "status", "rezult", "title", "email", "phone",
                                        "site", "company", "description", "ip", "city", "country", "iduser",
                                        "clientpath", "pid", "clid", "did", "partner")}
        data.update({f"utm_{k}": None for k in ("source", "medium", "campaign", "term", "content", "referrer")})
        data.update({"statusName": LEAD_STATUS.get(row.get("status", 0)), "rezultName": None, "clientpathName": "",
                     "userName": None, "client": None, "person": None, "deal": None})
        return {"data": data, "id": lid}

    def _lead_add(self, params, user, json_mode):
        lid = self._new_id("lead")
        self.leads[lid] = {"id": lid, "datum": self.stamp(), "datum_do": None, "status": 0, "rezult": 0,
                           "title": params.get("title"), "email": params.get("email"), "phone": params.get("phone"),
                           "site": params.get("site"), "company": params.get("company"),
                           "description": params.get("description"), "ip": params.get("ip"),
                           "city": params.get("city"), "country": params.get("country"), "iduser": 0,
                           "clientpath": _intval(params.get("clientpath")), "pid": 0, "clid": 0, "did": 0,
                           "partner": 0}
        self.fire("lead.add", {"id": lid, "autor": user["iduser"]})
        return {"result": "Success", "id": lid}

    # ======================================================================================
    # user, guides
    # ======================================================================================
    def _user_user(self, params, user, json_mode):
        wanted = next((u for u in self.users.values()
                       if u["login"] == params.get("user") or str(u["iduser"]) == str(params.get("iduser"))), None)
        if wanted is None:
            return {"error": {"code": "404", "text": "Пользователь не найден"}}
        return {"data": {"iduser": wanted["iduser"], "uid": None, "oid": False, "title": wanted["title"],
                         "login": wanted["login"], "active": wanted["active"], "tip": wanted["tip"],
                         "user_post": wanted["user_post"], "email": wanted["email"], "phone": None,
                         "phone_in": None, "mob": None}}

    def _user_user_list(self, params, user, json_mode):
        return {"data": [{"iduser": u["iduser"], "uid": None, "oid": False, "title": u["title"], "login": u["login"],
                          "email": u["email"], "active": u["active"]} for u in self.users.values()]}

    def _user_user_add(self, params, user, json_mode):
        raise _error("500", "Table 'salesman.app_USER' doesn't exist в строке 1146")

    def _guides_category(self, params, user, json_mode):
        return {"data": [{"id": k, "title": t, "tip": tip} for k, (t, tip) in self.categories.items()]}

    def _guides_territory(self, params, user, json_mode):
        return {"data": [{"id": k, "title": t} for k, t in self.territories.items()]}

    def _guides_relations(self, params, user, json_mode):
        return {"data": [{"id": k, "title": t, "color": c} for k, (t, c) in self.relations.items()]}

    def _guides_clientpath(self, params, user, json_mode):
        return {"data": [{"id": k, "title": t, "utm_source": s, "destination": ""}
                         for k, (t, s) in self.clientpaths.items()]}

    def _guides_company_list(self, params, user, json_mode):
        raise self._fatal("Uncaught TypeError: array_keys(): Argument #1 ($array) must be of type array, null given",
                          "inc/class/Guides.php", 512)

    _guides_company_listfull = _guides_company_list

    def _guides_company_bank(self, params, user, json_mode):
        return {"data": []}

    def _guides_company_signers(self, params, user, json_mode):
        return {"data": [[]]}


# fields=NAME selects these keys, in this order
_CLIENT_COMPANIONS = {"iduser": ("user", "iduser"), "idcategory": ("idcategoryTitle", "idcategory"),
                      "head_clid": ("head_clidTitle", "head_clid"), "pid": ("person", "pid"),
                      "territory": ("territoryTitle", "territory"), "clientpath": ("clientpathTitle", "clientpath")}
_CLIENT_INFO_COMPANIONS = {"date_create": ("created", "date_create"), "date_edit": ("edited", "date_edit"),
                           "iduser": ("iduser", "user"), "idcategory": ("idcategory", "categoryName"),
                           "pid": ("pid", "person"), "territory": ("territory", "territoryName")}
_PERSON_COMPANIONS = {"clid": ("clid", "client"), "iduser": ("user", "iduser")}
_DEAL_COMPANIONS = {"clid": ("clid", "clientTitle"), "iduser": ("iduser", "user", "userTitle"),
                    "step": ("step", "stepID", "stepTitle"), "tip": ("tipID", "tip"),
                    "direction": ("directionID", "direction"), "payer": ("payer", "payerTitle"),
                    "dog_num": ("contractID", "contractTitle", "contractNumber", "contractDate")}


def _post(url: str, raw: bytes) -> int | None:
    """One delivery as the CRM sends it: Host, Connection: close, Content-Length, Content-Type only."""
    parts = urlsplit(url)
    conn_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_class(parts.hostname, parts.port, timeout=5)
    try:
        conn.putrequest("POST", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
                        skip_accept_encoding=True)
        conn.putheader("Connection", "close")
        conn.putheader("Content-Length", str(len(raw)))
        conn.putheader("Content-Type", "application/json")
        conn.endheaders(raw)
        return conn.getresponse().status
    except OSError:
        return None  # at-most-once: no retry
    finally:
        conn.close()


def create_app(records: int = 100, *, login: str = "admin", api_key: str = "emulator", seed: int = 1,
               webhook_url: str | None = None, timezone_name: str = "Europe/Moscow",
               person_update_overwrites: bool = True, deal_update_clears: bool = True,
               change_start_bug: bool = True, deal_info_nulls: bool = True, task_list_needs_active: bool = True,
               task_update_resets: bool = True, unstable_order: bool = True, person_write_fatal: bool = False,
               deal_numbering: bool = True, workers: int = 4) -> SalesManApp:
    return SalesManApp(records, login=login, api_key=api_key, seed=seed, webhook_url=webhook_url,
                       timezone_name=timezone_name, person_update_overwrites=person_update_overwrites,
                       deal_update_clears=deal_update_clears, change_start_bug=change_start_bug,
                       deal_info_nulls=deal_info_nulls, task_list_needs_active=task_list_needs_active,
                       task_update_resets=task_update_resets, unstable_order=unstable_order,
                       person_write_fatal=person_write_fatal, deal_numbering=deal_numbering,
                       workers=int(workers))
