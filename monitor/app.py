"""The composition root: the one place that builds every part and wires the flow.

Read top to bottom: storage -> metrics and hub -> enrichment, aggregation, detection ->
incidents -> pipeline -> sources -> HTTP (wall, API, metrics). `App.run()` then drives it:
sources feed a bounded queue, one consumer enriches and aggregates, a ticker advances the
event-time watermark so buckets close and detectors run, verdicts become incidents.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge

from alerting.incidents import IncidentBook, IncidentEvent
from dashboards.wall import WallState, wall_routes
from detectors.stage import DetectionStage
from monitor.aggregate import Aggregator
from monitor.clock import Clock
from monitor.collectors.base import Source
from monitor.collectors.demo import DemoSource
from monitor.config import Config
from monitor.deadletter import DeadLetters
from monitor.enrich.enricher import Enricher
from monitor.hub import Hub
from monitor.metrics import PipelineMetrics
from monitor.model import Mention
from monitor.pipeline import Pipeline, VerdictLike, batches, run_ticker
from monitor.server import build_web_app
from monitor.storage import Store, open_store

log = logging.getLogger(__name__)

QUEUE_SIZE = 10_000


class App:
    def __init__(self, config: Config, clock: Clock, store: Store) -> None:
        self.config, self.clock, self.store = config, clock, store
        self.registry = CollectorRegistry()
        self.metrics = PipelineMetrics(self.registry)
        self.incident_gauge = Gauge(
            "crisiswatch_incidents",
            "Incidents by state and severity.",
            ["state", "severity"],
            registry=self.registry,
        )
        self.hub = Hub()
        self.dead_letters = DeadLetters(store, clock, self.metrics)
        topics = config.topics
        self.enricher = Enricher(topics, config.enrichment)
        agg = config.aggregation
        self.aggregator = Aggregator(
            [t.name for t in topics], agg.bucket_seconds, agg.samples_per_bucket
        )
        self.detector = DetectionStage(config.detection)
        self.incidents = IncidentBook(topic_labels={t.name: t.labels for t in topics})
        self.pipeline = Pipeline(
            enricher=self.enricher,
            aggregator=self.aggregator,
            detector=self.detector,
            on_verdicts=self.on_verdicts,
            hub=self.hub,
            metrics=self.metrics,
        )
        self.sources: list[Source] = []
        demo = config.sources.demo
        if demo.enabled:
            self.sources.append(DemoSource(demo, clock, backfill_seconds=demo.backfill_seconds))
        self.wall = WallState(
            [{"name": t.name, "title": t.title or t.name} for t in topics], agg.history_buckets
        )
        self.hub.add_listener(self.wall.apply)
        self.web = build_web_app(
            registry=self.registry,
            health=self.health,
            incidents=self.list_incidents,
            routes=wall_routes(self.wall, self.hub, client_queue=config.server.client_queue),
        )
        self.queue: asyncio.Queue[Mention] = asyncio.Queue(QUEUE_SIZE)
        self._last_checkpoint = clock.now()
        self.bound_port: int | None = None

    # --- verdicts -> incidents -------------------------------------------------------------
    async def on_verdicts(self, verdicts: Sequence[VerdictLike]) -> None:
        now = self.clock.now()
        events: list[IncidentEvent] = []
        for v in verdicts:
            events.extend(self.incidents.on_verdict(v, now))
        await self.publish_incident_events(events)
        if now - self._last_checkpoint >= self.config.storage.checkpoint_seconds:
            await self.checkpoint()

    async def publish_incident_events(self, events: Sequence[IncidentEvent]) -> None:
        for ev in events:
            doc = ev.incident.to_dict()
            await self.store.upsert_incident(doc)
            self.hub.publish("incident", ev.to_dict())
            level = logging.DEBUG if ev.kind == "updated" else logging.INFO
            log.log(
                level,
                "incident %s %s (%s SEV%s)",
                doc["id"],
                ev.kind,
                doc["topic"],
                doc["severity"],
            )
        if events:
            self._count_incidents()

    def _count_incidents(self) -> None:
        self.incident_gauge.clear()
        for inc in self.incidents.all_incidents():
            self.incident_gauge.labels(inc.state, f"SEV{inc.severity}").inc()

    async def tick_incidents(self) -> None:
        """Timeouts, snoozes and auto-resolve happen on clock time, not on data."""
        while True:
            await self.clock.sleep(5.0)
            await self.publish_incident_events(self.incidents.tick(self.clock.now()))

    # --- persistence ---------------------------------------------------------------------
    async def checkpoint(self) -> None:
        self._last_checkpoint = self.clock.now()
        await self.store.put("detectors", self.detector.checkpoint())
        await self.store.put("incidents", json.dumps(self.incidents.to_state()).encode())
        closed = self.aggregator.closed_until
        await self.store.put("aggregator", json.dumps({"closed_until": closed}).encode())

    async def restore(self) -> None:
        blob = await self.store.get("detectors")
        if blob:
            try:
                self.detector.restore(blob)
            except Exception as exc:  # a bad checkpoint must not keep the service down
                log.warning("detector checkpoint ignored: %s", exc)
        inc = await self.store.get("incidents")
        if inc:
            self.incidents = IncidentBook.from_state(
                json.loads(inc), topic_labels=self.incidents.topic_labels
            )
            for i in self.incidents.all_incidents():
                self.wall.apply("incident", {"incident": i.to_dict()})
        agg = await self.store.get("aggregator")
        if agg:
            self.aggregator.closed_until = json.loads(agg).get("closed_until")

    # --- read side -----------------------------------------------------------------------
    async def health(self) -> dict[str, Any]:
        now = self.clock.now()
        newest = self.pipeline.newest_event_time
        sources = [s.health.to_dict(now) for s in self.sources]
        return {
            "ok": all(not s["stale"] for s in sources),
            "now": now,
            "sources": sources,
            "last_event_time": newest,
            "lag_seconds": None if newest is None else max(0.0, now - newest),
            "watermark": self.aggregator.closed_until,
            "processed": self.pipeline.processed,
            "queue_depth": self.queue.qsize(),
            "dead_letters": self.dead_letters.count,
            "wall_clients": self.hub.subscribers,
        }

    def complete_until(self) -> float:
        """Event time up to which no more input is expected (see `run_ticker`).

        While mentions wait in the queue, or a source is catching up (it delivered recently
        but its newest event is older than the allowed lateness: a backlog after a restart,
        the demo's backfill), the watermark follows what was actually ingested instead of
        the clock, so nothing of the backlog arrives "late".
        """
        now = self.clock.now()
        lateness = self.config.aggregation.watermark_seconds
        t = now
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
        async for mention in source.stream():
            await self.queue.put(mention)

    async def consume(self) -> None:
        async for batch in batches(self.queue, self.config.enrichment.batch_size):
            self.pipeline.ingest(batch)
            await asyncio.sleep(0)  # let the server and ticker breathe between batches

    async def publish_sources(self) -> None:
        while True:
            now = self.clock.now()
            for s in self.sources:
                h = s.health.to_dict(now)
                self.hub.publish("source", h)
                if s.health.last_event_time is not None:
                    self.metrics.source_last_event.labels(s.name).set(s.health.last_event_time)
            await self.clock.sleep(10.0)

    async def run(self, stop: asyncio.Event) -> None:
        await self.restore()
        runner = web.AppRunner(self.web, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.config.server.host, self.config.server.port)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.bound_port = sockets[0].getsockname()[1] if sockets else self.config.server.port
        log.info("wall on http://%s:%s/", self.config.server.host, self.bound_port)
        agg = self.config.aggregation
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(self.pump(s)) for s in self.sources]
                tasks += [
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
                    tg.create_task(self.tick_incidents()),
                    tg.create_task(self.publish_sources()),
                ]
                await stop.wait()
                for t in tasks:
                    t.cancel()
        finally:
            with contextlib.suppress(Exception):
                await self.checkpoint()
            await self.dead_letters.flush()
            await runner.cleanup()


async def serve(config: Config, clock: Clock, stop: asyncio.Event) -> None:
    """Open the store, run the app until `stop` is set, flush and close."""
    store = await open_store(config.storage.url)
    try:
        app = App(config, clock, store)
        await app.run(stop)
    finally:
        await store.close()
