"""SalesMan's vocabulary: field tables, dictionaries and PHP-isms of its JSON and errors."""
from __future__ import annotations

import http.client
import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from ...jsonutil import dumps
from ..base import Response

Params = dict[str, Any]   # the request parameters, PHP-parsed
User = dict[str, Any]     # the API user making the request


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
    text = dumps(value).replace("/", "\\/")
    return "".join(ch if ord(ch) < 128 or 0x400 <= ord(ch) <= 0x4FF else _u_escape(ch) for ch in text)


def _u_escape(ch: str) -> str:
    return dumps(ch, ascii_only=True)[1:-1]


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


def _filters(params: Params) -> dict[str, Any]:
    """The ``filter[...]`` parameters of a listing."""
    raw = params.get("filter")
    return raw if isinstance(raw, dict) else {}


def _post(url: str, raw: bytes) -> int | None:
    """One delivery as the CRM sends it: Host, Connection: close, Content-Length, Content-Type only."""
    parts = urlsplit(url)
    conn_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_class(parts.hostname or "", parts.port, timeout=5)
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
