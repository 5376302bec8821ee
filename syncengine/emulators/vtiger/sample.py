"""Deterministic Russian small-business sample data for the vtiger emulator.

Records are yielded in creation (crmid) order, a few per second with several sharing a second,
ending at ``end``; about one in ten was edited later, so ``modifiedtime`` order differs from id
order the way it does on a live install.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

MALE = ["Иван", "Пётр", "Алексей", "Сергей", "Дмитрий", "Андрей", "Михаил", "Николай", "Владимир",
        "Евгений", "Александр", "Максим", "Олег", "Игорь", "Артём", "Константин", "Юрий", "Павел"]
FEMALE = ["Анна", "Мария", "Елена", "Ольга", "Наталья", "Татьяна", "Ирина", "Светлана", "Екатерина",
          "Юлия", "Дарья", "Ксения", "Людмила", "Валентина", "Алина", "Виктория"]
SURNAMES = ["Петров", "Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Соколов", "Михайлов",
            "Новиков", "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров",
            "Павлов", "Козлов", "Степанов", "Николаев", "Орлов", "Андреев", "Макаров", "Никитин",
            "Захаров", "Зайцев", "Соловьёв", "Борисов", "Яковлев", "Григорьев", "Романов", "Воробьёв",
            "Сергеев", "Кузьмин", "Фролов", "Александров", "Дмитриев", "Королёв", "Гусев", "Киселёв"]
TITLES = ["Директор", "Генеральный директор", "Менеджер по продажам", "Главный бухгалтер", "Инженер",
          "Руководитель отдела закупок", "Юрист", "Логист", "Офис-менеджер", "Коммерческий директор", ""]
CITIES = ["Москва", "Санкт-Петербург", "Екатеринбург", "Новосибирск", "Казань", "Нижний Новгород",
          "Самара", "Пермь", "Краснодар", "Воронеж", "Тюмень", "Ярославль"]
STREETS = ["ул. Ленина", "пр. Мира", "ул. Гагарина", "ул. Советская", "Садовая ул.", "ул. Победы"]
COMPANY_WORDS = ["Ромашка", "Вектор", "Альянс", "Прогресс", "Север", "Сибирь", "Технострой", "Гранит",
                 "Меридиан", "Восход", "Импульс", "Стройресурс", "Агроторг", "Волга", "Интеграл", "Каскад"]
FORMS = ["ООО", "АО", "ПАО", "ИП"]
INDUSTRIES = ["Construction", "Retail", "Manufacturing", "Transportation", "Consulting", "Finance",
              "Food & Beverage", "Technology", ""]
ACCOUNT_TYPES = ["Customer", "Prospect", "Partner", "Reseller", "Supplier", ""]
LEAD_SOURCES = ["Cold Call", "Existing Customer", "Web Site", "Trade Show", "Word of mouth", "", ""]
TRANSLIT = dict(zip("абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
                    ["a", "b", "v", "g", "d", "e", "e", "zh", "z", "i", "y", "k", "l", "m", "n", "o", "p",
                     "r", "s", "t", "u", "f", "kh", "ts", "ch", "sh", "shch", "", "y", "", "e", "yu", "ya"],
                    strict=True))


@cache
def translit(text: str) -> str:
    return "".join(TRANSLIT.get(ch, ch) for ch in text.lower())


def phone(rng: random.Random) -> str:
    """A Russian mobile number in one of the formats people type."""
    digits = f"9{int(rng.random() * 10**9):09d}"
    code, a, b, c = digits[:3], digits[3:6], digits[6:8], digits[8:]
    return PHONE_FORMATS[int(rng.random() * len(PHONE_FORMATS))].format(code=code, a=a, b=b, c=c)


PHONE_FORMATS = ["+7 ({code}) {a}-{b}-{c}", "8 {code} {a}{b}{c}", "+7{code}{a}{b}{c}", "8({code}){a}-{b}-{c}",
                 "+7 {code} {a} {b} {c}"]


def _times(count: int, end: int, rng: random.Random, local: Callable[[float], str]) -> list[tuple[str, str]]:
    """(createdtime, modifiedtime) per record in creation order: 1–6 records a second up to ``end``."""
    per_second: list[int] = []
    total = 0
    while total < count:
        per_second.append(1 + int(rng.random() * 6))
        total += per_second[-1]
    start = end - len(per_second)
    seconds = [start + i for i, n in enumerate(per_second) for _ in range(n)][:count]
    cache: dict[int, str] = {}

    def text(t: int) -> str:
        if t not in cache:
            cache[t] = local(t)
        return cache[t]

    out = []
    for t in seconds:
        edited = min(end, t + rng.randint(1, max(1, end - t))) if rng.random() < 0.1 else t
        out.append((text(t), text(edited)))
    return out


def sample_records(contacts: int, accounts: int, seed: int, end: int, local: Callable[[float], str], *,
                   russian: bool) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(crmid, module, values as stored) for ``accounts`` Accounts spread among ``contacts`` Contacts."""
    rng = random.Random(seed)
    total = contacts + accounts
    account_slots = {round(k * total / accounts) for k in range(accounts)} if accounts else set()
    while len(account_slots) < accounts:  # rounding collisions on tiny totals
        account_slots.add(max(account_slots) + 1)
    times = _times(len(account_slots | set(range(total))), end, rng, local)
    made_accounts: list[int] = []
    used_names: set[str] = set()
    crmid = 0
    for position in range(len(times)):
        crmid += 1
        created, modified = times[position]
        if position in account_slots:
            word = rng.choice(COMPANY_WORDS)
            name = f"{rng.choice(FORMS)} «{word}»"
            if name in used_names:
                name = f"{name} {crmid}"
            used_names.add(name)
            values: dict[str, Any] = {
                "accountname": name, "phone": phone(rng), "website": f"https://{translit(word)}{crmid}.ru",
                "email1": f"info@{translit(word)}{crmid}.ru", "industry": rng.choice(INDUSTRIES),
                "accounttype": rng.choice(ACCOUNT_TYPES), "employees": rng.choice(["0", "5", "12", "40", "150"]),
                "bill_city": rng.choice(CITIES), "bill_street": f"{rng.choice(STREETS)}, д. {rng.randint(1, 120)}",
                "assigned_user_id": "1", "createdtime": created, "modifiedtime": modified,
            }
            if russian:
                values.update(inn=f"{rng.randint(10**9, 10**10 - 1)}", kpp=f"{rng.randint(10**8, 10**9 - 1)}")
            made_accounts.append(crmid)
            yield crmid, "Accounts", values
            continue
        female = rng.random() < 0.45
        first = rng.choice(FEMALE if female else MALE)
        last = rng.choice(SURNAMES) + ("а" if female else "")
        email = f"{translit(first)}.{translit(last)}{rng.randint(1, 99)}@example.ru" if rng.random() < 0.9 else ""
        values = {
            "firstname": first, "lastname": last, "email": email, "phone": phone(rng),
            "mobile": phone(rng) if rng.random() < 0.6 else "", "title": rng.choice(TITLES),
            "mailingcity": rng.choice(CITIES), "leadsource": rng.choice(LEAD_SOURCES),
            "birthday": f"{rng.randint(1960, 2000)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            if rng.random() < 0.3 else None,
            "account_id": str(rng.choice(made_accounts)) if made_accounts and rng.random() < 0.5 else None,
            "assigned_user_id": "1", "createdtime": created, "modifiedtime": modified,
        }
        yield crmid, "Contacts", values
