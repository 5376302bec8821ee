"""SalesMan's sample data."""
from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from .common import STEPS, format_title

if TYPE_CHECKING:
    from .state import SalesManState


def sample_data(app: SalesManState, records: int) -> None:
    """Sample clients, persons, deals, tasks, history and leads, spread over the last 400 days."""
    rnd = app.random
    names = ["Ромашка", "Вектор", "Северсталь-Сервис", "Уралтехснаб", "Альфа-Строй", "Гранит", "Сибирь Логистик",
             "Бета Инжиниринг", "Волга-Трейд", "Кедр", "Меридиан", "Прогресс", "Заря", "Техноком", "Оптима"]
    forms = ["ООО", "ЗАО", "ИП", "АО", "ООО"]
    cities = ["Москва", "Пермь", "Тюмень", "Челябинск", "Казань", "Екатеринбург"]
    first = ["Иван", "Мария", "Сергей", "Ольга", "Алексей", "Наталья", "Дмитрий", "Елена"]
    last = ["Иванов", "Петров", "Смирнов", "Кузнецов", "Попов", "Соколов", "Лебедев", "Козлов"]
    posts = ["Директор", "Главный бухгалтер", "Менеджер по закупкам", "Инженер", "Юрист"]
    start = now = app.now() - timedelta(days=1)
    start -= timedelta(days=400)
    stride = max(1, int(400 * 86400 / max(records, 1)))
    moment = start
    for i in range(records):
        moment += timedelta(seconds=rnd.choice([0, 0, 1, stride, 2 * stride]))  # bulk imports share a second
        created = moment.strftime("%Y-%m-%d %H:%M:%S")
        edited = None
        if rnd.random() < 0.3:
            edited = min(moment + timedelta(hours=rnd.randint(1, 500)), now).strftime("%Y-%m-%d %H:%M:%S")
        clid = app._new_id("client")
        city = rnd.choice(cities)
        title = format_title(f"{rnd.choice(forms)} {rnd.choice(names)} {clid}")
        app.clients[clid] = {
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
            pid = app._new_id("person")
            app.persons[pid] = {
                "pid": pid, "date_create": created, "date_edit": edited if k == 0 else None, "clid": clid,
                "ptitle": rnd.choice(posts), "person": f"{rnd.choice(last)} {rnd.choice(first)}",
                "tel": f"+7 (343) 2{pid % 100:02d}-00-{k:02d}", "fax": None,
                "mob": f"+7 912 {pid % 1000:03d}-11-22", "mail": f"contact{pid}@client{clid}.example",
                "rol": rnd.choice(["ЛПР", "Бухгалтер", None]), "iduser": app.clients[clid]["iduser"],
                "loyalty": rnd.choice([0, 1, 2]), "input2": None, "input7": None,
                "clientpath": app.clients[clid]["clientpath"],
            }
            if k == 0:
                app.clients[clid]["pid"] = pid
        if i % 2 == 0:
            did = app._new_id("deal")
            app.deal_number += 1
            day = moment.strftime("%Y-%m-%d")
            step = rnd.choice(STEPS)
            contacts = [p for p, r in app.persons.items() if r["clid"] == clid]
            app.deals[did] = {
                "did": did, "uid": f"DEAL-{did}" if i % 4 == 0 else None, "datum": day,
                "datum_izm": min(moment + timedelta(days=rnd.randint(1, 30)), now).strftime("%Y-%m-%d")
                if rnd.random() < 0.4 else None,
                "clid": clid, "title": f"СД{app.deal_number}: Поставка оборудования {did}", "mcid": 0,
                "iduser": app.clients[clid]["iduser"],
                "datum_plan": (moment + timedelta(days=60)).strftime("%Y-%m-%d"),
                "idcategory": step[0], "dog_num": 0, "tip": 6, "direction": 1, "adres": None,
                "content": f"Поставка {rnd.randint(1, 50)} единиц", "payer": clid,
                "kol": float(rnd.randint(10, 900) * 1000), "marga": float(rnd.randint(1, 90) * 100),
                "input1": None, "datum_start": None, "datum_end": None, "close": "no", "datum_close": None,
                "sid": 0, "des_fact": None, "kol_fact": 0, "pid_list": ";".join(map(str, contacts)),
                "coid1": "",
            }
    for n in range(min(records // 10, 20)):
        tid = app._new_id("task")
        clid = rnd.choice(list(app.clients)) if app.clients else 0
        app.tasks[tid] = {"tid": tid, "datum": (start + timedelta(days=n * 17)).strftime("%Y-%m-%d"),
                           "totime": "10:00", "title": f"Позвонить клиенту {clid}", "des": "Обсудить КП",
                           "tip": "Звонок", "active": "yes" if n % 3 else "no", "priority": "0",
                           "speed": "0", "iduser": 1, "autor": 1, "clid": clid, "pid": "", "did": 0,
                           "readonly": "no", "day": None, "status": "0", "created": app.stamp()}
    for n in range(min(records // 20, 10)):
        lid = app._new_id("lead")
        app.leads[lid] = {"id": lid, "datum": (start + timedelta(days=n * 30)).strftime("%Y-%m-%d %H:%M:%S"),
                           "datum_do": None, "status": 0, "rezult": 0, "title": f"Заявка с сайта {lid}",
                           "email": f"lead{lid}@example.net", "phone": f"+7 999 000-00-{lid:02d}",
                           "site": "example.net", "company": f"ИП Лидов {lid}", "description": "Нужен расчёт",
                           "ip": None, "city": "Казань", "country": "Россия", "iduser": 0, "clientpath": 0,
                           "pid": 0, "clid": 0, "did": 0, "partner": 0}
