"""The persisted outbox: every notification is stored before it is sent, then retried with
exponential backoff and jitter until a receiver accepts it or it expires.

Pure core (values in, values out): :func:`backoff`, :func:`next_step`, :func:`heads`,
:func:`superseded`.
Async shell: :class:`Outbox` (store + notifiers + clock).

Guarantees

* **At least once.** A row is marked delivered only after the receiver accepted it; a crash
  (kill -9 included) between send and mark re-sends it after restart. ``Notification.id`` is the
  idempotency key: enqueueing an existing id is a no-op, and receivers see it again on a resend
  (PagerDuty/Alertmanager dedupe by ``dedup_key``, webhooks get ``X-Crisiswatch-Id``, mail a
  stable ``Message-ID``).
* **In order per (receiver, dedup_key)**, and per recipient too where each message is its own
  (a notifier with ``per_recipient = True``: e-mail, Slack, log), so one greylisted address does
  not hold back the next level's page. Only the oldest pending row of a group is sent, so a
  resolve never overtakes the trigger it resolves, even while the trigger backs off, and
  whatever the backlog: a scan reads a prefix of every receiver's queue in creation order,
  so the oldest row of each group it sees is in it (rows beyond wait their turn).
* **No page after the fact.** A trigger still pending when a newer acknowledge or resolve of
  its group is queued (the receiver was down, or backing off, while someone acked on the wall)
  is not sent: it is marked ``superseded`` and the acknowledge or resolve goes out alone.
  Sent late, it rang the on-call for an incident already in hand.
* **Retries read only** ``DeliveryError.recoverable`` (429/5xx/connection errors), never text.
* **Alertmanager stays firing**: a receiver whose notifier has ``repeat_seconds`` gets the last
  trigger/acknowledge of a group re-sent at that interval until a resolve is delivered or given
  up on (or the receiver leaves the config); that state lives in the store (key
  ``outbox.repeat``), so it survives restarts too.

>>> p = RetryPolicy(base=2.0, cap=60.0, expire=3600.0)
>>> [backoff(a, p, 1.0) for a in (1, 2, 3, 10)]
[2.0, 4.0, 8.0, 60.0]
>>> [backoff(a, p, 0.0) for a in (1, 2, 3, 10)]
[1.0, 2.0, 4.0, 30.0]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from prometheus_client import CollectorRegistry

from alerting.links import LinkSigner
from alerting.metrics import DeliveryMetrics
from alerting.notification import Notification
from alerting.notifiers.base import Notifier, RetryLater
from monitor.clock import Clock
from monitor.config.receivers import OutboxConfig
from monitor.errors import DeliveryError
from monitor.outage import Outage
from monitor.storage.base import OutboxRow, Store

log = logging.getLogger(__name__)

REPEAT_KEY = "outbox.repeat"
# Rows read per receiver and scan: its oldest, so every group head among them (see
# Store.outbox_oldest); a longer queue waits its turn behind them, in order.
_SCAN_LIMIT = 500


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base: float = 2.0
    cap: float = 300.0
    expire: float = 6 * 3600.0

    @classmethod
    def of(cls, cfg: OutboxConfig) -> RetryPolicy:
        return cls(cfg.base_delay_seconds, cfg.max_delay_seconds, cfg.expire_seconds)


@dataclass(frozen=True, slots=True)
class Retry:
    due_at: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    state: str  # failed | expired


def backoff(attempt: int, policy: RetryPolicy, u: float) -> float:
    """Delay before retry number `attempt` (1-based): "equal jitter" exponential backoff.

    Half the exponential step is fixed, half is random (`u` in [0, 1]), so retries from many
    notifications spread out but none comes back sooner than half the step.
    """
    step = min(policy.cap, policy.base * 2.0 ** min(attempt - 1, 60))
    return step / 2.0 + u * step / 2.0


def next_step(
    *,
    attempts: int,
    now: float,
    expires_at: float,
    recoverable: bool,
    policy: RetryPolicy,
    u: float,
    retry_after: float | None = None,
) -> Retry | GiveUp:
    """What to do after failed attempt number `attempts`.

    >>> p = RetryPolicy(base=2.0, cap=60.0)
    >>> next_step(attempts=1, now=0, expires_at=100, recoverable=True, policy=p, u=1.0)
    Retry(due_at=2.0)
    >>> next_step(attempts=1, now=0, expires_at=100, recoverable=True, policy=p, u=1.0,
    ...           retry_after=30)
    Retry(due_at=30.0)
    >>> next_step(attempts=1, now=0, expires_at=100, recoverable=True, policy=p, u=1.0,
    ...           retry_after=86400)
    Retry(due_at=60.0)
    >>> next_step(attempts=9, now=90, expires_at=100, recoverable=True, policy=p, u=1.0)
    GiveUp(state='expired')
    >>> next_step(attempts=1, now=0, expires_at=100, recoverable=False, policy=p, u=1.0)
    GiveUp(state='failed')
    """
    if not recoverable:
        return GiveUp("failed")
    # A receiver's Retry-After is a floor, but no longer than our longest backoff: a pause
    # asked for past the expiry would otherwise give the page up at once, unsent.
    delay = max(backoff(attempts, policy, u), min(retry_after or 0.0, policy.cap))
    due = now + delay
    if due >= expires_at:
        return GiveUp("expired")
    return Retry(float(due))


def group_of(row: OutboxRow, per_recipient: Container[str] = ()) -> tuple[str, str]:
    r"""Rows of one group are delivered strictly in creation order: those of one incident at one
    receiver, split by recipient for the receivers in `per_recipient` (their messages to
    different people do not depend on each other).

    >>> row = OutboxRow("i", "mail", {"dedup_key": "k", "recipient": "ana"}, 0, 0, 1, 0, "", None)
    >>> group_of(row), group_of(row, {"mail"})
    (('mail', 'k'), ('mail', 'k\x00ana'))
    """
    key = str(row.payload.get("dedup_key", row.id))
    recipient = row.payload.get("recipient")
    if recipient and row.receiver in per_recipient:
        key += f"\x00{recipient}"
    return (row.receiver, key)


def heads(
    rows: Iterable[OutboxRow],
    now: float,
    busy: set[tuple[str, str]],
    per_recipient: Container[str] = (),
) -> list[OutboxRow]:
    """The rows to attempt now: the oldest pending row of each idle group, if it is due.

    >>> def r(i, c, d, k="k"):
    ...     return OutboxRow(i, "r", {"dedup_key": k}, c, d, 1e9, 0, "pending", None)
    >>> [x.id for x in heads([r("b", 2, 0), r("a", 1, 50), r("c", 3, 0, "other")], 10, set())]
    ['c']
    >>> [x.id for x in heads([r("b", 2, 0), r("a", 1, 5)], 10, set())]
    ['a']
    >>> heads([r("a", 1, 5)], 10, {("r", "k")})
    []
    """
    first: dict[tuple[str, str], OutboxRow] = {}
    for row in sorted(rows, key=lambda r: (r.created_at, r.id)):
        first.setdefault(group_of(row, per_recipient), row)
    return sorted(
        (r for g, r in first.items() if g not in busy and r.due_at <= now),
        key=lambda r: (r.due_at, r.created_at),
    )


def superseded(rows: Iterable[OutboxRow], per_recipient: Container[str] = ()) -> dict[str, str]:
    """Pending triggers that a newer acknowledge or resolve of their group makes moot: their
    id -> the action that did. A trigger queued after the acknowledge (a re-page) stays.

    >>> def r(i, action, c):
    ...     return OutboxRow(i, "pd", {"dedup_key": "k", "action": action}, c, 0, 1e9, 0, "", None)
    >>> superseded([r("t1", "trigger", 1), r("a", "acknowledge", 2), r("t2", "trigger", 3)])
    {'t1': 'acknowledge'}
    >>> superseded([r("t1", "trigger", 1), r("z", "resolve", 2)])
    {'t1': 'resolve'}
    >>> superseded([r("a", "acknowledge", 1), r("t2", "trigger", 2)])
    {}
    """
    newer: dict[tuple[str, str], str] = {}
    out: dict[str, str] = {}
    for row in sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True):
        group, action = group_of(row, per_recipient), str(row.payload.get("action"))
        if action in ("acknowledge", "resolve"):
            newer.setdefault(group, action)
        elif action == "trigger" and group in newer:
            out[row.id] = newer[group]
    return out


def to_payload(n: Notification) -> dict[str, Any]:
    return asdict(n)


def from_payload(p: Mapping[str, Any]) -> Notification:
    return Notification(
        id=p["id"],
        receiver=p["receiver"],
        action=p["action"],
        dedup_key=p["dedup_key"],
        incident=dict(p["incident"]),
        created_at=float(p["created_at"]),
        recipient=p.get("recipient"),
        links=dict(p.get("links") or {}),
        reopen=bool(p.get("reopen", False)),
    )


@dataclass(frozen=True, slots=True)
class _Outcome:
    state: str
    attempts: int
    due_at: float
    last_error: str | None


@dataclass(slots=True)
class _ReceiverHealth:
    consecutive_failures: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    last_success_at: float | None = None
    outage: Outage = field(default_factory=Outage)  # how loud its failed attempts are


PRUNE_EVERY = 3600.0  # seconds between prunes of finished rows


class Outbox:
    """Async shell around the store: persist on :meth:`enqueue`, deliver in :meth:`run`."""

    def __init__(
        self,
        store: Store,
        notifiers: Mapping[str, Notifier],
        clock: Clock,
        registry: CollectorRegistry,
        *,
        config: OutboxConfig | None = None,
        links: LinkSigner | None = None,
        rng: random.Random | None = None,
    ) -> None:
        cfg = config or OutboxConfig()
        self._store, self._notifiers, self._clock = store, notifiers, clock
        self._per_recipient = {
            k for k, n in notifiers.items() if getattr(n, "per_recipient", False)
        }
        self._policy = RetryPolicy.of(cfg)
        self._poll, self._links = cfg.poll_seconds, links
        self._rng = rng or random.Random()
        # per receiver: one shared limit let receivers that hang (a black-holed webhook) hold
        # every slot until their timeouts, and the pager waited 10 s (QA, twelfth session)
        self._concurrency = cfg.concurrency
        self._sems: dict[str, asyncio.Semaphore] = {}
        self.metrics = DeliveryMetrics(registry)
        for name in notifiers:  # at 0 from the start: an alert rule's increase() sees the first
            for reason in ("failed", "expired"):
                self.metrics.given_up.labels(receiver=name, reason=reason)
            self.metrics.superseded.labels(receiver=name)
        self._wake = asyncio.Event()
        self._in_flight: dict[str, tuple[tuple[str, str], asyncio.Task[None]]] = {}
        self._finished: set[str] = set()  # attempts ended since this pass's scan began
        # outcomes the store could not record (disk full, database read-only): held here and
        # written again every pass, so a delivered page is not sent again meanwhile (a full
        # disk re-sent one page 3,200 times in 20 s) and a failed one waits out its backoff
        self._unrecorded: dict[str, _Outcome] = {}
        self._repeat: dict[str, dict[str, Any]] | None = None  # loaded lazily from the store
        self._receivers: dict[str, _ReceiverHealth] = {}
        self._pending = 0
        self._oldest_created: float | None = None
        self._counts = {
            "delivered": 0, "retried": 0, "failed": 0, "expired": 0, "superseded": 0
        }  # fmt: skip
        self._last_scan: float | None = None
        self._store_error: str | None = None
        self._keep = cfg.keep_seconds
        self._last_prune: float | None = None
        # read at each scrape: set by a scan, it stood still when the scans failed or the loop
        # stopped, and the stuck-outbox alert watching it never fired (QA)
        self.metrics.oldest_pending.set_function(self._oldest_age)

    # ---- producer side -------------------------------------------------------------------

    async def enqueue(self, n: Notification) -> None:
        """Persist `n` (idempotent by id); it is durable when this returns."""
        now = self._clock.now()
        if self._links is not None:
            n = self._links.decorate(n, now)
        row = OutboxRow(
            id=n.id,
            receiver=n.receiver,
            payload=to_payload(n),
            created_at=now,
            due_at=now,
            expires_at=now + self._policy.expire,
            attempts=0,
            state="pending",
            last_error=None,
        )
        await self._store.outbox_enqueue(row)
        if self._oldest_created is None:  # the oldest until the next scan says otherwise
            self._oldest_created = now
        self.metrics.enqueued.labels(receiver=n.receiver, action=n.action).inc()
        self._wake.set()

    # ---- delivery loop -------------------------------------------------------------------

    async def run(self) -> None:
        """Deliver until cancelled. Pending rows left by a previous process are picked up first."""
        try:
            while True:
                self._wake.clear()
                try:
                    wait = await self._dispatch()
                    await self._prune()
                    if self._store_error is not None:
                        log.info("outbox scans work again (after %s)", self._store_error)
                    self._store_error = None
                except Exception as exc:  # store hiccup: keep the loop, report it, try again
                    # the traceback once per outage: a damaged table logged one every second
                    # of service time (QA, thirteenth session); /healthz names it meanwhile
                    if self._store_error is None:
                        log.exception("outbox scan failed; retried every second")
                    self._store_error = f"{type(exc).__name__}: {str(exc)[:200]}"
                    wait = max(self._poll, 1.0)
                waiter = asyncio.ensure_future(self._wake.wait())
                sleeper = asyncio.ensure_future(self._clock.sleep(wait))
                try:
                    await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                    sleeper.cancel()
        finally:
            # Rows in flight stay pending in the store and are sent again after a restart.
            tasks = [t for _, t in self._in_flight.values()]
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(BaseException):
                    await t

    async def _prune(self) -> None:
        """Drop finished rows older than `keep_seconds`, at most once an hour."""
        now = self._clock.now()
        if self._last_prune is not None and now - self._last_prune < PRUNE_EVERY:
            return
        self._last_prune = now
        removed = await self._store.outbox_prune(now - self._keep)
        if removed:
            log.info("outbox: pruned %d finished notifications", removed)

    async def tick(self) -> int:
        """One pass: attempt every row that is due now and wait for the outcomes.

        For tests on a fake clock and for draining at shutdown; returns the attempts made.
        """
        before = set(self._in_flight)
        await self._dispatch()
        started = [t for i, (_, t) in list(self._in_flight.items()) if i not in before]
        if started:
            await asyncio.gather(*started)
        return len(started)

    async def _dispatch(self) -> float:
        """Start attempts for due group heads; return seconds until something is due."""
        now = self._clock.now()
        # an attempt that ends while this pass awaits (the scan, the store writes below) leaves
        # its scanned row stale: still "pending" here, delivered in the store. Not started again
        # (it went out twice, 3-4 of 20 under a real webhook); the next pass rescans it.
        self._finished.clear()
        await self._record_held()
        rows, full = await self._scan()
        rows = self._with_held(rows)
        await self._observe(rows, full, now)
        rows = await self._expire(rows, now)
        rows = await self._supersede(rows)
        if await self._repeat_due(rows, full, now):
            rows, full = await self._scan()
            rows = self._with_held(rows)
        busy = {g for g, _ in self._in_flight.values()}
        for row in heads(rows, now, busy, self._per_recipient):
            if row.id in self._in_flight or row.id in self._finished:
                continue
            task = asyncio.create_task(self._attempt(row), name=f"outbox:{row.id}")
            self._in_flight[row.id] = (group_of(row, self._per_recipient), task)
        wait = self._poll
        future = [r.due_at - now for r in rows if r.due_at > now and r.id not in self._in_flight]
        if self._repeat:
            # one still due here was held back by a busy alert: the end of what holds it wakes
            # the loop (or the poll does); counting it would make the wait 0, a hot loop
            future += [t - now for e in self._repeat.values() if (t := float(e["next_at"])) > now]
        if future:
            wait = min(wait, max(0.0, min(future)))
        return wait

    async def _scan(self) -> tuple[list[OutboxRow], set[str]]:
        """The oldest pending rows of every receiver, and the receivers with more than those."""
        limit = _SCAN_LIMIT
        rows = await self._store.outbox_oldest(limit)
        per: dict[str, int] = {}
        for r in rows:
            per[r.receiver] = per.get(r.receiver, 0) + 1
        return rows, {name for name, n in per.items() if n >= limit}

    async def _expire(self, rows: list[OutboxRow], now: float) -> list[OutboxRow]:
        live = []
        for r in rows:
            if r.expires_at <= now and r.id not in self._in_flight and r.id not in self._finished:
                await self._store.outbox_update(
                    r.id, state="expired", attempts=r.attempts, due_at=r.due_at,
                    last_error=r.last_error or "expired before first attempt",
                )  # fmt: skip
                self._gave_up(r, "expired")
                if r.payload.get("action") == "resolve":
                    # as when a resolve's last retry gives up: stop re-firing a closed alert
                    await self._stop_repeat(r.receiver, str(r.payload.get("dedup_key")))
            else:
                live.append(r)
        return live

    async def _supersede(self, rows: list[OutboxRow]) -> list[OutboxRow]:
        """Mark the triggers a newer acknowledge or resolve made moot; the rest of the scan."""
        moot = {
            rid: action
            for rid, action in superseded(rows, self._per_recipient).items()
            if rid not in self._in_flight and rid not in self._finished
        }
        if not moot:
            return rows
        for r in rows:
            if (action := moot.get(r.id)) is None:
                continue
            why = f"not sent: {action}d before it could be delivered"
            await self._record(r, _Outcome("superseded", r.attempts, r.due_at, why))
            self._counts["superseded"] = self._counts.get("superseded", 0) + 1
            self.metrics.superseded.labels(receiver=r.receiver).inc()
            recipient = r.payload.get("recipient")
            log.info(
                "not sending the trigger of %s to %s%s: %sd before it could be delivered",
                r.payload.get("dedup_key"), r.receiver,
                f" for {recipient}" if recipient else "", action,
            )  # fmt: skip
        return [r for r in rows if r.id not in moot]

    async def _attempt(self, row: OutboxRow) -> None:
        try:
            sem = self._sems.get(row.receiver)
            if sem is None:
                sem = self._sems[row.receiver] = asyncio.Semaphore(self._concurrency)
            async with sem:
                await self._deliver(row)
        finally:
            self._in_flight.pop(row.id, None)
            self._finished.add(row.id)
            self._wake.set()

    async def _deliver(self, row: OutboxRow) -> None:
        n = from_payload(row.payload)
        notifier = self._notifiers.get(row.receiver)
        attempts = row.attempts + 1
        health = self._receivers.setdefault(row.receiver, _ReceiverHealth())
        try:
            if notifier is None:
                raise DeliveryError(row.receiver, "no such receiver", recoverable=False)
            await notifier.send(n)
        except DeliveryError as exc:
            err: DeliveryError = exc
        except Exception as exc:  # a notifier bug must not stop delivery to everyone else
            log.exception("notifier %s crashed on %s", row.receiver, row.id)
            err = DeliveryError(
                row.receiver, f"internal error {type(exc).__name__}", recoverable=True
            )
        else:
            now = self._clock.now()
            try:  # before the row is marked: a crash between the two re-sends, never skips
                await self._after_delivery(n, notifier, now)
            except Exception:  # the store refused the repeat schedule; the page went out
                log.exception("outbox: could not schedule the repeats of %s", row.id)
            await self._record(row, _Outcome("delivered", attempts, row.due_at, None))
            health.consecutive_failures, health.last_success_at = 0, now
            if failed := health.outage.recovered():
                log.info(
                    "receiver %s delivers again (%d attempts had failed)", row.receiver, failed
                )
            self._counts["delivered"] += 1
            self.metrics.attempts.labels(receiver=row.receiver, result="ok").inc()
            self.metrics.delivered.labels(receiver=row.receiver, action=n.action).inc()
            # the log answers "who was paged, when" without the metrics (QA: it could not)
            log.info(
                "delivered %s of %s to %s%s (attempt %d)",
                n.action, n.dedup_key, row.receiver,
                f" for {n.recipient}" if n.recipient else "", attempts,
            )  # fmt: skip
            self.metrics.latency.labels(receiver=row.receiver).observe(
                max(0.0, now - row.created_at)
            )
            self.metrics.consecutive_failures.labels(receiver=row.receiver).set(0)
            return
        now = self._clock.now()
        step = next_step(
            attempts=attempts,
            now=now,
            expires_at=row.expires_at,
            recoverable=err.recoverable,
            policy=self._policy,
            u=self._rng.random(),
            retry_after=err.retry_after if isinstance(err, RetryLater) else None,
        )
        reason = err.reason[:500]
        health.consecutive_failures += 1
        health.last_error, health.last_error_at = reason, now
        self.metrics.consecutive_failures.labels(receiver=row.receiver).set(
            health.consecutive_failures
        )
        if isinstance(step, Retry):
            await self._record(row, _Outcome("pending", attempts, step.due_at, reason))
            self._counts["retried"] += 1
            self.metrics.attempts.labels(receiver=row.receiver, result="retry").inc()
            # the first failure of a receiver's outage, then a reminder every 10 minutes: a
            # line per attempt of every pending row (a dead webhook: 21 lines for 3 pages)
            log.log(
                health.outage.failed(now),
                "delivery of %s to %s failed (attempt %d, retry in %.1fs): %s",
                row.id, row.receiver, attempts, step.due_at - now, reason,
            )  # fmt: skip
        else:
            await self._record(row, _Outcome(step.state, attempts, row.due_at, reason))
            self.metrics.attempts.labels(receiver=row.receiver, result=step.state).inc()
            self._gave_up(row, step.state)
            if n.action == "resolve":
                await self._stop_repeat(row.receiver, n.dedup_key)
            log.error("gave up on %s to %s (%s): %s", row.id, row.receiver, step.state, reason)

    async def _write(self, row_id: str, o: _Outcome) -> None:
        await self._store.outbox_update(
            row_id, state=o.state, attempts=o.attempts, due_at=o.due_at, last_error=o.last_error
        )

    async def _record(self, row: OutboxRow, outcome: _Outcome) -> None:
        """Write an attempt's outcome; held for the next pass if the store refuses it."""
        try:
            await self._write(row.id, outcome)
        except Exception as exc:
            log.error(
                "outbox: could not record %s of %s to %s (%s: %s); held until the store takes it",
                outcome.state, row.id, row.receiver, type(exc).__name__, str(exc)[:200],
            )  # fmt: skip
            self._store_error = type(exc).__name__
            self._unrecorded[row.id] = outcome

    async def _record_held(self) -> None:
        """Write the held outcomes again; those the store still refuses stay held, and the
        pass goes on (rows already stored can still be delivered while it refuses)."""
        for rid, o in list(self._unrecorded.items()):
            try:
                await self._write(rid, o)
            except Exception:
                return
            del self._unrecorded[rid]

    def _with_held(self, rows: list[OutboxRow]) -> list[OutboxRow]:
        """The scan as the held outcomes say: finished rows gone, retries due when due."""
        if not self._unrecorded:
            return rows
        out = []
        for r in rows:
            o = self._unrecorded.get(r.id)
            if o is None:
                out.append(r)
            elif o.state == "pending":
                out.append(replace(r, attempts=o.attempts, due_at=o.due_at))
        return out

    def _gave_up(self, row: OutboxRow, state: str) -> None:
        self._counts[state] = self._counts.get(state, 0) + 1
        self.metrics.given_up.labels(receiver=row.receiver, reason=state).inc()

    # ---- receivers that must hear "still firing" (Alertmanager) --------------------------

    async def _load_repeat(self) -> dict[str, dict[str, Any]]:
        if self._repeat is None:
            raw = await self._store.get(REPEAT_KEY)
            self._repeat = json.loads(raw) if raw else {}
        return self._repeat

    async def _save_repeat(self) -> None:
        await self._store.put(REPEAT_KEY, json.dumps(self._repeat or {}).encode())

    async def _after_delivery(self, n: Notification, notifier: Notifier, now: float) -> None:
        every = getattr(notifier, "repeat_seconds", None)
        if not isinstance(every, int | float) or every <= 0:
            return
        if n.action == "resolve":
            await self._stop_repeat(n.receiver, n.dedup_key)
            return
        repeat = await self._load_repeat()
        key = f"{n.receiver}\x00{n.dedup_key}"
        base_id = n.id.split("#r", 1)[0]  # a repeat refreshes the entry of its original
        prev = repeat.get(key, {})
        repeat[key] = {
            "notification": to_payload(n),
            "base_id": base_id,
            "seq": int(prev.get("seq", 0)) if prev.get("base_id") == base_id else 0,
            "every": float(every),
            "next_at": now + float(every),
        }
        # Written before the row is marked delivered: a crash in between re-sends, never forgets.
        await self._save_repeat()

    async def _stop_repeat(self, receiver: str, dedup_key: str) -> None:
        repeat = await self._load_repeat()
        if repeat.pop(f"{receiver}\x00{dedup_key}", None) is not None:
            await self._save_repeat()

    async def _repeat_due(self, rows: Sequence[OutboxRow], full: set[str], now: float) -> bool:
        repeat = await self._load_repeat()
        busy = {group_of(r, self._per_recipient) for r in rows}
        busy |= {g for g, _ in self._in_flight.values()}
        added = dropped = False
        for key, e in list(repeat.items()):
            if float(e["next_at"]) > now:
                continue
            n = from_payload(e["notification"])
            if n.receiver not in self._notifiers:
                # the receiver left the config: re-sends could only ever fail ("no such
                # receiver") once per interval, forever
                log.warning("%s: no longer configured, its repeats stop", n.receiver)
                del repeat[key]
                dropped = True
                continue
            if (n.receiver, n.dedup_key) in busy or n.receiver in full:
                # something newer is queued for this alert (it will refresh the entry), or may
                # be, beyond the scan: a repeat queued behind a resolve would re-fire the alert
                continue
            e["seq"] = int(e["seq"]) + 1
            e["next_at"] = now + float(e["every"])
            again = Notification(
                id=f"{e['base_id']}#r{e['seq']}",
                receiver=n.receiver,
                action=n.action,
                dedup_key=n.dedup_key,
                incident=n.incident,
                created_at=n.created_at,
                recipient=n.recipient,
                links=n.links,
            )
            await self._store.outbox_enqueue(
                OutboxRow(again.id, again.receiver, to_payload(again), now, now,
                          now + float(e["every"]), 0, "pending", None)
            )  # fmt: skip
            # a repeat is a notification of its own: enqueued and delivered counts agree
            self.metrics.enqueued.labels(receiver=again.receiver, action=again.action).inc()
            repeat[key] = e
            added = True
        if added or dropped:
            await self._save_repeat()
        return added

    # ---- visibility ----------------------------------------------------------------------

    async def _observe(self, rows: Sequence[OutboxRow], full: set[str], now: float) -> None:
        self._last_scan = now
        # the scan holds each receiver's oldest rows, so the oldest of all; the depth it
        # cannot tell when a receiver has more rows than it read
        self._pending = await self._store.outbox_pending_count() if full else len(rows)
        self._oldest_created = min((r.created_at for r in rows), default=None)
        self.metrics.pending.set(self._pending)

    def _oldest_age(self) -> float:
        oldest = self._oldest_created
        return 0.0 if oldest is None else max(0.0, self._clock.now() - oldest)

    def health(self) -> dict[str, Any]:
        """Depth, oldest pending age, per-receiver failures — for /healthz (as of the last scan)."""
        now = self._clock.now()
        failing = sorted(n for n, h in self._receivers.items() if h.consecutive_failures >= 3)
        oldest = None if self._oldest_created is None else self._oldest_age()
        return {
            "status": "degraded" if failing or self._store_error or self._unrecorded else "ok",
            "store_error": self._store_error,
            # outcomes the store refused, held in memory: a restart now would send them again
            "unrecorded": len(self._unrecorded),
            "pending": self._pending,
            "in_flight": len(self._in_flight),
            "oldest_pending_age": oldest,
            "last_scan_age": None if self._last_scan is None else max(0.0, now - self._last_scan),
            "repeating": len(self._repeat or {}),
            "since_start": dict(self._counts),
            "failing_receivers": failing,
            "receivers": {
                name: {
                    "consecutive_failures": h.consecutive_failures,
                    "last_error": h.last_error,
                    "last_error_at": h.last_error_at,
                    "last_success_at": h.last_success_at,
                }
                for name, h in sorted(self._receivers.items())
            },
        }
