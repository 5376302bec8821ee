"""SalesMan webhooks: the recorded POSTs the CRM sent, against what the emulator sends for the same scenarios.

The recording holds no requests for them: they were fired by the client, person and deal scenarios.
Those files are replayed again with a webhook registered, and each recorded webhook is compared with
the first one the emulator sent for the same event: the body's shape (every scalar a string, the
``newparam`` keys, so the blanked fields of the person update show).
"""
from __future__ import annotations

from typing import Any

from .replay import Outcome, Profile, SalesManReplayer, compare_shape, fixtures_root, load

SOURCES = ("client-crud.jsonl", "person.jsonl", "deal.jsonl")


def replay_webhooks(profile: Profile, exchanges: list[dict[str, Any]]) -> list[Outcome]:
    root = fixtures_root()
    sent: dict[str, list[dict[str, Any]]] = {}
    for name in SOURCES:
        replayer = SalesManReplayer(profile, load(root / "salesman" / name))
        app = replayer.server.app
        replayer.control("webhook", url=f"{replayer.server.url}/webhook-capture")
        try:
            replayer.run()
        finally:
            app._outbox.join()
        for entry in app.webhook_log:
            sent.setdefault(entry["body"].get("event"), []).append(entry["body"])
    outcomes = []
    for ex in exchanges:
        label = f"{ex['event']}"
        if not sent.get(ex["event"]):
            outcomes.append(Outcome(label, False, [f"the emulator sent no {ex['event']} webhook"]))
            continue
        body = sent[ex["event"]].pop(0)
        reasons = compare_shape(ex["body"], body)
        outcomes.append(Outcome(label, not reasons, reasons))
    return outcomes
