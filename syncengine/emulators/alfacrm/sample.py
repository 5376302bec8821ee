"""Alfa CRM Sample data: dictionaries, branches, teachers, groups, customers, lessons and payments."""
from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from typing import Any

from .models import _CITIES, _SUBJECTS, ACTIVE_E_DATE, API_USER_ID, MODELS, _person, _phone
from .state import AlfaState


class SampleData(AlfaState):
    """Sample data: dictionaries, branches, teachers, groups, customers, lessons and payments."""

    def seed(self, records: int, rnd: random.Random) -> None:
        """N customers (5% archived, 10% leads) with groups, lessons, payments and dictionaries."""
        for model, names in (("study-status", ("Учится", "Пауза", "Закончил")),
                             ("lead-status", ("Новый", "Пробное занятие", "Договор", "Отказ")),
                             ("lead-reject", ("Дорого", "Не подошло время")),
                             ("subject", _SUBJECTS)):
            for weight, name in enumerate(names):
                self._seed_row(model, {"name": name, "weight": weight, "is_enabled": 1})
        for weight, (code, name) in enumerate((("site", "Сайт"), ("vk", "ВКонтакте"), ("friend", "Рекомендация"))):
            self._seed_row("lead-source", {"code": code, "name": name, "is_enabled": 1, "weight": weight})
        subjects = list(self.tables["subject"])
        for b in self.branch_ids:
            self._seed_row("branch", {"name": f"Филиал {b}", "is_active": 1, "subject_ids": subjects, "weight": b})
            self._seed_row("location", {"branch_id": b, "name": f"Учебный центр {b}", "is_active": 1})
        teachers = [self._seed_row("teacher", {
            "branch_ids": self._branches_for(rnd), "name": _person(rnd), "gender": rnd.randint(1, 2),
            "dob": f"{rnd.randint(1, 28):02d}.{rnd.randint(1, 12):02d}.{rnd.randint(1965, 2000)}",
            "phone": [_phone(rnd)], "e_date": ACTIVE_E_DATE})["id"] for _ in range(max(2, records // 100))]
        groups = [self._seed_row("group", {
            "branch_ids": self._branches_for(rnd), "teacher_ids": [rnd.choice(teachers)],
            "name": f"{rnd.choice(_SUBJECTS)} — группа {g + 1}", "limit": 10, "b_date": "2024-09-01",
            "e_date": ACTIVE_E_DATE, "created_at": "2024-08-20 10:00:00", "updated_at": "2024-08-20 10:00:00",
        })["id"] for g in range(max(2, records // 25))]
        customers = []
        for n in range(records):
            archived = rnd.random() < 0.05
            created = datetime(2022, 1, 1) + timedelta(minutes=rnd.randrange(1_500_000))
            row = self._seed_row("customer", {
                "branch_ids": self._branches_for(rnd), "teacher_ids": [rnd.choice(teachers)],
                "name": _person(rnd), "is_study": 0 if rnd.random() < 0.1 else 1,
                "study_status_id": rnd.randint(1, 3), "lead_status_id": rnd.randint(1, 4),
                "lead_source_id": rnd.randint(1, 3), "assigned_id": API_USER_ID, "legal_type": 1,
                "dob": "" if rnd.random() < 0.1 else
                f"{rnd.randint(1, 28):02d}.{rnd.randint(1, 12):02d}.{rnd.randint(1980, 2018)}",
                "balance": f"{rnd.randint(-5000, 20000)}.{rnd.choice(('00', '50'))}",
                "balance_base": f"{rnd.randint(0, 5000)}.00", "balance_bonus": rnd.randint(0, 500),
                "paid_count": rnd.randint(-2, 12), "paid_lesson_count": rnd.randint(0, 8),
                "b_date": created.strftime("%Y-%m-%d %H:%M:%S"),
                "e_date": (created + timedelta(days=rnd.randint(30, 600))).date().isoformat()
                if archived else ACTIVE_E_DATE,
                "phone": [_phone(rnd)], "email": [f"client{n + 1}@example.ru"] if rnd.random() < 0.7 else [],
                "custom_gorod": rnd.choice(_CITIES)})
            customers.append(row)
        for _ in range(records // 2):
            customer = rnd.choice(customers)
            day = date(2024, 9, 1) + timedelta(days=rnd.randrange(300))
            hour = rnd.randint(9, 19)
            self._seed_row("lesson", {
                "branch_id": customer["branch_ids"][0], "date": day.isoformat(),
                "time_from": f"{day} {hour:02d}:00:00", "time_to": f"{day} {hour:02d}:45:00",
                "lesson_type_id": 2, "status": rnd.choice((1, 1, 2, 3, 3)), "subject_id": rnd.choice(subjects),
                "teacher_ids": customer["teacher_ids"], "customer_ids": [customer["id"]],
                "group_ids": [rnd.choice(groups)]})
            self._seed_row("pay", {
                "branch_id": customer["branch_ids"][0], "customer_id": customer["id"], "pay_type_id": 1,
                "pay_account_id": 1, "pay_item_id": 1, "document_date": day.isoformat(),
                "income": f"{rnd.randint(5, 60) * 100}.00", "payer_name": customer["name"], "is_confirmed": 1})
        for _ in range(max(1, records // 10) if customers else 0):
            customer = rnd.choice(customers)
            self._seed_row("communication", {"type_id": 1, "class": "Customer", "related_id": customer["id"],
                                              "user_id": API_USER_ID, "added": customer["b_date"],
                                              "comment": "Позвонить, уточнить расписание"})
            self._seed_row("task", {"branch_ids": customer["branch_ids"], "user_id": API_USER_ID,
                                    "customer_ids": [customer["id"]], "title": "Звонок",
                                    "text": f"Перезвонить: {customer['name']}", "created_at": customer["b_date"]})

    def _seed_row(self, model: str, values: dict[str, Any]) -> dict[str, Any]:
        """A row as if it had always been there: no validation, no Log entry, indexed later."""
        row = MODELS[model].blank()
        row.update(values)
        row["id"] = self.next_id[model]
        self.next_id[model] += 1
        self.tables[model][row["id"]] = row
        return row

    def _branches_for(self, rnd: random.Random) -> list[int]:
        if len(self.branch_ids) == 1:
            return list(self.branch_ids)
        roll = rnd.random()
        return list(self.branch_ids[:2]) if roll < 0.1 else [rnd.choice(self.branch_ids)]

    def finish_seed(self) -> None:
        for model, index in self._by_name.items():
            index[:] = sorted((row["name"].casefold(), i) for i, row in self.tables[model].items())
