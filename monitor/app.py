"""The composition root: the one place that builds every part and wires the flow.

Read top to bottom: storage -> metrics and hub -> enrichment, aggregation, detection ->
incidents -> pipeline -> sources -> HTTP (wall, API, metrics). `App.run()` then drives it:
sources feed a bounded queue, one consumer enriches and aggregates, a ticker advances the
event-time watermark so buckets close and detectors run, verdicts become incidents.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import os
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge

from alerting.api import TokenBook, api_routes, require_reader
from alerting.escalation import EscalationState
from alerting.incidents import IncidentEvent
from alerting.links import LinkSigner
from alerting.notifiers import build_notifiers
from alerting.outbox import Outbox
from alerting.service import IncidentService
from alerting.views import escalation_summary, oncall_summary
from dashboards.view import WallState, live_view
from dashboards.wall import close_walls, run_live, wall_routes
from detectors.stage import DetectionStage
from monitor.aggregate import Aggregator
from monitor.clock import Clock, ScaledClock
from monitor.collectors.base import Source, SourceContext, SourceHealth
from monitor.collectors.demo import DemoSource
from monitor.collectors.registry import (
    build_ingest,
    build_sources,
    health_dict,
    lateness_warnings,
    publisher,
    watch_health,
)
from monitor.config import Config
from monitor.config.receivers import check_secrets, secret
from monitor.deadletter import DeadLetters
from monitor.dedup import Dedup
from monitor.enrich.enricher import Enricher
from monitor.errors import CrisiswatchError
from monitor.hub import Hub
from monitor.metrics import PipelineMetrics
from monitor.model import Mention
from monitor.outage import Outage
from monitor.pipeline import Pipeline, VerdictLike, batches, run_ticker
from monitor.server import AccessLog, build_web_app
from monitor.storage import Store, open_store
from monitor.storage.base import StoreTakenOver

log = logging.getLogger(__name__)

QUEUE_SIZE = 10_000
SETTLE_SECONDS = 60.0  # a stop waits this long for verdicts still being handed to alerting
FUTURE_SECONDS = 300.0  # a mention dated further ahead than this comes from a wrong clock
ALERTING_KEY = "alerting.state"


@dataclass(frozen=True, slots=True)
class Saved:
    """State a previous run left in the store."""

    detectors: bytes | None = None
    alerting: dict[str, Any] | None = None
    aggregator: dict[str, Any] | None = None  # watermark and open buckets
    dedup: bytes | None = None  # the keys those buckets counted (monitor.dedup)
    wall: bytes | None = None  # the wall tiles' recent points (zlib-compressed JSON)
    pipeline: dict[str, Any] | None = None  # its counters: mentions processed
    sources: dict[str, Any] | None = None  # per source, what judging its silence needs


def health_problems(
    sources: Sequence[Mapping[str, Any]],
    push: Sequence[SourceHealth],
    checkpoint_error: str | None,
    outbox: Mapping[str, Any],
    escalation: Mapping[str, Any] | None = None,
) -> list[str]:
    """Why ``/healthz`` is not ok (503): empty when it is.

    A stale source, a pull source that has not been connected for longer than the stale floor
    (`down`: a wrong host, port or token, a broker that stayed down), a push endpoint that
    refuses everything (its token variable unset), a store that refuses the checkpoint or the
    outbox's outcomes: each looked healthy (200, ``ok: true``) while data or pages were being
    lost (QA, tenth and twelfth sessions). A receiver that fails is not among them: that is the
    far side's outage, alerted on by its own rule.

    >>> bluesky = {"name": "bluesky", "stale": False, "down": True, "down_seconds": 25.2,
    ...            "outage_reconnects": 11, "last_error": "OSError: Connect call failed"}
    >>> health_problems([{"name": "rss", "stale": True}, bluesky], [], "OSError: disk full",
    ...                 {"unrecorded": 2})  # doctest: +NORMALIZE_WHITESPACE
    ['source rss is stale',
     'source bluesky is not connected (11 reconnects in 25 s; last error: OSError: Connect
     call failed)', 'checkpoint failed: OSError: disk full',
     'outbox: 2 outcomes the store refused (held in memory)']
    >>> health_problems([], [], None, {}, {"events_waiting": 2, "steps_failing": True})
    ... # doctest: +NORMALIZE_WHITESPACE
    ['escalation: 2 incident events wait for the store; due escalation steps fail (the store):
     pages are owed']
    >>> health_problems([], [], None, {}, {"unsaved": True})
    ['incident state not saved (a restart now would go back to the last save)']
    >>> health_problems([], [], None, {"store_error": "DatabaseError: malformed"})
    ['outbox: the store refuses its scans (DatabaseError: malformed): pages wait']
    """
    out = []
    for s in sources:
        if s["stale"]:
            out.append(f"source {s['name']} is stale")
        if s.get("down"):
            error = f"; last error: {s['last_error']}" if s.get("last_error") else ""
            out.append(
                f"source {s['name']} is not connected ({s.get('outage_reconnects', 0)} "
                f"reconnects in {s.get('down_seconds') or 0:.0f} s{error})"
            )
    out += [
        f"endpoint {h.name} refuses everything (not configured)" for h in push if not h.connected
    ]
    if checkpoint_error is not None:
        out.append(f"checkpoint failed: {checkpoint_error}")
    if held := outbox.get("unrecorded"):
        out.append(f"outbox: {held} outcomes the store refused (held in memory)")
    if scan := outbox.get("store_error"):
        # a damaged outbox table: no page went out while /healthz said ok (QA)
        out.append(f"outbox: the store refuses its scans ({scan}): pages wait")
    esc = escalation or {}
    owed = [
        f"{n} incident events wait for the store" if (n := esc.get("events_waiting")) else "",
        "due escalation steps fail (the store)" if esc.get("steps_failing") else "",
        "resuming the escalations failed" if esc.get("resume_owed") else "",
    ]
    if any(owed):
        out.append(f"escalation: {'; '.join(w for w in owed if w)}: pages are owed")
    if esc.get("unsaved"):
        out.append("incident state not saved (a restart now would go back to the last save)")
    return out


def restored_summary(series: int, incidents: int, escalating: int, owed: int, dead: int) -> str:
    """What a start found in the store, for its log line.

    >>> restored_summary(3, 1, 1, 2, 0)
    'restored 3 series baselines, 1 open incident (1 escalating), 2 deliveries owed'
    >>> restored_summary(0, 0, 0, 0, 0)
    'nothing to restore (a new store, or none of its state is in use)'
    """
    parts = [
        f"{series} series baseline{'' if series == 1 else 's'}" if series else "",
        f"{incidents} open incident{'' if incidents == 1 else 's'} ({escalating} escalating)"
        if incidents
        else "",
        f"{owed} deliver{'y' if owed == 1 else 'ies'} owed" if owed else "",
        f"{dead} dead letter{'' if dead == 1 else 's'} kept" if dead else "",
    ]
    said = ", ".join(p for p in parts if p)
    return (
        f"restored {said}"
        if said
        else "nothing to restore (a new store, or none of its state is in use)"
    )


#: Learning topics /healthz names (those that page last): it listed all, 77 KB at 2,000 topics
#: on every probe; `learning_count` says how many there are.
HEALTH_LEARNING_LIMIT = 20


def learning_shown(
    learning: Mapping[str, float], limit: int = HEALTH_LEARNING_LIMIT
) -> dict[str, float]:
    """The `limit` topics still learning that may page last (then by name), for /healthz.

    >>> learning_shown({"b": 50.0, "a": 50.0, "c": 10.0}, limit=2)
    {'a': 50.0, 'b': 50.0}
    """
    return dict(sorted(learning.items(), key=lambda kv: (-kv[1], kv[0]))[:limit])


def lost_at_stop(escalation: Mapping[str, Any]) -> str | None:
    """What a stop without a final checkpoint loses of the escalation (None: nothing): a full
    disk's stop said only that the checkpoint failed, not that pages owed went with it (QA).

    >>> lost_at_stop({"events_waiting": 3, "steps_failing": True, "unsaved": True})
    '3 incident events waiting, escalation steps failing, incident state not saved'
    >>> lost_at_stop({"events_waiting": 0, "steps_failing": False, "unsaved": False}) is None
    True
    """
    n = escalation.get("events_waiting", 0)
    parts = [
        f"{n} incident event{'' if n == 1 else 's'} waiting" if n else "",
        "escalation steps failing" if escalation.get("steps_failing") else "",
        "escalations not resumed" if escalation.get("resume_owed") else "",
        "incident state not saved" if escalation.get("unsaved") else "",
    ]
    return ", ".join(p for p in parts if p) or None


def history_floor(config: Config, now: float) -> float | None:
    """Where event time may begin on a first start: ``first_start_history_seconds`` before
    `now`, or the demo's backfill if longer; None (no floor) with a replay, whose files are
    history by design.

    >>> from monitor.config import parse_config
    >>> cfg = parse_config({"topics": [], "sources": {"demo": {"enabled": False}}})
    >>> history_floor(cfg, 100_000.0)  # the default ten minutes
    99400.0
    >>> demo = {"enabled": True, "backfill_seconds": 3600}
    >>> history_floor(parse_config({"topics": [], "sources": {"demo": demo}}), 100_000.0)
    96400.0
    """
    s = config.sources
    if s.replay.enabled:
        return None
    back = config.aggregation.first_start_history_seconds
    if s.demo.enabled:
        back = max(back, s.demo.backfill_seconds)
    return now - back


class App:
    def __init__(
        self,
        config: Config,
        clock: Clock,
        store: Store,
        saved: Saved | None = None,
        *,
        http: aiohttp.ClientSession | None = None,
    ) -> None:
        saved = saved or Saved()
        self.config, self.clock, self.store = config, clock, store
        self.registry = CollectorRegistry()
        self.metrics = PipelineMetrics(self.registry)
        self.incident_gauge = Gauge(
            "crisiswatch_incidents",
            "Incidents by state and severity.",
            ["state", "severity"],
            registry=self.registry,
        )
        self.hub = Hub(on_drop=self.metrics.hub_dropped.inc)
        self.dead_letters = DeadLetters(
            store, clock, keep=config.storage.dead_letter_keep, registry=self.registry
        )
        topics = config.topics
        self.enricher = Enricher(topics, config.enrichment)
        agg = config.aggregation
        closed = (saved.aggregator or {}).get("closed_until")
        if closed is not None and closed > clock.now() + agg.bucket_seconds:
            # event time was closed beyond now: a system clock set back (a sped-up run's clock
            # resumes instead, see `open`). Kept, it would count every mention as late until
            # the clock caught up, and the detectors would learn nothing.
            log.warning(
                "saved state reaches %.0f s beyond the clock: starting detection afresh",
                closed - clock.now(),
            )
            saved = replace(
                saved, aggregator=None, detectors=None, dedup=None, wall=None, pipeline=None
            )
        self.aggregator = Aggregator(
            [t.name for t in topics],
            agg.bucket_seconds,
            agg.samples_per_bucket,
            start_floor=None if saved.aggregator else history_floor(config, clock.now()),
        )
        self.detector = DetectionStage(config.detection)
        if saved.detectors:
            try:
                restarted = self.detector.restore(saved.detectors)
                if gone := self.detector.retain({t.name for t in topics}):
                    log.warning(
                        "forgot the baselines of %d series no longer configured: %s",
                        len(gone), ", ".join(sorted(gone)[:10]),
                    )  # fmt: skip
                if restarted:
                    log.warning(
                        "detection config changed the shape of learned state: %d series "
                        "start their baselines afresh and warm up again",
                        restarted,
                    )
            except CrisiswatchError as exc:  # a bad checkpoint must not keep the service down
                log.warning("detector checkpoint ignored, starting fresh: %s", exc)
        if saved.aggregator:
            self.aggregator.restore(saved.aggregator)
        # alerting: incidents + escalation decide, the outbox delivers (persisted first)
        env = os.environ
        # every delivery secret at once, each named by its config path (the notifiers name
        # `receivers.<name>.…`, which is not where the file says it)
        check_secrets(config.delivery, env)
        self.http = http or aiohttp.ClientSession()
        notifiers = build_notifiers(
            config.delivery.receivers,
            self.http,
            env=env,
            clock=clock,
            contacts={u.name: u.contact for u in config.alerting.users},
        )
        self.links = self._link_signer(config, env)
        self.outbox = Outbox(
            store, notifiers, clock, self.registry, config=config.delivery.outbox, links=self.links
        )
        self.incidents = IncidentService(
            config.alerting,
            clock,
            self.outbox.enqueue,
            state=saved.alerting,
            persist=self.persist_alerting,
            publish=self.publish_incident_event,
            topic_labels={t.name: t.labels for t in topics},
            topic_titles={t.name: t.title for t in topics if t.title},
            topics=[t.name for t in topics],
            registry=self.registry,
        )
        # timer-driven steps (level 2 after the delay, repeats, exhaustion) have no incident
        # event: the wall hears of them on the `escalation` topic
        self.incidents.runner.on_step = self.publish_escalation
        self.incidents.on_resolved_by_hand = self.end_episodes
        # the keys the restored buckets counted: a source re-sending them after a restart (the
        # demo's open minute, a replay, an HTTP retry) must not count them twice
        dedup = Dedup.restore(saved.dedup) if saved.aggregator and saved.dedup else None
        self.pipeline = Pipeline(
            dedup=dedup,
            enricher=self.enricher,
            aggregator=self.aggregator,
            detector=self.detector,
            on_verdicts=self.on_verdicts,
            hub=self.hub,
            metrics=self.metrics,
        )
        # read at each scrape from what has closed: set before each advance, it read 60 s
        # while one advance stood still for minutes (a burst of incidents; QA)
        self.metrics.watermark_lag.set_function(self.watermark_lag)
        if saved.aggregator and saved.pipeline:
            # the wall's "mentions processed" dropped to 0 at each restart: read as data lost (QA)
            self.pipeline.processed = int(saved.pipeline.get("processed", 0))
        # collectors: pull sources stream into the queue, push sources (HTTP) submit to it
        self.queue: asyncio.Queue[Mention] = asyncio.Queue(QUEUE_SIZE)
        self._stranded: list[Mention] = []  # taken from a source, not queued (see pump)
        self.future_mentions = Counter(
            "crisiswatch_future_dated_mentions_total",
            f"Mentions dated more than {FUTURE_SECONDS:.0f} s ahead, counted at that bound.",
            registry=self.registry,
        )
        ctx = SourceContext(
            clock,
            self.dead_letters,
            store,
            self.registry,
            self.submit,
            known=self.pipeline.dedup.__contains__,
        )
        self.sources: list[Source] = []
        self.started_at = clock.now()  # reset by run()
        demo = config.sources.demo
        if demo.enabled:
            self.sources.append(DemoSource(demo, clock, backfill_seconds=demo.backfill_seconds))
        self.sources += build_sources(config.sources, ctx)
        for warning in lateness_warnings(config.sources, agg.watermark_seconds, agg.bucket_seconds):
            log.warning("%s", warning)
        ingest = build_ingest(config.sources, ctx)
        self.push_health: list[SourceHealth] = ingest.health
        self.publisher = publisher(config.sources, ctx)
        watch_health(self.registry, self.source_health, clock, config.sources.stale_floor_seconds)
        for h in self.source_health():
            if isinstance(kept := (saved.sources or {}).get(h.name), dict):
                h.recall(kept, clock.now())
        self.wall = WallState(
            [{"name": t.name, "title": t.title or t.name} for t in topics], agg.history_buckets
        )
        if saved.aggregator and saved.wall:
            try:
                self.wall.restore_series(json.loads(zlib.decompress(saved.wall)))
            except (zlib.error, ValueError):
                log.warning("the wall's saved history is unreadable; the tiles start empty")
        self.hub.add_listener(self.wall.apply)
        self.wall_sockets: set[web.WebSocketResponse] = set()
        Gauge(
            "crisiswatch_wall_clients", "Connected wall websockets.", registry=self.registry
        ).set_function(lambda: len(self.wall_sockets))
        # /healthz's 503s as metrics: a full disk (checkpoint failing), a push endpoint without
        # its token or unsaved incident state had none, so Prometheus never paged (QA)
        Gauge(
            "crisiswatch_health_problems",
            "Problems /healthz lists now (0: healthy).",
            registry=self.registry,
        ).set_function(lambda: len(self.problems(self.clock.now())))
        self.checkpoint_saved = Gauge(
            "crisiswatch_checkpoint_last_success_timestamp_seconds",
            "Service-clock time of the last checkpoint that saved (0 before the first).",
            registry=self.registry,
        )
        self.tokens = TokenBook.from_config(config.delivery.api, env)
        for inc in self.incidents.book.all_incidents():
            self.wall.apply("incident", {"incident": inc.to_dict()})
        self.web = build_web_app(
            registry=self.registry,
            health=self.health,
            incidents=self.list_incidents,
            may_read=functools.partial(require_reader, self.tokens),
            routes=[
                *wall_routes(
                    self.wall,
                    client_queue=config.server.client_queue,
                    clock=clock,
                    # once any API token is configured the wall needs a viewer or responder
                    # one, like the API's reads: a responder token alone left it open (QA)
                    authorize=self.tokens.may_read if len(self.tokens) else None,
                    sockets=self.wall_sockets,
                    origins=config.server.wall_origins,
                    registry=self.registry,
                    on_drop=self.metrics.hub_dropped.inc,
                ),
                *ingest.routes,
                *api_routes(
                    self.incidents,
                    config.delivery.api,
                    clock=clock,
                    registry=self.registry,
                    env=env,
                    links=self.links,
                ),
            ],
        )
        self.web.on_shutdown.append(lambda _: close_walls(self.wall_sockets))
        self._last_checkpoint = clock.now()
        self._checkpoint_error: str | None = None  # the last checkpoint's failure, if it failed
        self._checkpoint_outage = Outage()
        self.bound_port: int | None = None

    @staticmethod
    def _link_signer(config: Config, env: Mapping[str, str]) -> LinkSigner | None:
        links = config.delivery.links
        if not links.secret_env:
            return None
        key = secret(env, links.secret_env, "delivery.links.secret_env").encode()
        return LinkSigner(
            [key],
            base_url=links.base_url,
            ttl_seconds=links.ttl_seconds,
            snooze_seconds=links.snooze_seconds,
        )

    # --- verdicts -> incidents -------------------------------------------------------------
    async def on_verdicts(self, verdicts: Sequence[VerdictLike]) -> None:
        await self.incidents.on_verdicts(verdicts)
        if self.clock.now() - self._last_checkpoint >= self.config.storage.checkpoint_seconds:
            try:
                await self.checkpoint()
            except Exception as exc:
                # A store outage must not stop detection and paging (the incident service
                # keeps what it could not store); the next interval tries again. The traceback
                # once per outage: at demo speed every second repeated 30 lines (QA)
                error = f"{type(exc).__name__}: {str(exc)[:200]}"
                level = self._checkpoint_outage.failed(self.clock.now())
                if self._checkpoint_outage.failures == 1:
                    log.exception("checkpoint failed; detection goes on, retried next interval")
                else:  # an error at every interval was 53 lines in 2.5 minutes at demo speed
                    log.log(
                        logging.ERROR if level >= logging.WARNING else logging.DEBUG,
                        "checkpoint failed again (%d attempts): %s",
                        self._checkpoint_outage.failures, error,
                    )  # fmt: skip
                self._checkpoint_error = error
            else:
                if failed := self._checkpoint_outage.recovered():
                    log.info("checkpoint saved again after %d failed attempts", failed)
                self._checkpoint_error = None

    def publish_escalation(self, incident_id: str, state: EscalationState) -> None:
        self.hub.publish("escalation", escalation_summary(state))

    def end_episodes(self, series: list[str]) -> None:
        """A person resolved an incident: its series' detector episodes end too (so the next
        surge opens a new incident), and the next advance checkpoints that: a restart from
        the last checkpoint brought the episode back (QA, eleventh session)."""
        if any([self.detector.end_episode(s) for s in series]):
            self._last_checkpoint = -math.inf

    async def publish_incident_event(self, ev: IncidentEvent) -> None:
        doc = ev.incident.to_dict()
        await self.store.upsert_incident(doc)
        # with the peak explanation: the wall's "why" line is what drove the incident (the
        # latest one read as calm under a flashing SEV1; QA), and it keeps it out of its frames
        msg = ev.to_dict()
        esc = self.incidents.runner.escalation(doc["id"])
        if esc is not None:
            msg["incident"]["escalation"] = escalation_summary(esc)
        self.hub.publish("incident", msg)
        level = logging.DEBUG if ev.kind == "updated" else logging.INFO
        log.log(
            level, "incident %s %s (%s SEV%s)", doc["id"], ev.kind, doc["topic"], doc["severity"]
        )
        if ev.kind != "updated":
            self._count_incidents()

    def _count_incidents(self) -> None:
        self.incident_gauge.clear()
        # every state and severity from 0: a panel "open incidents by severity" read "No data"
        # until the first incident, not 0 (QA, eleventh session)
        for state in ("triggered", "acknowledged", "resolved"):
            for sev in range(1, 5):
                self.incident_gauge.labels(state, f"SEV{sev}").set(0)
        for inc in self.incidents.book.all_incidents():
            self.incident_gauge.labels(inc.state, f"SEV{inc.severity}").inc()

    async def persist_alerting(self, state: dict[str, Any]) -> None:
        await self.store.put(ALERTING_KEY, json.dumps(state).encode())

    # --- persistence ---------------------------------------------------------------------
    async def checkpoint(self) -> None:
        self._last_checkpoint = self.clock.now()
        parts = []
        for part in self.detector.checkpoint_parts():
            parts.append(part)
            # 100,000 series pickle for seconds: walls, ingest and escalation timers run
            # between slices. Nothing observes meanwhile: only the pipeline's advance does,
            # and it is the caller awaiting this (through on_verdicts), or it has stopped.
            await asyncio.sleep(0)
        # the tiles' points too: a restart used to start every chart empty (QA). Packed a
        # part at a time and compressed off the loop: 2,000 topics held it for seconds.
        pieces = []
        for piece in self.wall.series_state_json():
            pieces.append(piece)
            await asyncio.sleep(0)
        wall = await asyncio.to_thread(zlib.compress, "".join(pieces).encode(), 6)
        # taken together, with no await between, and written in one statement: what the
        # detectors learned, the buckets still open and the keys those counted agree after a
        # crash at any point (written apart, a kill -9 between them counted re-sent mentions
        # twice, or let the detectors learn buckets twice)
        buckets, keys = self.aggregator.snapshot(), self.pipeline.dedup.snapshot()
        await self.store.put_many(
            {
                "detectors": b"".join(parts),
                "aggregator": json.dumps(buckets).encode(),
                "dedup": keys,
                "wall": wall,
                "pipeline": json.dumps({"processed": self.pipeline.processed}).encode(),
                "sources": json.dumps(
                    {h.name: m for h in self.source_health() if (m := h.memory()) is not None}
                ).encode(),
            }
        )
        await self.persist_alerting(self.incidents.to_state())
        self.checkpoint_saved.set(self.clock.now())

    @classmethod
    async def open(cls, config: Config, clock: Clock, store: Store) -> App:
        """Build the app from what the store kept: detector baselines, incidents and
        escalation cursors, and how far event time had been closed."""
        saved = Saved(
            detectors=await store.get("detectors"),
            alerting=json.loads(raw) if (raw := await store.get(ALERTING_KEY)) else None,
            aggregator=json.loads(raw) if (raw := await store.get("aggregator")) else None,
            dedup=await store.get("dedup"),
            wall=await store.get("wall"),
            pipeline=json.loads(raw) if (raw := await store.get("pipeline")) else None,
            sources=json.loads(raw) if (raw := await store.get("sources")) else None,
        )
        closed = (saved.aggregator or {}).get("closed_until")
        agg = config.aggregation
        if isinstance(clock, ScaledClock) and closed is not None and closed > clock.now():
            # a sped-up run (`make run`, a replay) restarted: its time ran ahead of the wall
            # clock; resume where it stood so the saved state stays valid
            clock.resume_at(closed + agg.watermark_seconds)
            log.info("simulated clock resumes at the saved state (%.0f)", clock.now())
        # made here so that a config error further on can close it: left open it printed
        # "Unclosed client session" under the one-line error (QA, tenth session)
        http = aiohttp.ClientSession()
        try:
            app = cls(config, clock, store, saved, http=http)
        except BaseException:
            await http.close()
            raise
        await app._say_restored()
        return app

    async def _say_restored(self) -> None:
        """One line on what the store gave back: started from another directory, the default
        relative SQLite path made a new, empty store, and the log read like a restart (QA)."""
        opened = self.incidents.book.open_incidents()
        runner = self.incidents.runner
        try:
            owed = await self.store.outbox_pending_count()
            dead = sum((await self.store.count_dead_letters()).values())
        except Exception as exc:  # the start goes on; the outbox says it again
            log.warning("store %s: could not count what it holds: %s", self.store.where, exc)
            return
        log.info(
            "store %s: %s",
            self.store.where,
            restored_summary(
                self.detector.series_count,
                len(opened),
                sum(1 for i in opened if (e := runner.escalation(i.id)) is not None and e.active),
                owed,
                dead,
            ),
        )

    # --- read side -----------------------------------------------------------------------
    def problems(self, now: float) -> list[str]:
        """What /healthz answers 503 for."""
        return health_problems(
            self.source_reports(now),
            self.push_health,
            self._checkpoint_error,
            self.outbox.health(),
            self.incidents.health(),
        )

    async def health(self) -> dict[str, Any]:
        now = self.clock.now()
        newest = self.pipeline.newest_event_time
        sources = self.source_reports(now)
        outbox = self.outbox.health()
        escalation = self.incidents.health()
        learning = self.detector.learning()
        problems = self.problems(now)
        return {
            "ok": not problems,
            "problems": problems,
            "now": now,
            "sources": sources,
            "last_event_time": newest,
            "lag_seconds": None if newest is None else max(0.0, now - newest),
            "watermark": self.aggregator.closed_until,
            "watermark_lag_seconds": self.watermark_lag(),
            "processed": self.pipeline.processed,
            "queue_depth": self.queue.qsize(),
            "dead_letters": self.dead_letters.count,
            "outbox": outbox,
            "escalation": escalation,
            "wall_clients": len(self.wall_sockets),
            # topics that cannot page yet (first day after a first start): not a problem, but
            # a team should not take a quiet pager for an armed one
            "learning": learning_shown(learning),
            "learning_count": len(learning),
        }

    def watermark_lag(self) -> float:
        """Clock time minus the event time closed so far (0 before the first close)."""
        closed = self.aggregator.closed_until
        return 0.0 if closed is None else max(0.0, self.clock.now() - closed)

    def live(self) -> dict[str, Any]:
        p = self.pipeline
        return live_view(p.processed, p.newest_event_time, self.aggregator.open_buckets())

    def source_health(self) -> list[SourceHealth]:
        return [s.health for s in self.sources] + self.push_health

    def source_reports(self, now: float) -> list[dict[str, Any]]:
        floor = self.config.sources.stale_floor_seconds
        return [health_dict(h, now, floor) for h in self.source_health()]

    def complete_until(self) -> float:
        """Event time up to which no more input is expected (see `run_ticker`).

        While mentions wait in the queue, or a source is catching up (it delivered recently
        but its newest event is older than the allowed lateness: a backlog after a restart,
        the demo's backfill), the watermark follows what was actually ingested instead of
        the clock, so nothing of the backlog arrives "late". Right after a restart the
        watermark stays where the last run left it until every source has delivered once
        (at most ``aggregation.startup_hold_seconds``), so a backlog that is slow to start
        does not find its buckets already closed.
        """
        now = self.clock.now()
        agg = self.config.aggregation
        lateness = agg.watermark_seconds
        t = now
        closed = self.aggregator.closed_until
        if (
            closed is not None
            and now - self.started_at < agg.startup_hold_seconds
            and any(h.last_received_at is None for h in self.source_health())
        ):
            # just restarted and not every source has spoken, push endpoints included (a
            # client re-sending what it held while the service was down found those minutes
            # closed, counted late, a false dip; QA, tenth session): close nothing new yet
            return min(t, closed + lateness)
        newest = self.pipeline.newest_event_time
        if not self.queue.empty() and newest is not None:
            t = min(t, newest)
        for s in self.sources:
            h = s.health
            if h.last_event_time is None or h.last_received_at is None:
                continue
            if now - h.last_received_at < lateness and h.last_event_time < now - lateness:
                t = min(t, h.last_event_time, newest if newest is not None else t)
        return t

    async def list_incidents(self, open_only: bool, limit: int) -> list[dict[str, Any]]:
        return await self.store.list_incidents(open_only=open_only, limit=limit)

    # --- running ---------------------------------------------------------------------------
    async def pump(self, source: Source) -> None:
        """Feed one source into the queue; a source that fails is logged and restarted."""
        delay = 1.0
        while True:
            try:
                async with contextlib.aclosing(source.stream()) as stream:  # type: ignore[type-var]
                    async for mention in stream:
                        admitted = self.admit(mention)
                        try:
                            await self.queue.put(admitted)
                        except asyncio.CancelledError:
                            # shutting down with the queue full: the source already handed
                            # this one over (and may have acknowledged it), so drain() counts it
                            self._stranded.append(admitted)
                            raise
                        delay = 1.0
                return
            except Exception:
                source.health.connected = False
                log.exception("source %s failed; restarting in %.0f s", source.name, delay)
                await self.clock.sleep(delay)
                delay = min(delay * 2, 60.0)

    def admit(self, m: Mention) -> Mention:
        """``m``, or when dated beyond now + ``FUTURE_SECONDS``, ``m`` counted at that bound.

        A source with a wrong clock (or a typo'd year) would otherwise keep a bucket open until
        that date, freeze the ingest lag at zero and the wall's live counter, and disable the
        rule that holds the watermark while a backlog waits in the queue.
        """
        limit = self.clock.now() + FUTURE_SECONDS
        if m.created_at <= limit:
            return m
        self.future_mentions.inc()
        return replace(m, created_at=limit)

    async def submit(self, m: Mention) -> None:
        """Push sources (HTTP ingest, webhooks) feed the queue through here."""
        await self.queue.put(self.admit(m))

    def drain(self) -> int:
        """Count everything taken in but not yet counted (at shutdown, once intake stopped).

        The collectors acknowledged these mentions (MQTT PUBACK, Jetstream cursor, RSS seen
        list, HTTP 200), so dropping them would lose them for good; counted now, they reach
        the checkpoint inside the open buckets.
        """
        batch = self.config.enrichment.batch_size
        todo = self._stranded
        self._stranded = []
        while not self.queue.empty():
            todo.append(self.queue.get_nowait())
        for i in range(0, len(todo), batch):
            self.pipeline.ingest(todo[i : i + batch])
        return len(todo)

    async def consume(self) -> None:
        async for batch in batches(self.queue, self.config.enrichment.batch_size):
            self.pipeline.ingest(batch)
            await asyncio.sleep(0)  # let the server and ticker breathe between batches

    async def publish_oncall(self) -> None:
        while True:
            directory = self.incidents.runner.plan.directory  # the one escalation pages from
            self.hub.publish("oncall", oncall_summary(directory, self.clock.now()))
            await self.clock.sleep(60.0)

    async def publish_sources(self) -> None:
        while True:
            for report in self.source_reports(self.clock.now()):
                self.hub.publish("source", report)
            await self.clock.sleep(10.0)

    async def run(self, stop: asyncio.Event) -> None:
        self._count_incidents()
        runner = web.AppRunner(self.web, handle_signals=False, access_log_class=AccessLog)
        await runner.setup()
        site = web.TCPSite(runner, self.config.server.host, self.config.server.port)
        try:
            await site.start()
        except BaseException as exc:  # the port is taken, say: release what the app holds
            await runner.cleanup()
            await self.close()
            if isinstance(exc, OSError):
                host, port = self.config.server.host, self.config.server.port
                reason = exc.strerror or str(exc)
                raise CrisiswatchError(
                    f"server.host/server.port: cannot listen on {host}:{port}: {reason}"
                ) from exc
            raise
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.bound_port = sockets[0].getsockname()[1] if sockets else self.config.server.port
        log.info("wall on http://%s:%s/", self.config.server.host, self.bound_port)
        agg = self.config.aggregation
        self.started_at = self.clock.now()
        web_stopped = False
        try:
            async with asyncio.TaskGroup() as tg:
                pumps = [tg.create_task(self.pump(s)) for s in self.sources]
                tasks = [
                    tg.create_task(self.consume()),
                    tg.create_task(
                        run_ticker(
                            self.pipeline,
                            self.clock,
                            self.complete_until,
                            agg.watermark_seconds,
                            interval=min(5.0, agg.bucket_seconds / 4),
                        )
                    ),
                    tg.create_task(self.incidents.run()),
                    tg.create_task(self.outbox.run()),
                    tg.create_task(self.publish_sources()),
                    tg.create_task(self.publish_oncall()),
                    tg.create_task(run_live(self.hub, self.live)),
                ]
                if self.publisher is not None:
                    tasks.append(tg.create_task(self.publisher.run(self.hub)))
                await stop.wait()
                log.info("stopping: closing the sources, then saving state")
                # intake stops first (the collectors save their positions as they close, and
                # HTTP ingest answers what it accepted), then what it took in is counted
                for t in pumps:
                    t.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
                web_stopped = True
                await runner.cleanup()
                for t in tasks:
                    t.cancel()
        finally:
            if not web_stopped:
                await runner.cleanup()
            if await self.pipeline.settle(SETTLE_SECONDS):
                await self._save_at_stop()
            else:
                # Saved, the detectors would be past an onset alerting never heard of: it
                # would never page. From the last save they see the surge again in the next
                # buckets (the mentions counted since that save are what is lost instead).
                log.error(
                    "stopping: the last verdicts were not handed to alerting within %.0f s;"
                    " the final checkpoint is skipped (a page beats the last seconds' counts)",
                    SETTLE_SECONDS,
                )
            await self.dead_letters.flush()
            await self.close()

    async def _save_at_stop(self) -> None:
        try:
            if n := self.drain():
                log.info("counted %d mentions still queued at shutdown", n)
        except Exception:
            log.exception("could not count the mentions still queued at shutdown")
        try:
            await self.checkpoint()
        except StoreTakenOver as exc:  # said once already, by the store
            log.error("final checkpoint not saved: %s", exc)
        except Exception:
            log.exception("could not save the final checkpoint")
            if lost := lost_at_stop(self.incidents.health()):
                log.error("stopping with %s: lost, since the store refused it (page by hand)", lost)
        else:
            await self._say_stopped()

    async def _say_stopped(self) -> None:
        # a restart's first questions: did it save, and is a page still owed?
        try:
            pending = await self.store.outbox_pending_count()
        except Exception as exc:
            log.info("stopped: state saved (pending deliveries not counted: %s)", exc)
            return
        noun = "delivery" if pending == 1 else "deliveries"
        owed = f", {pending} {noun} pending (sent after the next start)"
        log.info("stopped: state saved%s", owed if pending else "")

    async def close(self) -> None:
        """Release what the constructor opened (the HTTP client of the notifiers)."""
        await self.http.close()


async def serve(config: Config, clock: Clock, stop: asyncio.Event) -> None:
    """Open the store, run the app until `stop` is set, flush and close."""
    store = await open_store(config.storage.url, retry_seconds=config.storage.retry_seconds)
    # another instance took the store (PostgreSQL, after this one lost its lock connection):
    # stop, since this one can neither record pages nor read what it owes
    taken = asyncio.ensure_future(store.taken.wait())
    taken.add_done_callback(lambda f: None if f.cancelled() else stop.set())
    try:
        app = await App.open(config, clock, store)
        await app.run(stop)
    finally:
        taken.cancel()
        await store.close()
    if store.taken.is_set():
        raise CrisiswatchError(
            "storage.url: another crisiswatch took the store while this one had lost its"
            " lock; this one stopped"
        )
