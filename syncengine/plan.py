"""Plan: what a sync would write, computed from the mirror alone.

Per mapping, every link is diffed three ways: each side's canonical values against that side's
*base* (what it held after the last sync: the shadow both agreed on, or what the side stored
instead when it keeps less than it was sent). A field changed on one side flows to the other;
changed on both to different values, the field's conflict policy decides (``left``, ``right``, ``newest``,
or ``manual`` → a conflicts row). Unlinked records are matched on ``match_on`` against the other
side before anything is created; several candidates is *ambiguous* and nothing is created.
Deletions follow ``on_delete`` once the delete queue (``deletes.py``) says the evidence is enough;
a delete whose survivor was edited since the last sync follows ``on_delete_conflict``. Only
active links claim records: the survivor of an ended link is free to match again. Apply re-reads
each update's target first and skips the write if the fields it writes changed since the plan
(``stale``); ``sync`` then plans those records again.

A :class:`Plan` is plain data (JSON): ``apply`` carries it out exactly, and refuses it when the
mirror has moved since (its :func:`fingerprint` differs).
"""
from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from . import jsonutil
from .deletes import H as HELD
from .deletes import Held, queue_of
from .mapping import (
    SIDES,
    EditTime,
    FieldMap,
    Mapping,
    Pending,
    RefResolver,
    SideRef,
    TranslationError,
    Translator,
    edit_order,
    other,
)
from .mirror import Mirror
from .mirror.models import ConflictRow, LinkRow, OutboxRow, RecordRow, utcnow
from .mirror.provenance import naive, origin_times
from .parked import ignored_records
from .types import EntitySchema, Path_

PLAN_VERSION = 1
API_OPS = ("create", "update", "delete")
_MISSING = object()


@dataclass
class Action:
    """One step of a plan. ``create``/``update``/``delete`` call a CRM; ``link``, ``unlink`` and
    ``conflict`` only change the mirror's sync state."""

    key: str
    mapping: str
    op: str
    side: str                      # the side written (for link/unlink/conflict: "both")
    system: str = ""
    entity: str = ""
    remote_id: str | None = None   # the record written (None for a create)
    left_id: str | None = None
    right_id: str | None = None
    values: dict[str, Any] = field(default_factory=dict)    # raw payload for the API
    before: dict[str, Any] = field(default_factory=dict)    # raw values it replaces (undo)
    changes: dict[str, list[Any]] = field(default_factory=dict)  # field -> [canonical before, after]
    settles: dict[str, Any] = field(default_factory=dict)   # shadow values once done
    match: dict[str, Any] | None = None                     # create: how to find it after a crash
    link_id: int | None = None
    state: str | None = None                                # unlink: unlinked | deleted
    conflict: dict[str, Any] | None = None                  # conflict: field, left, right, shadow
    closes: list[int] = field(default_factory=list)         # conflicts settled by this action

    @property
    def calls_api(self) -> bool:
        return self.op in API_OPS


@dataclass
class Issue:
    """A record the plan leaves alone, and why (ambiguous match, untranslatable value)."""

    mapping: str
    side: str
    remote_id: str
    kind: str
    error: str


@dataclass
class Plan:
    id: str
    created_at: str
    mappings: list[str]
    fingerprint: str
    actions: list[Action] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sides: dict[str, dict[str, str]] = field(default_factory=dict)  # mapping -> side -> "system:Entity"
    version: int = PLAN_VERSION

    def to_json(self) -> bytes:
        return jsonutil.dumpb(asdict(self), indent=True)

    @classmethod
    def from_json(cls, data: bytes | str) -> Plan:
        raw = jsonutil.loads(data)
        if not isinstance(raw, dict) or raw.get("version") != PLAN_VERSION or "actions" not in raw:
            raise ValueError("not a syncengine plan file (make one with `syncengine plan --out FILE`)")
        raw["actions"] = [Action(**a) for a in raw["actions"]]
        raw["issues"] = [Issue(**i) for i in raw["issues"]]
        return cls(**raw)

    def writes(self) -> list[Action]:
        return [a for a in self.actions if a.calls_api]

    def counts(self) -> dict[str, dict[str, int]]:
        """``{"vt:Contacts": {"create": 3, "update": 1, "delete": 0}, ...}``"""
        out: dict[str, dict[str, int]] = {}
        for a in self.writes():
            target = out.setdefault(f"{a.system}:{a.entity}", dict.fromkeys(API_OPS, 0))
            target[a.op] += 1
        return out

    @property
    def empty(self) -> bool:
        return not self.actions


# -- mirror state --------------------------------------------------------------------------

@dataclass
class SideRecord:
    data: dict[str, Any]
    last_changed: datetime
    deleted: bool


@dataclass
class Link:
    id: int
    left_id: str
    right_id: str
    state: str
    shadow: dict[str, Any]
    bases: dict[str, dict[str, Any]] = field(default_factory=dict)  # side -> field -> held value

    def id_of(self, side: str) -> str:
        return self.left_id if side == "left" else self.right_id

    def base(self, side: str, name: str) -> Any:
        """What SIDE held of field NAME after the last sync (``_MISSING``: never synced)."""
        held = self.bases.get(side, {})
        return held[name] if name in held else self.shadow.get(name, _MISSING)

    def diverges(self, name: str) -> bool:
        return any(name in self.bases.get(side, {}) for side in SIDES)


def load_side(mirror: Mirror, side: SideRef) -> dict[str, SideRecord]:
    r = RecordRow.__table__
    stmt = sa.select(r.c.remote_id, r.c.data, r.c.last_changed, r.c.deleted_at).where(
        r.c.system == side.system, r.c.entity == side.entity)
    with mirror.engine.connect() as conn:
        return {rid: SideRecord(jsonutil.loads(data), changed, deleted is not None)
                for rid, data, changed, deleted in conn.execute(stmt)}


def load_links(mirror: Mirror, mapping: str) -> list[Link]:
    with mirror.engine.connect() as conn:
        rows = conn.execute(sa.select(LinkRow).where(LinkRow.mapping == mapping).order_by(LinkRow.id)).all()
    return [Link(r.id, r.left_id, r.right_id, r.state, jsonutil.loads(r.shadow), jsonutil.loads(r.bases or "{}"))
            for r in rows]


def ref_resolver(mirror: Mirror, mappings: Iterable[str]) -> RefResolver:
    refs = RefResolver()
    for name in mappings:
        for link in load_links(mirror, name):
            if link.state == "active":
                refs.add(name, link.id, link.left_id, link.right_id)
    return refs


def fingerprint(mirror: Mirror, mappings: list[Mapping]) -> str:
    """A digest of everything a plan was computed from: both sides' records, links, conflicts."""
    digest = hashlib.blake2b(digest_size=16)
    r = RecordRow.__table__
    names = sorted({m.name for m in mappings} | {ref for m in mappings for ref in m.refs})
    sides = sorted({(m.side(s).system, m.side(s).entity) for m in mappings for s in SIDES})
    with mirror.engine.connect() as conn:
        for system, entity in sides:
            digest.update(f"|{system}:{entity}|".encode())
            for rid, h, deleted in conn.execute(sa.select(r.c.remote_id, r.c.hash, r.c.deleted_at).where(
                    r.c.system == system, r.c.entity == entity).order_by(r.c.remote_id)):
                digest.update(f"{rid}:{h}:{deleted is not None};".encode())
        links = sa.select(LinkRow.id, LinkRow.left_id, LinkRow.right_id, LinkRow.state, LinkRow.shadow,
                          LinkRow.bases).where(LinkRow.mapping.in_(names)).order_by(LinkRow.id)
        conflicts = sa.select(ConflictRow.id, ConflictRow.state, ConflictRow.value, ConflictRow.take).where(
            ConflictRow.mapping.in_(names)).order_by(ConflictRow.id)
        for stmt in (links, conflicts):
            for row in conn.execute(stmt):
                digest.update(jsonutil.dumpb(list(row)))
        for system, entity in sides:
            for held in conn.execute(sa.select(HELD.c.id, HELD.c.state).where(
                    HELD.c.system == system, HELD.c.entity == entity).order_by(HELD.c.id)):
                digest.update(jsonutil.dumpb(list(held)))
    return digest.hexdigest()


def in_doubt_creates(mirror: Mirror) -> set[tuple[str, str, str]]:
    """(mapping, source side, source id) of creates an interrupted run may or may not have made."""
    with mirror.engine.connect() as conn:
        rows = conn.execute(sa.select(OutboxRow.mapping, OutboxRow.side, OutboxRow.left_id,
                                      OutboxRow.right_id).where(OutboxRow.state == "sent",
                                                                OutboxRow.op == "create")).all()
    return {(m, other(side), left if side == "right" else right) for m, side, left, right in rows}


# -- planning ------------------------------------------------------------------------------

def make_plan(mirror: Mirror, prepared: list[tuple[Mapping, dict[str, EntitySchema]]]) -> Plan:
    """The plan for these mappings (referenced-first), computed from the mirror as it is."""
    mappings = [m for m, _ in prepared]
    plan = Plan(id=uuid.uuid4().hex, created_at=utcnow().isoformat(timespec="seconds") + "Z",
                mappings=[m.name for m in mappings], fingerprint=fingerprint(mirror, mappings),
                sides={m.name: {s: str(m.side(s)) for s in SIDES} for m in mappings})
    doubtful = in_doubt_creates(mirror)
    if doubtful:
        plan.notes.append(f"{len(doubtful)} create(s) of an interrupted run are unconfirmed; "
                          "apply checks them first and their records wait until then")
    planners = [MappingPlanner(mirror, mapping, Translator(mapping, schemas, ref_resolver(mirror, mapping.refs)),
                               doubtful) for mapping, schemas in prepared]
    groups = [group for group in components([p.mapping for p in planners]) if len(group) > 1]
    for group in groups:
        members = [p for p in planners if p.mapping.name in group]
        contested = _contested_deletes(members)
        for planner in members:
            planner.contested = contested
        waiting = decide_across(members)
        if waiting:
            plan.notes.append(f"{', '.join(sorted(group))}: up to {waiting} value(s) go on to further systems "
                              "after these writes (sync carries them in the same run; after apply, the next sync)")
    for planner in planners:
        planner.run()
        plan.issues += planner.issues
        plan.notes += planner.notes
    plan.actions = _one_create_per_person(planners, groups)
    with mirror.engine.connect() as conn:
        ignored = ignored_records(conn, plan.mappings)
    if ignored:  # records an operator set aside (`parked ignore`): nothing is sent for them
        plan.actions = [a for a in plan.actions if _parked_as(a) not in ignored]
    return plan


def _one_create_per_person(planners: list[MappingPlanner], groups: list[set[str]]) -> list[Action]:
    """The planners' actions, where two mappings sharing an entity would create one person there
    (same ``match_on`` fields and values: both spokes of a star typed them in) keeping the first
    create only: the next plan (``sync`` makes it at once) matches the other to the new record."""
    shared = {name for group in groups for name in group}
    made: set[tuple[Any, ...]] = set()
    dropped: set[tuple[str, str | None, str | None]] = set()
    out: list[Action] = []
    for planner in planners:
        for a in planner.actions:
            if a.op == "create" and a.mapping in shared and a.match and a.match.get("key") is not None:
                person = (a.system, a.entity, tuple(planner.mapping.match_on), jsonutil.dumps(a.match["key"]))
                if person in made:
                    dropped.add((a.mapping, a.left_id, a.right_id))
                    continue
                made.add(person)
            if a.op == "update" and a.link_id is None and (a.mapping, a.left_id, a.right_id) in dropped:
                continue  # a template the dropped create would have rendered back to its source
            out.append(a)
    return out


def _contested_deletes(planners: list[MappingPlanner]) -> set[tuple[str, str, str]]:
    """Deleted records (system, entity, id) a live copy linked to them through any of these mappings
    was edited against: an edit-vs-delete for the whole person, not only for the edited copy's link
    (a hub delete against a spoke's edit keeps or deletes the copies on every spoke alike)."""
    out: set[tuple[str, str, str]] = set()
    for planner in planners:
        for link in planner.links:
            recs = {side: r for side in SIDES if (r := planner.records[side].get(link.id_of(side))) is not None}
            if link.state != "active" or len(recs) < len(SIDES):
                continue
            for side in SIDES:
                gone = other(side)
                if recs[gone].deleted and not recs[side].deleted and planner._edited_since_sync(link, side):
                    ref = planner.mapping.side(gone)
                    out.add((ref.system, ref.entity, link.id_of(gone)))
    return out


def _parked_as(action: Action) -> tuple[str, str, str | None]:
    """The (mapping, side, id) a failed ACTION parks: a create's source record, else the record written."""
    if action.op == "create":
        source = other(action.side)
        return action.mapping, source, action.left_id if source == "left" else action.right_id
    return action.mapping, action.side, action.remote_id


class MappingPlanner:
    """The actions and issues of one mapping."""

    def __init__(self, mirror: Mirror, mapping: Mapping, translator: Translator,
                 doubtful: set[tuple[str, str, str]] | frozenset[tuple[str, str, str]] = frozenset()):
        self.mirror = mirror
        self.mapping = mapping
        self.tr = translator
        self.doubtful = doubtful
        self.actions: list[Action] = []
        self.issues: list[Issue] = []
        self.notes: list[str] = []
        self.records = {side: load_side(mirror, mapping.side(side)) for side in SIDES}
        self.canonical: dict[str, dict[str, dict[str, Any]]] = {side: {} for side in SIDES}
        for side in SIDES:
            for rid, rec in self.records[side].items():
                if rec.deleted:
                    continue
                try:
                    self.canonical[side][rid] = translator.canonical(side, rec.data)
                except TranslationError as exc:
                    self._issue(side, rid, "translation", str(exc))
        if translator.invalid_phones:
            invalid = translator.invalid_phones
            more = f" and {len(invalid) - 5} more" if len(invalid) > 5 else ""
            self.notes.append(f"{mapping.name}: {len(invalid)} phone number(s) are not a valid number of their "
                              f"country ({mapping.phone_country} unless the field says otherwise), so they are "
                              f"kept as written: {', '.join(invalid[:5])}{more}")
        self.links = load_links(mirror, mapping.name)
        self.queue = {side: queue_of(mirror, mapping.side(side).system, mapping.side(side).entity) for side in SIDES}
        self.ended: dict[int, str] = {}  # link id -> the state this plan ends it in
        self.decided: dict[tuple[int, str], Decision] = {}  # (link id, field) decided with the other mappings
        self.contested: set[tuple[str, str, str]] = set()  # deleted records another mapping's edit contests
        self.held = 0                    # links whose delete waits (for evidence or a person)
        with mirror.engine.connect() as conn:
            self.conflicts = conn.execute(sa.select(ConflictRow).where(
                ConflictRow.mapping == mapping.name, ConflictRow.state.in_(("open", "resolved")))).all()

    def _issue(self, side: str, rid: str, kind: str, error: str) -> None:
        self.issues.append(Issue(self.mapping.name, side, rid, kind, error))

    def _key(self, op: str, side: str, left_id: str | None, right_id: str | None) -> str:
        return f"{self.mapping.name}:{op}:{side}:{left_id or '-'}:{right_id or '-'}"

    def run(self) -> None:
        for link in self.links:
            if link.state == "active":
                self._link(link)
        taken: dict[str, set[str]] = {side: set() for side in SIDES}
        match_only: dict[str, set[str]] = {side: set() for side in SIDES}  # survivors left alone
        for link in self.links:
            state = self.ended.get(link.id, link.state)
            for side in SIDES:
                if state == "active":
                    taken[side].add(link.id_of(side))
                elif state == "unlinked":
                    match_only[side].add(link.id_of(side))
        if self.held:
            self.notes.append(f"{self.mapping.name}: {self.held} delete(s) wait for a second look or a decision "
                              "(`syncengine deletes`)")
        self._unlinked(taken, match_only)

    # -- existing links --------------------------------------------------------------------
    def _link(self, link: Link) -> None:
        recs = {side: r for side in SIDES if (r := self.records[side].get(link.id_of(side))) is not None}
        if len(recs) < len(SIDES):
            return  # not in the mirror (not pulled yet): nothing is known
        alive = {side: not recs[side].deleted for side in SIDES}
        if all(alive.values()):
            values = {side: v for side in SIDES if (v := self.canonical[side].get(link.id_of(side))) is not None}
            if len(values) == len(SIDES):  # else: parked for translation
                self._diff(link, values, recs)
            return
        self._deleted(link, alive)

    def _deleted(self, link: Link, alive: dict[str, bool]) -> None:
        m = self.mapping
        held: dict[str, Held | None] = {s: self.queue[s].get(link.id_of(s)) for s in SIDES if not alive[s]}
        if any(h is not None and h.state not in ("confirmed", "approved", "rejected") for h in held.values()):
            self.held += 1  # waiting for a second look, out of scope, or for a person
            return
        if not any(alive.values()):
            self._end(link, "deleted")
            return
        survivor = "left" if alive["left"] else "right"
        gone = other(survivor)
        decided = held[gone]
        if decided is not None and decided.state == "rejected":
            self._end(link, "rejected")  # the survivor is free: re-created on the gone side, linked again
            return
        if m.on_delete == "ignore":
            return
        if m.on_delete == "propagate" and m.creates_on(survivor):
            approved = decided is not None and decided.state == "approved"
            contested = (m.side(gone).system, m.side(gone).entity, link.id_of(gone)) in self.contested
            if not approved and (self._edited_since_sync(link, survivor) or contested):
                if m.on_delete_conflict == "manual":
                    self.held += 1
                    ref = f"{decided.id}" if decided else "ID"
                    self._issue(survivor, link.id_of(survivor), "delete",
                                f"{m.side(gone)} {link.id_of(gone)} was deleted, but {m.side(survivor)} "
                                f"{link.id_of(survivor)} was edited since the last sync; `syncengine deletes "
                                f"approve {ref}` deletes it, `syncengine deletes reject {ref}` keeps both")
                    return
                if m.on_delete_conflict == "keep":
                    edited = "was edited" if not contested else "(or its copy on another system) was edited"
                    self.notes.append(f"{m.name}: {m.side(survivor)} {link.id_of(survivor)} {edited} after "
                                      f"{m.side(gone)} {link.id_of(gone)} was deleted; kept, and unlinked")
                    self._end(link, "unlinked")
                    return
            target = m.side(survivor)
            self.actions.append(Action(
                self._key("delete", survivor, link.left_id, link.right_id), m.name, "delete", survivor,
                target.system, target.entity, remote_id=link.id_of(survivor), left_id=link.left_id,
                right_id=link.right_id, link_id=link.id,
                before=self.records[survivor][link.id_of(survivor)].data,
                changes={"(record)": [f"{m.side(gone)} {link.id_of(gone)} was deleted", None]}))
            return
        self._end(link, "unlinked")

    def _end(self, link: Link, state: str) -> None:
        self.actions.append(Action(self._key("unlink", "both", link.left_id, link.right_id), self.mapping.name,
                                   "unlink", "both", left_id=link.left_id, right_id=link.right_id,
                                   link_id=link.id, state=state))
        self.ended[link.id] = state

    def _edited_since_sync(self, link: Link, side: str) -> bool:
        """Does SIDE's record hold a synced value other than what it held after the last sync?"""
        values = self.canonical[side].get(link.id_of(side))
        if values is None:
            return False
        return any(link.base(side, fm.name) is not _MISSING and not isinstance(values.get(fm.name), Pending)
                   and values.get(fm.name) != link.base(side, fm.name) for fm in self.mapping.synced_fields)

    def _diff(self, link: Link, values: dict[str, dict[str, Any]], recs: dict[str, SideRecord]) -> None:
        """Three-way diff of one link; the writes, the shadow-only settlements and conflicts."""
        writes: dict[str, dict[str, Any]] = {"left": {}, "right": {}}
        settle: dict[str, Any] = {}
        closes: list[int] = []
        conflicts = {(c.link_id, c.field): c for c in self.conflicts if c.link_id == link.id}
        for fm in self.mapping.synced_fields:
            name = fm.name
            left, right = values["left"].get(name), values["right"].get(name)
            if isinstance(left, Pending) or isinstance(right, Pending):
                continue
            shadow = link.shadow.get(name, _MISSING)
            decided = self.decided.get((link.id, name))
            if decided is not None:  # one decision for the field on every mapping that shares it
                for side, value in decided.writes.items():
                    writes[side][name] = value
                if decided.settle is not _MISSING:
                    settle[name] = decided.settle
                if decided.conflict:
                    self._conflict(link, name, left, right, shadow)
                continue
            open_conflict = conflicts.get((link.id, name))
            if open_conflict is not None:
                if open_conflict.state == "resolved":  # a side's value as it is now, or a given value
                    seen = {"left": jsonutil.loads(open_conflict.left_value),
                            "right": jsonutil.loads(open_conflict.right_value)}
                    if any(values[s].get(name) != seen[s] for s in SIDES if s != open_conflict.take):
                        self._conflict(link, name, left, right, shadow)  # edited since: opens again
                        continue
                    chosen = values[open_conflict.take].get(name) if open_conflict.take \
                        else self.tr.typed_by_person(fm, jsonutil.loads(open_conflict.value))
                    for side, current in (("left", left), ("right", right)):
                        if current != chosen and fm.flows_to(side):
                            writes[side][name] = chosen
                    if left == right == chosen:
                        settle[name] = chosen
                    closes.append(open_conflict.id)
                elif left == right:
                    settle[name] = left
                    closes.append(open_conflict.id)
                elif [jsonutil.loads(open_conflict.left_value), jsonutil.loads(open_conflict.right_value)] \
                        != [left, right]:  # still open: it shows each side's current value
                    self._conflict(link, name, left, right, shadow)
                continue
            if left == right:
                if shadow is _MISSING or shadow != left or link.diverges(name):
                    settle[name] = left
                continue
            base = {side: link.base(side, name) for side in SIDES}
            if base["left"] is _MISSING and base["right"] is _MISSING and (left is None or right is None):
                winner = "left" if left is not None else "right"  # no base: fill the empty side
            else:
                changed = {side: base[side] is _MISSING or values[side].get(name) != base[side] for side in SIDES}
                if not changed["left"] and not changed["right"]:
                    continue  # each side holds what it held: a value one side stores shorter is no edit
                if changed["left"] and not changed["right"]:
                    winner = "left"
                elif changed["right"] and not changed["left"]:
                    winner = "right"
                elif fm.direction != "both":
                    winner = fm.direction.split("-")[0]
                else:
                    policy = fm.conflict
                    if policy == "newest":
                        policy = self.tr.newer_side({s: recs[s].data for s in SIDES},
                                                    {s: recs[s].last_changed for s in SIDES}) or fm.tie_break
                    if policy == "manual":
                        self._conflict(link, name, left, right, shadow)
                        continue
                    winner = policy
            target = other(winner)
            if fm.flows_to(target):
                writes[target][name] = values[winner].get(name)
        self._rerender(writes, values, recs, settle)
        for side in SIDES:
            if writes[side]:
                self._update(link, side, writes[side], values[side], recs[side].data)
        if settle or closes:
            self.actions.append(Action(self._key("link", "both", link.left_id, link.right_id), self.mapping.name,
                                       "link", "both", left_id=link.left_id, right_id=link.right_id,
                                       link_id=link.id, settles=settle, closes=closes))

    def _conflict(self, link: Link, name: str, left: Any, right: Any, shadow: Any) -> None:
        """Open a conflict, or refresh an open one's values to what the sides hold now."""
        self.actions.append(Action(
            self._key("conflict", name, link.left_id, link.right_id), self.mapping.name,
            "conflict", "both", left_id=link.left_id, right_id=link.right_id, link_id=link.id,
            conflict={"field": name, "left": left, "right": right, "shadow": None if shadow is _MISSING else shadow}))

    def _rerender(self, writes: dict[str, dict[str, Any]], values: dict[str, dict[str, Any]],
                  recs: dict[str, SideRecord], settle: dict[str, Any]) -> None:
        """A template whose source record is being written renders from the record as it will be,
        so the same run writes its new value too (no second pass to converge)."""
        for fm in self.mapping.synced_fields:
            source = fm.source
            if source is None or not writes[source]:
                continue
            target = other(source)
            try:
                raw = self.tr.to_raw(source, writes[source], recs[source].data)
            except TranslationError:
                continue
            rendered = self.tr.render(fm, {**recs[source].data, **raw})
            writes[target].pop(fm.name, None)
            settle.pop(fm.name, None)
            if rendered != values[target].get(fm.name):
                writes[target][fm.name] = rendered
            else:
                settle[fm.name] = rendered

    def _update(self, link: Link | None, side: str, new: dict[str, Any], current: dict[str, Any],
                data: dict[str, Any], *, left_id: str | None = None, right_id: str | None = None) -> None:
        target = self.mapping.side(side)
        left_id = link.left_id if link else left_id
        right_id = link.right_id if link else right_id
        try:
            payload = self.tr.to_raw(side, new, data)
        except TranslationError as exc:
            self._issue(side, (left_id if side == "left" else right_id) or "", "translation", str(exc))
            return
        self.actions.append(Action(
            self._key("update", side, left_id, right_id), self.mapping.name, "update", side,
            target.system, target.entity, remote_id=left_id if side == "left" else right_id,
            left_id=left_id, right_id=right_id, link_id=link.id if link else None, values=payload,
            before={k: data.get(k) for k in payload}, settles=dict(new),
            changes={f: [current.get(f), v] for f, v in new.items()}))

    # -- unlinked records: match, else create ------------------------------------------------
    def _unlinked(self, taken: dict[str, set[str]], match_only: dict[str, set[str]]) -> None:
        m = self.mapping
        free = {side: [rid for rid in self.canonical[side] if rid not in taken[side]
                       and (m.name, side, rid) not in self.doubtful] for side in SIDES}
        skipped = sum(1 for side in SIDES for rid in self.canonical[side]
                      if rid not in taken[side] and (m.name, side, rid) in self.doubtful)
        if skipped:
            self.notes.append(f"{m.name}: {skipped} record(s) wait for an unconfirmed create")
        keys = {side: {rid: self._match_keys(side, rid) for rid in self.canonical[side]} for side in SIDES}
        by_key: dict[str, dict[tuple, list[str]]] = {side: {} for side in SIDES}
        for side in SIDES:
            for rid, record_keys in keys[side].items():
                for key in record_keys:
                    by_key[side].setdefault(key, []).append(rid)

        def candidates_of(side: str, rid: str) -> list[str]:
            return sorted({c for key in keys[side][rid] for c in by_key[other(side)].get(key, ())})

        free_set = {side: set(free[side]) for side in SIDES}
        for side in SIDES:
            target = other(side)
            for rid in free[side]:
                candidates = candidates_of(side, rid)
                twins = sorted({p for key in keys[side][rid] for p in by_key[side].get(key, ())
                                if p != rid and p in free_set[side]})
                stamped = target in m.external_id  # each create carries its source: twins are told apart
                if stamped and candidates and not any(c in free_set[target] for c in candidates):
                    candidates = []  # the ones with this key are other records' already
                if not candidates:
                    if m.creates_on(target) and twins and not stamped:  # creates recovery could not tell apart
                        self._issue(side, rid, "ambiguous",
                                    f"{', '.join(m.match_on)} {'/'.join(map(str, keys[side][rid][0]))} is shared "
                                    f"by {len(twins) + 1} {m.side(side)} records and matches none in "
                                    f"{m.side(target)}; nothing created. Fix the duplicates or give each its own value")
                    elif m.creates_on(target) and rid not in match_only[side]:
                        self._create(side, rid, self.canonical[side][rid])
                    continue
                peers = sorted({p for c in candidates for p in candidates_of(target, c)
                                if p != rid and p in free_set[side]})
                if len(candidates) == 1 and not peers and candidates[0] in free_set[target]:
                    if side == "left":  # the pair is seen from both sides; plan it once
                        self._match(rid, candidates[0])
                    continue
                key = next(k for k in keys[side][rid] if by_key[target].get(k))
                described = ", ".join(
                    f"{c}{' (linked)' if c not in free_set[target] else ''}" for c in candidates[:5])
                more = f" and {len(peers)} more {m.side(side)} record(s) share it" if peers else ""
                self._issue(side, rid, "ambiguous",
                            f"{', '.join(m.match_on)} {'/'.join(map(str, key))} matches {m.side(target)} "
                            f"{described}{more}; nothing created. Link by hand or fix the duplicates")

    def _match_keys(self, side: str, rid: str) -> list[tuple[Any, ...]]:
        """Every identity of a record: a ``match_on`` field that is one element of a list (``email[0]``)
        matches on any element of that list, so ``[home, work]`` finds the twin that has ``work``."""
        values = self.canonical[side][rid]
        first = self.tr.match_key(values)
        keys = [first] if first is not None else []
        data = self.records[side][rid].data
        for name in self.mapping.match_on:
            path = self.mapping.fields[name].paths[side]
            items = data.get(path.key)
            if path.index is None or not isinstance(items, list) or not 1 < len(items) > path.index:
                continue
            for position, item in enumerate(items):
                if position == path.index:
                    continue
                moved = list(items)
                moved[path.index] = item  # that element where the mapping reads
                try:
                    alternative = self.tr.canonical(side, {**data, path.key: moved}).get(name)
                except TranslationError:
                    continue
                key = self.tr.match_key({**values, name: alternative})
                if key is not None and key not in keys:
                    keys.append(key)
        return keys

    def _match(self, left_id: str, right_id: str) -> None:
        """A new pair: link it, and reconcile the fields on which the two disagree."""
        link = Link(id=0, left_id=left_id, right_id=right_id, state="active", shadow={})
        values = {"left": self.canonical["left"][left_id], "right": self.canonical["right"][right_id]}
        recs = {"left": self.records["left"][left_id], "right": self.records["right"][right_id]}
        before = len(self.actions)
        self._diff(link, values, recs)
        new = self.actions[before:]
        del self.actions[before:]
        settled = next((a.settles for a in new if a.op == "link"), {})
        self.actions.append(Action(self._key("link", "both", left_id, right_id), self.mapping.name, "link",
                                   "both", left_id=left_id, right_id=right_id, settles=settled))
        for action in new:
            if action.op != "link":
                action.link_id = None
                self.actions.append(action)

    def _create(self, source: str, rid: str, values: dict[str, Any]) -> None:
        m = self.mapping
        target = other(source)
        side_ref = m.side(target)
        settles = {name: value for name, value in values.items()
                   if m.fields[name].flows_to(target) and not isinstance(value, Pending)}
        new = {name: value for name, value in settles.items() if value is not None}
        try:
            payload = {**self.tr.const_values(target), **self.tr.to_raw(target, new)}
        except TranslationError as exc:
            self._issue(source, rid, "translation", str(exc))
            return
        born_here = []  # a template read from the new record: its value is known now, and the
        for fm in m.synced_fields:  # record it is written to is this source record
            if fm.template is not None and fm.source == target:
                settles[fm.name] = self.tr.render(fm, payload)
                if fm.flows_to(source) and settles[fm.name] != values.get(fm.name):
                    born_here.append(fm.name)
        left_id, right_id = (rid, None) if source == "left" else (None, rid)
        key = self.tr.match_key(values)
        match: dict[str, Any] | None = None
        stamp = m.external_id.get(target)
        if stamp:  # the new record names its source: recovery finds exactly this one
            payload[stamp] = f"{m.side(source)}:{rid}"
            match = {"criteria": {stamp: payload[stamp]}, "key": None, "external": stamp}
        elif key is not None:
            criteria = self.tr.to_raw(target, {f: values[f] for f in m.match_on})
            criteria = {k: (v[m.fields[f].paths[target].index or 0] if isinstance(v, list) else v)
                        for (k, v), f in zip(criteria.items(), m.match_on, strict=True)}
            match = {"criteria": criteria, "key": list(key)}
        self.actions.append(Action(
            self._key("create", target, left_id, right_id), m.name, "create", target, side_ref.system,
            side_ref.entity, left_id=left_id, right_id=right_id, values=payload, settles=settles, match=match,
            changes={f: [None, v] for f, v in new.items()}))
        if born_here:
            self._update(None, source, {name: settles[name] for name in born_here}, values,
                         self.records[source][rid].data, left_id=left_id, right_id=right_id)


# -- one decision per field across mappings ------------------------------------------------

Node = tuple[str, str, str, str, int | None]  # system, entity, record id, key, list index: one stored value


@dataclass
class Decision:
    """What the mappings sharing a field decided for one link's field: the values written on it
    (side -> canonical value), the shadow it settles, or a conflict."""

    writes: dict[str, Any] = field(default_factory=dict)
    settle: Any = _MISSING
    conflict: bool = False


@dataclass(eq=False)
class _Edge:
    """One link's field: two stored values one mapping keeps equal."""

    planner: MappingPlanner
    link: Link
    fm: FieldMap
    nodes: dict[str, Node]

    def value(self, side: str) -> Any:
        return self.planner.canonical[side][self.link.id_of(side)].get(self.fm.name)

    def changed(self, side: str) -> bool:
        """Does SIDE hold other than it held after the last sync? (An empty value never synced is no edit.)"""
        base = self.link.base(side, self.fm.name)
        return self.value(side) is not None if base is _MISSING else self.value(side) != base

    def record(self, side: str) -> SideRecord:
        return self.planner.records[side][self.link.id_of(side)]


class _Joined:
    """Union-find: which things are joined, through any chain of pairs."""

    def __init__(self) -> None:
        self.parent: dict[Any, Any] = {}

    def find(self, x: Any) -> Any:
        while self.parent.setdefault(x, x) != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def join(self, a: Any, b: Any) -> None:
        self.parent[self.find(a)] = self.find(b)


def components(mappings: list[Mapping]) -> list[set[str]]:
    """Mapping names grouped by the entities they share (a star, chain or ring is one group)."""
    joined = _Joined()
    for m in mappings:
        joined.join(str(m.left), str(m.right))
    groups: dict[str, set[str]] = defaultdict(set)
    for m in mappings:
        groups[joined.find(str(m.left))].add(m.name)
    return list(groups.values())


def decide_across(planners: list[MappingPlanner]) -> int:
    """One decision per stored value for mappings that share an entity.

    The values their links tie together (vt1 lastname = Alfa name = vt2 lastname) form a class.
    Among the members changed since the last sync the field's policy picks one (``newest``: the
    latest edit time), and it travels along the links the directions allow to every member, each
    written once, by the mapping that reaches it first. Each mapping alone would see only its own
    two sides and write the hub twice, the older value perhaps last. A class within one mapping, or
    with a conflict waiting for a person or a reference not linked yet, is left to each mapping's
    own three-way diff. Returns how many members wait for a later hop (see :func:`_spread`)."""
    joined = _Joined()
    edges: list[_Edge] = []
    alone: list[Node] = []  # members of classes each mapping decides for itself
    for planner in planners:
        waiting = {(c.link_id, c.field) for c in planner.conflicts}
        refs = {side: planner.mapping.side(side) for side in SIDES}
        for link in planner.links:
            ids = {side: link.id_of(side) for side in SIDES}
            recs = [planner.records[side].get(ids[side]) for side in SIDES]
            if link.state != "active" or any(r is None or r.deleted for r in recs) \
                    or any(ids[side] not in planner.canonical[side] for side in SIDES):
                continue
            for fm in planner.mapping.synced_fields:
                if fm.template is not None or any(side not in fm.paths for side in SIDES):
                    continue
                edge = _Edge(planner, link, fm, {side: (refs[side].system, refs[side].entity, ids[side],
                                                        fm.paths[side].key, fm.paths[side].index) for side in SIDES})
                joined.join(edge.nodes["left"], edge.nodes["right"])
                if (link.id, fm.name) in waiting or any(isinstance(edge.value(s), Pending) for s in SIDES):
                    alone.append(edge.nodes["left"])
                else:
                    edges.append(edge)
    classes: dict[Node, list[_Edge]] = defaultdict(list)
    for edge in edges:
        classes[joined.find(edge.nodes["left"])].append(edge)
    left_alone = {joined.find(node) for node in alone}
    shared = [members for root, members in classes.items()
              if root not in left_alone and len({id(e.planner) for e in members}) > 1]
    precision = {(str(p.mapping.side(side)), p.tr.schemas[side].modified_precision) for p in planners for side in SIDES}
    carried = _carried(planners[0].mirror, [e for members in shared for e in members], dict(precision))
    return sum(_decide_class(members, carried) for members in shared)


def _carried(mirror: Mirror, edges: list[_Edge], precision: dict[str, int]) -> dict[Node, EditTime]:
    """The origin's edit time of each changed value a sync wrote there and the record still holds
    (vt1's edit at T1 that a sync copied to Alfa at Ts is T1 on Alfa too, not Ts), at the precision
    of the origin's clock (PRECISION: seconds per ``system:Entity``)."""
    wanted: dict[tuple[str, str], set[str]] = defaultdict(set)
    for e in edges:
        for side in SIDES:
            if e.changed(side):
                wanted[e.nodes[side][:2]].add(e.nodes[side][2])
    out: dict[Node, EditTime] = {}
    for (system, entity), ids in wanted.items():
        for (rid, path), origin in origin_times(mirror, system, entity, ids).items():
            parsed = Path_.parse(path)
            if parsed is not None:
                edited = naive(origin.edited_at)
                out[(system, entity, rid, parsed.key, parsed.index)] = EditTime(
                    edited, edited, precision.get(f"{origin.system}:{origin.entity}", 1))
    return out


def _decide_class(edges: list[_Edge], carried: dict[Node, EditTime]) -> int:
    """The writes of one class of values (see :func:`decide_across`); returns the members left to a later hop."""
    seen_as: dict[Node, tuple[_Edge, str]] = {}                  # a node, through one of its links
    flows: dict[Node, list[tuple[_Edge, str]]] = defaultdict(list)  # node -> (link, side it may write)
    for e in edges:
        for side in SIDES:
            seen_as.setdefault(e.nodes[side], (e, side))
            if e.fm.flows_to(other(side)):
                flows[e.nodes[side]].append((e, other(side)))
    changed = sorted({e.nodes[side] for e in edges for side in SIDES if e.changed(side)}, key=str)
    if not changed:
        return 0  # nothing edited: each mapping settles what its two sides agree on

    def value_of(node: Node) -> str:
        e, side = seen_as[node]
        return jsonutil.dumps(e.value(side))

    def time_of(node: Node) -> EditTime:
        if node in carried:
            return carried[node]
        e, side = seen_as[node]
        return e.planner.tr.edit_time(side, e.record(side).data, e.record(side).last_changed)

    reach = {c: _reach(c, flows) for c in changed}
    key = dict(zip(changed, edit_order([time_of(c) for c in changed]), strict=True))
    # a change downstream of a one-way link loses to the change upstream of it, as with two systems
    upstream = [c for c in changed if not any(c in reach[d] and d not in reach[c] for d in changed)] or changed
    winner = _winner(upstream, key, edges, value_of)
    if winner is None:  # for a person to decide, nothing written: a conflict on the links between the clashing
        differ = [e for e in edges if e.value("left") != e.value("right")]  # changes, else on each that differs
        between = [e for e in differ if all(node in changed for node in e.nodes.values())]
        for e in edges:
            e.planner.decided[(e.link.id, e.fm.name)] = Decision(conflict=e in (between or differ))
        return 0
    writes, waiting = _spread([winner, *sorted((c for c in changed if c != winner), key=key.__getitem__, reverse=True)],
                     flows, reach)
    written = {e.nodes[side] for e, values in writes.items() for side in values}
    for e in edges:
        decision = Decision(writes=writes.get(e, {}))
        value = e.value("left")
        if not decision.writes and not written & set(e.nodes.values()) and value == e.value("right"):
            shadow = e.link.shadow.get(e.fm.name, _MISSING)
            if shadow is _MISSING or shadow != value or e.link.diverges(e.fm.name):
                decision.settle = value
        e.planner.decided[(e.link.id, e.fm.name)] = decision  # a link whose other side another mapping
        # writes settles at the next plan (sync plans again at once)
    return waiting


def _reach(start: Node, flows: dict[Node, list[tuple[_Edge, str]]]) -> set[Node]:
    """The members a value at START may travel to."""
    found, queue = {start}, [start]
    while queue:
        for e, side in flows[queue.pop()]:
            if e.nodes[side] not in found:
                found.add(e.nodes[side])
                queue.append(e.nodes[side])
    return found


def _winner(pool: list[Node], key: dict[Node, Any], edges: list[_Edge], value_of: Any) -> Node | None:
    """The change that wins, or None for a person to decide. Two changes on one link's two sides:
    that field's policy, as with two systems. More, or further apart: the one change that no link's
    ``left``/``right`` policy makes lose, when every mapping names a side; the newest edit when every
    mapping says ``newest`` (a tie of two linked values: that link's ``tie_break``)."""
    best = max(pool, key=key.__getitem__)
    if len({value_of(n) for n in pool}) == 1:
        return best
    if len(pool) == 2 and (edge := _between(pool, edges)) is not None:
        policy = edge.fm.conflict
        if policy == "newest":
            left, right = key[edge.nodes["left"]], key[edge.nodes["right"]]
            policy = "left" if left > right else "right" if right > left else edge.fm.tie_break
        return None if policy == "manual" else edge.nodes[policy]
    if all(e.fm.conflict in SIDES for e in edges):  # e.g. the hub wins: the one change no link's policy beats
        beaten = {e.nodes[other(e.fm.conflict)] for e in edges if set(e.nodes.values()) <= set(pool)}
        unbeaten = [n for n in pool if n not in beaten]
        return unbeaten[0] if len(unbeaten) == 1 else None
    if any(e.fm.conflict != "newest" for e in edges):
        return None
    top = [n for n in pool if key[n] == key[best]]
    if len({value_of(n) for n in top}) == 1:
        return best
    edge = _between(top, edges) if len(top) == 2 else None
    return edge.nodes[edge.fm.tie_break] if edge is not None and edge.fm.tie_break != "manual" else None


def _between(pair: list[Node], edges: list[_Edge]) -> _Edge | None:
    return next((e for e in edges if set(e.nodes.values()) == set(pair)), None)


def _spread(origins: list[Node], flows: dict[Node, list[tuple[_Edge, str]]],
            reach: dict[Node, set[Node]]) -> tuple[dict[_Edge, dict[str, Any]], int]:
    """The writes (link -> side -> canonical value) that carry each origin's value, in turn, to the
    members it reaches and no earlier origin does. One hop per plan: a value goes on past a member
    that already holds it, not past one this plan writes — the next plan (``sync`` makes it at once)
    carries it from there, when the mirror knows where that member's new value came from. Also
    returns how many members it reaches only later (some may hold the value already)."""
    writes: dict[_Edge, dict[str, Any]] = defaultdict(dict)
    claimed: set[Node] = set()
    waiting = 0
    for origin in origins:
        if origin in claimed:
            continue
        mine = reach[origin] - claimed
        claimed |= mine
        visited, queue = {origin}, [origin]
        while queue:
            node = queue.pop(0)
            for e, side in flows[node]:
                target = e.nodes[side]
                if target in visited or target not in mine:
                    continue
                visited.add(target)
                if e.value(other(side)) == e.value(side):
                    queue.append(target)
                elif e.changed(other(side)) or e.changed(side):
                    writes[e][side] = e.value(other(side))
                # else each side holds what it held after the last sync on this link (one stores
                # less than it was sent): nothing to carry, as with two systems

        waiting += len(mine - visited)
    return writes, waiting
