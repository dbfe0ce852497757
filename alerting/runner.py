"""The async shell around the escalation machine: feeds it incident events and timers.

It owns one :class:`~alerting.escalation.EscalationState` per open incident, decides mutes
(silences, inhibition) with the pure functions, executes the commands (``emit`` each
notification, ``record`` each timeline entry) and sleeps on the injected clock until the
earliest wake. After every change it hands its JSON state to ``persist``; built again with
that state, it resumes each incident at the same level and wakes at the same time. After every
step that changed an escalation (timer-driven ones too) it calls ``on_step``, so a view (the
wall) can show the level reached without waiting for the next incident event.

Ordering for "never lose a page": notifications are emitted (``emit`` must make them durable,
e.g. into the outbox) *before* the new state is persisted. A crash in between replays the same
step on restart, which makes the same notification ids, which the outbox deduplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from alerting.escalation import (
    Acknowledge,
    Command,
    EscalationEvent,
    EscalationState,
    Log,
    Notify,
    Plan,
    Resolve,
    Trigger,
    Update,
    Wake,
    step,
)
from alerting.incidents import TRIGGERING, Incident, IncidentEvent, match_labels
from alerting.inhibition import InhibitRule, Mute, may_inhibit, mute_of
from alerting.notification import Notification
from alerting.severity import label
from alerting.silences import Silence, SilenceBook, SilenceError
from monitor.clock import Clock
from monitor.config.alerting import AlertingConfig
from monitor.decode import format_time

Emit = Callable[[Notification], Awaitable[None]]
# told after every change; it reads `to_state()` itself when it saves (building the state of
# every escalation for a save the caller defers was O(n) per event in a burst; QA)
Persist = Callable[[], Awaitable[None]]
Record = Callable[[str, str, dict[str, Any], float], None]
OnStep = Callable[[str, EscalationState], None]  # (incident id, its escalation after the step)

log = logging.getLogger(__name__)

_CONFIG_ID = re.compile(r"config-\d+")  # the id an unnamed config silence gets
RETRY_SECONDS = 30.0  # after a failed escalation step (emit failed), try again this much later


class EscalationRunner:
    """Drive escalations for all incidents. One instance per process; not thread-safe."""

    def __init__(
        self,
        config: AlertingConfig,
        clock: Clock,
        emit: Emit,
        *,
        persist: Persist | None = None,
        record: Record | None = None,
        silences: SilenceBook | None = None,
        state: Mapping[str, Any] | None = None,
        registry: CollectorRegistry | None = None,
        on_step: OnStep | None = None,
    ) -> None:
        self.config = config
        self._escalations = (
            None
            if registry is None
            else Counter(
                "crisiswatch_escalations",
                "Escalation levels paged, by policy and level (1 = first).",
                ["policy", "level"],
                registry=registry,
            )
        )
        self._nobody = (
            None
            if registry is None
            else Counter(
                "crisiswatch_escalation_nobody_reachable",
                "Passes over every level of a policy that paged nobody (quiet hours, no"
                " receivers, unstaffed schedules), by policy and incident severity.",
                ["policy", "severity"],
                registry=registry,
            )
        )
        self.clock = clock
        self.plan = Plan.from_config(config)
        if self._nobody is not None:
            # At 0 from the start: a rule's increase() cannot see a series' first sample.
            for name in self.plan.policies:
                for sev in range(1, 5):
                    self._nobody.labels(name, label(sev))
        #: Called after every step that changed an escalation (may be set after construction).
        self.on_step = on_step
        self.rules = [InhibitRule.from_config(r) for r in config.inhibit_rules]
        self.silences = (
            silences if silences is not None else SilenceBook.from_config(config.silences)
        )
        # Config silences belong to the config: a restart takes them from there, never from a
        # saved copy (ids ``config-<index>`` move when one is inserted, and edits must apply).
        self._config_silences = {s.id: s for s in SilenceBook.from_config(config.silences).all()}
        self._config_expired: dict[str, float] = {}  # expired through the API, at
        self._emit = emit
        self._persist = persist
        self._record = record
        self._states: dict[str, EscalationState] = {}
        self._open: dict[str, dict[str, Any]] = {}  # latest snapshot of every open incident
        self._restart: set[str] = set()  # restored escalations whose policy left the config
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._retry_at: float | None = None  # due steps failed: not before then
        self._failing_told: set[str] = set()  # incidents whose failing step was logged
        if state:
            self._restore(state)

    # --- inputs ------------------------------------------------------------------------------
    async def handle(self, event: IncidentEvent) -> None:
        """Feed one :class:`IncidentEvent` from the book.

        Raises only when the event's own step failed (``emit`` raised; persisting aside): the
        escalation is then as it was, and the same event may be fed again later.
        """
        async with self._lock:
            inc = event.incident.to_dict()
            iid = inc["id"]
            now = self.clock.now()
            if inc["state"] == "resolved":
                self._open.pop(iid, None)
                if iid in self._states:  # who resolved it, should emitting the resolve fail
                    self._states[iid] = replace(self._states[iid], incident=inc)
            else:
                self._open[iid] = inc
            ev = self._translate(event.kind, inc, event.who, now)
            if ev is not None:
                await self._step(iid, ev, now)
            if event.kind == "resolved":
                self._states.pop(iid, None)
                self._failing_told.discard(iid)
                await self._recheck(now, muted_only=True)  # an inhibiting SEV1 may have gone
            elif event.kind in ("opened", "repaged"):
                await self._recheck_under(iid, now)  # it may inhibit others
            if not isinstance(ev, Update):
                # A fresher snapshot alone is not worth a write: the book holds it anyway.
                await self._save()
        self._changed.set()

    async def resume(self, incidents: Iterable[Incident]) -> None:
        """At start-up: every triggered incident without an escalation starts one (a page
        owed before a crash is still owed); snapshots of the others are refreshed.

        Pass every incident of the book, resolved ones too. The book may be a step ahead of
        the escalations (a timer saved both while a book change was on its way here, then the
        process died): an escalation that missed a re-trigger starts again, one that missed an
        acknowledgement or a resolve stops and tells the people it paged.
        """
        async with self._lock:
            now = self.clock.now()
            known: set[str] = set()
            for inc in incidents:
                known.add(inc.id)
                d = inc.to_dict()
                st = self._states.get(inc.id)
                if not inc.is_open:
                    self._open.pop(inc.id, None)
                    if st is not None:
                        await self._step(inc.id, Resolve(d, inc.resolved_by), now)
                        self._states.pop(inc.id, None)
                    continue
                self._open[inc.id] = d
                if inc.state == "triggered":
                    if (
                        st is None
                        or inc.id in self._restart
                        or st.status == "acknowledged"
                        or inc.triggered_at > float(st.incident.get("triggered_at", 0.0))
                    ):
                        await self._step(inc.id, Trigger(d, "resumed", self._mute(d, now)), now)
                elif st is not None and (st.active or inc.id in self._restart):
                    await self._step(inc.id, Acknowledge(d, inc.acked_by), now)
            for iid in [i for i in self._states if i not in known]:
                # Resolved and pruned from the book (or the book was lost): nobody could ever
                # acknowledge it, so it would page (or sit in the state) forever.
                await self._close(iid, now, "is not in the incident book")
            self._open = {k: v for k, v in self._open.items() if k in known}
            self._restart.clear()
            await self._save()
        self._changed.set()

    async def add_silence(self, silence: Silence) -> None:
        async with self._lock:
            self.silences.add(silence)
            await self._recheck(self.clock.now(), muted_only=False)
            await self._save()
        self._changed.set()

    async def expire_silence(self, silence_id: str) -> Silence:
        async with self._lock:
            s = self.silences.expire(silence_id, self.clock.now())
            configured = self._config_silences.get(silence_id)
            if configured is not None and s.end < configured.end:
                self._config_expired[silence_id] = s.end
            await self._recheck(self.clock.now(), muted_only=True)
            await self._save()
        self._changed.set()
        return s

    async def prune_silences(self) -> int:
        """Forget silences that ended more than a week ago (saved when any went)."""
        async with self._lock:
            gone = self.silences.prune(self.clock.now())
            if gone:
                await self._save()
        return gone

    # --- time --------------------------------------------------------------------------------
    def next_wake(self) -> float | None:
        times = [s.wake_at for s in self._states.values() if s.active and s.wake_at is not None]
        if not times:
            return None
        # After a failed step (say the outbox's store is down) the due ones wait a little
        # instead of being retried in a tight loop.
        return max(min(times), self._retry_at or 0.0)

    async def wake_due(self) -> int:
        """Step every escalation whose wake time has come; returns how many woke."""
        async with self._lock:
            now = self.clock.now()
            due = [
                iid
                for iid, s in sorted(self._states.items(), key=lambda kv: kv[1].wake_at or 0.0)
                if s.active and s.wake_at is not None and s.wake_at <= now
            ]
            failed = 0
            for iid in due:
                if not await self._try_wake(iid, now):
                    failed += 1  # its state did not move, so it is due again: the next retry
            self._retry_at = now + RETRY_SECONDS if failed else None
            if due:
                await self._save()
        return len(due)

    @property
    def failing(self) -> bool:
        """Due steps failed (the store) and wait for their retry: pages are owed."""
        return self._retry_at is not None

    async def run(self) -> None:
        """Sleep on the clock until the next wake (or until an input changes it); forever."""
        while True:
            self._changed.clear()
            try:
                await self.wake_due()
            except Exception:  # e.g. persisting failed: the timers must go on regardless
                log.exception("escalation timers: waking failed; retried")
                self._retry_at = self.clock.now() + RETRY_SECONDS
            nxt = self.next_wake()
            if nxt is not None and nxt <= self.clock.now():
                continue
            waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._changed.wait())]
            if nxt is not None:
                waiters.append(asyncio.ensure_future(self.clock.sleep(nxt - self.clock.now())))
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await w

    # --- views -------------------------------------------------------------------------------
    def escalation(self, incident_id: str) -> EscalationState | None:
        return self._states.get(incident_id)

    def to_state(self) -> dict[str, Any]:
        return {
            "escalations": [s.to_dict() for s in self._states.values()],
            "open": list(self._open.values()),
            "silences": self.silences.to_state(),
            # what each config silence was when saved, so an API expiry outlives a restart
            # only while the config still says the same thing
            "config_silences": {
                sid: {"silence": c.to_dict(), "expired_at": self._config_expired.get(sid)}
                for sid, c in self._config_silences.items()
            },
        }

    # --- internals ---------------------------------------------------------------------------
    def _restore(self, state: Mapping[str, Any]) -> None:
        for d in state.get("escalations", []):
            s = EscalationState.from_dict(d, self.plan)
            if s.active and s.policy not in self.plan.policies:
                # Its policy left the config: it cannot go on, and resume() restarts it. Kept
                # (stopped) for its notification counter and who was paged: a restart from a
                # fresh state would re-make ids the outbox already holds and drops, and the
                # people paged before would never hear the acknowledgement.
                s = replace(s, status="exhausted", wake_at=None, mute=None)
                self._restart.add(s.incident_id)
                log.warning(
                    "incident %s: policy %r is no longer configured; it pages again from"
                    " level 1 of the policy its route gives now", s.incident_id, s.policy,
                )  # fmt: skip
            self._states[s.incident_id] = s
        self._open = {str(d["id"]): dict(d) for d in state.get("open", [])}
        self._restore_silences(state)

    def _restore_silences(self, state: Mapping[str, Any]) -> None:
        """Run-time silences come back from the state; config silences from the config, with
        an API expiry kept only if the config silence is unchanged since."""
        saved_config: Mapping[str, Any] = state.get("config_silences") or {}
        owned = set(self._config_silences) | set(saved_config)
        if "config_silences" not in state:  # saved before config silences were told apart
            ids = (str(d["id"]) for d in state.get("silences", []))
            owned |= {i for i in ids if _CONFIG_ID.fullmatch(i)}
        for d in state.get("silences", []):
            if str(d["id"]) not in owned:
                self.silences.add(Silence.from_dict(d))
        for sid, entry in saved_config.items():
            configured, at = self._config_silences.get(sid), entry.get("expired_at")
            if configured is None or at is None or entry.get("silence") != configured.to_dict():
                continue
            with contextlib.suppress(SilenceError):  # an injected book may not hold it
                self.silences.expire(sid, float(at))
                self._config_expired[sid] = float(at)

    def _mute(self, incident: Mapping[str, Any], now: float) -> Mute | None:
        return mute_of(incident, self._open.values(), self.silences, self.rules, now)

    def _translate(
        self, kind: str, inc: dict[str, Any], who: str | None, now: float
    ) -> EscalationEvent | None:
        iid = inc["id"]
        if kind in TRIGGERING:
            return Trigger(inc, kind, self._mute(inc, now))
        if kind in ("acknowledged", "snoozed"):
            return Acknowledge(inc, who) if iid in self._states else None
        if kind == "resolved":
            return Resolve(inc, who) if iid in self._states else None
        if iid not in self._states:
            # An update for a triggered incident we have no escalation for (state lost):
            # start one rather than stay silent.
            return (
                Trigger(inc, "resumed", self._mute(inc, now))
                if inc["state"] == "triggered"
                else None
            )
        return Update(inc)

    async def _step(self, iid: str, event: EscalationEvent, now: float) -> None:
        state = self._states.get(iid) or EscalationState.new(iid, self.plan)
        new, commands = step(state, event, now)
        await self._execute(commands, now, new)
        self._states[iid] = new
        # only a step that wrote to the outbox says the store takes writes again: a score
        # update (no page) "went through" between every failed retry on a read-only store
        if iid in self._failing_told and any(isinstance(c, Notify) for c in commands):
            self._failing_told.discard(iid)
            log.info("incident %s: escalation steps go through again", iid)
        if self.on_step is not None and new != state:  # (a new snapshot alone is not a change)
            try:
                self.on_step(iid, new)
            except Exception:  # a view must never stop the paging
                log.exception("incident %s: on_step failed", iid)

    async def _wake(self, iid: str, now: float) -> None:
        """Step one escalation on its timer, or finish what a failed emit left undone."""
        inc = self._open.get(iid)
        if inc is None:  # resolved, but emitting its resolve failed
            await self._close(iid, now, "is no longer open")
        elif inc["state"] != "triggered":  # acknowledged, but emitting that failed
            await self._step(iid, Acknowledge(inc, inc.get("acked_by")), now)
        else:
            await self._step(iid, Wake(self._mute(inc, now)), now)

    async def _close(self, iid: str, now: float, why: str) -> None:
        """Stop the escalation of an incident that is closed though the runner was not told
        (or could not finish): whoever it paged hears the resolve, then it is forgotten."""
        st = self._states[iid]
        if st.status != "resolved":
            log.warning("incident %s %s: its escalation stops (was %s)", iid, why, st.status)
            closed = {**st.incident, "state": "resolved"}
            await self._step(iid, Resolve(closed, closed.get("resolved_by")), now)
        self._states.pop(iid, None)
        self._failing_told.discard(iid)  # forgotten with its escalation

    async def _execute(self, commands: list[Command], now: float, state: EscalationState) -> None:
        # Every notification first: if one cannot be emitted the step is retried later, and
        # its timeline entries and counts must then appear once, not once per attempt.
        for c in commands:
            if isinstance(c, Notify):
                await self._emit(c.notification)
        for c in commands:
            if isinstance(c, Log):
                if self._record is not None:
                    self._record(c.incident_id, c.event, c.detail, now)
                _warn_unreachable(c)
                if self._escalations is not None and c.event.endswith(" paged"):
                    self._escalations.labels(state.policy, str(c.detail.get("level", ""))).inc()
                if self._nobody is not None and c.event == "nobody reachable":
                    severity = label(int(state.incident.get("severity", 4)))
                    self._nobody.labels(state.policy, severity).inc()

    async def _recheck(self, now: float, *, muted_only: bool) -> None:
        """Re-decide mutes now instead of at the next wake (a wake not yet due pages nobody)."""
        for iid, s in list(self._states.items()):
            if not s.active or (muted_only and s.status != "muted"):
                continue
            inc = self._open.get(iid)
            if inc is None or s.status == "muted" or self._mute(inc, now) is not None:
                await self._try_wake(iid, now)  # failed, it keeps its wake time: the timer

    async def _recheck_under(self, iid: str, now: float) -> None:
        """After `iid` opened or re-paged: wake the escalations it may now mute, only those.
        Every open one was re-decided, each against every other (a burst of n openings cost
        n^3 label matches: 2,000 topics froze detection for minutes; QA). An opening lifts no
        mute, so muted ones are left to their own recheck."""
        src = self._open.get(iid)
        if src is None or not self.rules:
            return
        labels = match_labels(src)
        for other, s in list(self._states.items()):
            inc = self._open.get(other)
            if other == iid or not s.active or s.status == "muted" or inc is None:
                continue
            if may_inhibit(labels, match_labels(inc), self.rules) and self._mute(inc, now):
                await self._try_wake(other, now)

    async def _try_wake(self, iid: str, now: float) -> bool:
        """Wake one escalation; False when its step failed (the store). Told once per outage
        of that incident, and when it goes through again: every 30 s, and at every mute
        recheck, a traceback filled the log on a full disk."""
        try:
            await self._wake(iid, now)
        except Exception:
            if iid not in self._failing_told:  # cleared by the next step that goes through
                self._failing_told.add(iid)
                log.exception("incident %s: escalation step failed; retried", iid)
            return False
        return True

    async def _save(self) -> None:
        if self._persist is not None:
            await self._persist()


def _warn_unreachable(entry: Log) -> None:
    """A page that reached nobody is on the timeline; it must be in the service log too."""
    d = entry.detail
    if entry.event == "nobody reachable":
        log.warning(
            "incident %s: nobody reachable at any level of the policy, trying again at %s",
            entry.incident_id, format_time(d["retry_at"]),
        )  # fmt: skip
    if d.get("no_receiver"):
        log.warning(
            "incident %s: %s: users %s have no receivers (nor alerting.default_receivers)",
            entry.incident_id, entry.event, ", ".join(map(str, d["no_receiver"])),
        )  # fmt: skip
