"""Metrics contract: documented names, rules that promtool accepts, a Grafana dashboard built on
documented metrics, and a real Prometheus (Debian package) scraping the running service."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from alerting.incidents import IncidentBook
from alerting.metrics import DeliveryMetrics
from alerting.notification import Notification
from alerting.outbox import Outbox
from alerting.runner import EscalationRunner
from alerting.service import IncidentService
from monitor.clock import FakeClock
from monitor.collectors.base import SourceHealth
from monitor.collectors.common import Intake
from monitor.collectors.registry import watch_health
from monitor.config.alerting import AlertingConfig
from monitor.errors import DeliveryError
from monitor.metrics import PipelineMetrics
from monitor.storage import open_store
from tests.alerting.fakes import V
from tests.monitor.collectors.conftest import make_harness

from .conftest import LEXICON, ROOT, free_port, have

RULES = ROOT / "dashboards" / "prometheus" / "rules.yml"
RULE_TESTS = ROOT / "dashboards" / "prometheus" / "rules_test.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"
GRAFANA = ROOT / "dashboards" / "grafana" / "crisiswatch.json"
DOC = ROOT / "docs" / "metrics.md"
METRIC = re.compile(r"\bcrisiswatch_[a-z_]+")


def documented() -> set[str]:
    return set(re.findall(r"`(crisiswatch_[a-z_]+)`", DOC.read_text()))


def base(name: str) -> str:
    """A series name without the suffixes Prometheus adds to counters and histograms."""
    return re.sub(r"_(bucket|sum|count|created)$", "", name)


def grafana_exprs() -> list[str]:
    dash = json.loads(GRAFANA.read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def test_every_registered_metric_is_documented_with_its_labels(tmp_path: Path) -> None:
    async def names() -> dict[str, list[str]]:
        from monitor.app import App
        from monitor.clock import SystemClock
        from monitor.config import parse_config
        from monitor.storage import open_store

        from .conftest import wall_config_doc

        cfg = parse_config(wall_config_doc(tmp_path))
        store = await open_store(cfg.storage.url)
        app = App(cfg, SystemClock(), store)
        try:
            out: dict[str, list[str]] = {}
            for collector in list(app.registry._collector_to_names):
                for m in collector.collect():
                    suffix = "_total" if m.type == "counter" else ""
                    out[m.name + suffix] = list(getattr(collector, "_labelnames", ()))
            return out
        finally:
            await app.close()
            await store.close()

    registered = asyncio.run(names())
    doc = DOC.read_text()
    missing = sorted(set(registered) - documented())
    assert missing == [], f"document these in docs/metrics.md: {missing}"
    for name, labels in registered.items():
        line = next(x for x in doc.splitlines() if x.startswith(f"| `{name}` |"))
        for label in labels:
            assert f"`{label}`" in line, f"{name}: label {label} not documented"


def test_rules_and_dashboard_use_only_documented_metrics() -> None:
    used = set(METRIC.findall(RULES.read_text()))
    for expr in grafana_exprs():
        used |= set(METRIC.findall(expr))
    assert {base(n) for n in used} - documented() == set()


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def alert_rules() -> list[dict[str, Any]]:
    return [r for r in rules() if "alert" in r]


def test_rules_cover_the_required_alerts() -> None:
    alerts = {r["alert"] for r in alert_rules()}
    assert {
        "CrisiswatchDown",
        "CrisiswatchSourceStale",
        "CrisiswatchOutboxStuck",
        "CrisiswatchCrisisScoreHigh",
        "CrisiswatchUnhealthy",
        "CrisiswatchCheckpointNotSaved",
    } <= alerts


def test_every_rule_keeps_instance_and_job() -> None:
    """Two deployments in one Prometheus were merged into one page that did not say which to
    fix (`sum by (policy)`), or one's source matched the other's (`and on (source)`)."""
    for rule in rules():
        for clause in re.findall(r"\b(?:by|on)\s*\(([^)]*)\)", rule["expr"]):
            labels = {x.strip() for x in clause.split(",")}
            assert {"instance", "job"} <= labels, (
                f"{rule.get('alert', rule.get('record'))}: {clause}"
            )


def test_every_alert_has_a_runbook_section_and_names_its_instance() -> None:
    runbook = RUNBOOK.read_text()
    for rule in alert_rules():
        name, notes = rule["alert"], rule["annotations"]
        assert notes["runbook"] == f"docs/runbook.md#{name.lower()}", name
        assert f"\n## {name}\n" in runbook, f"docs/runbook.md: no section {name}"
        assert "$labels.instance" in notes["description"], name


def test_the_shipped_rule_scenarios_pass() -> None:
    """dashboards/prometheus/rules_test.yml: two deployments in one Prometheus, restarts,
    recoveries, normal lag, the health and checkpoint gauges."""
    promtool = have("promtool")
    out = subprocess.run(
        [promtool, "test", "rules", str(RULE_TESTS)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_grafana_dashboard_is_importable() -> None:
    dash: dict[str, Any] = json.loads(GRAFANA.read_text())
    assert dash["uid"] == "crisiswatch" and dash["title"] and dash["schemaVersion"] >= 30
    assert [i["name"] for i in dash["__inputs"]] == ["DS_PROMETHEUS"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        if p["type"] != "row":
            assert p["targets"] and p["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
    text = json.dumps(dash)
    for needed in ("crisiswatch_crisis_score", "crisiswatch_incidents", "crisiswatch_outbox"):
        assert needed in text


def test_grafana_shows_one_deployment_at_a_time() -> None:
    """Two deployments scraped by one Prometheus were summed into one line per panel."""
    dash: dict[str, Any] = json.loads(GRAFANA.read_text())
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["instance"]["multi"] is False
    assert "$instance" in variables["topic"]["query"]["query"]
    for expr in grafana_exprs():
        selectors = re.findall(r"\b(?:crisiswatch_[a-z_]+|up)\{([^}]*)\}", expr)
        assert selectors and all('instance="$instance"' in s for s in selectors), expr
        for clause in re.findall(r"\bby \(([^)]*)\)", expr):
            assert "instance" in clause, expr
    text = json.dumps(dash)
    # what backs a critical alert or shows a loss has a panel
    for needed in (
        "crisiswatch_health_problems",
        "crisiswatch_checkpoint_last_success_timestamp_seconds",
        "crisiswatch_escalation_owed",
        "crisiswatch_dead_letters_dropped_total",
        "crisiswatch_hub_dropped_messages_total",
        "crisiswatch_wall_clients",
        "crisiswatch_wall_disconnects_total",
        "crisiswatch_collector_dropped_total",
        "crisiswatch_collector_shed_requests_total",
        "crisiswatch_notifications_given_up_total",
    ):
        assert needed in text, needed


def test_promtool_accepts_the_rules() -> None:
    promtool = have("promtool")
    out = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


@pytest.mark.integration
async def test_a_real_prometheus_scrapes_the_running_service(
    app_factory: Any, tmp_path: Path
) -> None:
    prometheus = have("prometheus")
    async with app_factory(speed=120, **LEXICON) as run, aiohttp.ClientSession() as http:
        target = run.url.removeprefix("http://")
        port = free_port()
        cfg = tmp_path / "prometheus.yml"
        cfg.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(RULES)],
                    "scrape_configs": [
                        {"job_name": "crisiswatch", "static_configs": [{"targets": [target]}]}
                    ],
                }
            )
        )
        proc = subprocess.Popen(
            [
                prometheus,
                f"--config.file={cfg}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "prometheus.log").open("wb"),
        )
        api = f"http://127.0.0.1:{port}/api/v1"

        async def query(q: str) -> list[dict[str, Any]]:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{api}/query", params={"query": q}) as r:
                    if r.status == 200:
                        result: list[dict[str, Any]] = (await r.json())["data"]["result"]
                        return result
            return []

        try:
            up: list[dict[str, Any]] = []
            mentions: list[dict[str, Any]] = []
            for _ in range(150):
                assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
                up = await query('up{job="crisiswatch"}')
                mentions = await query("sum(crisiswatch_mentions_total)")
                if up and mentions and float(mentions[0]["value"][1]) > 0:
                    break
                await asyncio.sleep(0.2)
            assert up and up[0]["value"][1] == "1"
            assert mentions and float(mentions[0]["value"][1]) > 0
            score = await query("crisiswatch_crisis_score")
            assert {s["metric"]["topic"] for s in score} <= {t.name for t in run.app.config.topics}
            async with http.get(f"{api}/rules") as r:
                groups = (await r.json())["data"]["groups"]
            assert {g["name"] for g in groups} == {"crisiswatch-service", "crisiswatch-crisis"}
            assert all(rule["health"] != "err" for g in groups for rule in g["rules"])
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def exported(registry: CollectorRegistry) -> list[dict[str, str]]:
    """The series a scrape of `registry` yields, as promtool input series held for an hour."""
    text = generate_latest(registry).decode()
    out = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out.append({"series": f"{s.name}{{{labels}}}", "values": f"{s.value}+0x60"})
    return out


# What Prometheus adds to every series it scrapes: the alerts must keep them (two deployments
# in one Prometheus were merged into one alert that did not say which to fix).
TARGET = {"instance": "crisiswatch:8080", "job": "crisiswatch"}


def scraped(series: str) -> str:
    """`series` as Prometheus stores it, with the labels of the target it was scraped from.

    >>> scraped('x_total{receiver="pager"}')
    'x_total{instance="crisiswatch:8080",job="crisiswatch",receiver="pager"}'
    """
    name, _, labels = series.partition("{")
    own = labels.removesuffix("}")
    target = ",".join(f'{k}="{v}"' for k, v in TARGET.items())
    return f"{name}{{{target}{',' if own else ''}{own}}}"


def promtool_test(tmp_path: Path, series: list[Any], alert: str, expected: list[Any]) -> None:
    """`promtool test rules`: after 20 minutes of `series` (scraped from one target), `alert`
    fires exactly as `expected`."""
    promtool = have("promtool")
    spec = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{**s, "series": scraped(s["series"])} for s in series],
                "alert_rule_test": [
                    {"eval_time": "20m", "alertname": alert, "exp_alerts": expected}
                ],
            }
        ],
    }
    path = tmp_path / "rules_test.yml"
    path.write_text(yaml.safe_dump(spec))
    out = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_source_stale_alert_fires_on_what_the_service_exports(tmp_path: Path) -> None:
    # the metrics of a real registry: one source silent for an hour, one delivering
    registry = CollectorRegistry()
    PipelineMetrics(registry)
    quiet, busy = SourceHealth("rss", "rss"), SourceHealth("demo", "demo")
    for t in range(0, 600, 10):
        quiet.seen(float(t), now=float(t))
        busy.seen(float(t), now=float(t))
    clock = FakeClock(600.0)
    busy.seen(600.0, now=600.0)
    watch_health(registry, lambda: [quiet, busy], clock)
    clock.advance(3600.0)
    busy.seen(clock.now(), now=clock.now())
    promtool_test(
        tmp_path,
        exported(registry),
        "CrisiswatchSourceStale",
        [
            {
                "exp_labels": {"severity": "warning", "source": "rss", **TARGET},
                "exp_annotations": {
                    "summary": "source rss is stale",
                    "description": "No mention from rss on crisiswatch:8080 for 1h 0m 10s."
                    " Check /healthz `sources` (connected, last_error, lag_seconds) and whether"
                    " the origin is really quiet.",
                    "runbook": "docs/runbook.md#crisiswatchsourcestale",
                },
            }
        ],
    )


def test_source_down_fires_for_a_pull_source_that_keeps_failing_to_connect(
    tmp_path: Path,
) -> None:
    """A wrong port looked healthy: `bluesky connected:false reconnects:11`, no alert (QA,
    twelfth session). A replay that played out and a push endpoint are not down."""
    h = make_harness(FakeClock(0.0))
    ctx, registry = h.ctx, h.registry
    down, up, replay, push = (Intake(n, n, ctx) for n in ("bluesky", "mqtt", "replay", "http"))
    down.set_connected(False)
    for _ in range(11):
        down.reconnected()
    up.set_connected(True)
    up.reconnected()  # it lost its connection once, and got it back
    replay.set_connected(True)
    replay.set_connected(False)  # played out
    push.set_connected(False)  # token unset: /healthz says so
    promtool_test(
        tmp_path,
        exported(registry),
        "CrisiswatchSourceDown",
        [
            {
                "exp_labels": {"severity": "warning", "source": "bluesky", **TARGET},
                "exp_annotations": {
                    "summary": "source bluesky is down",
                    "description": "bluesky on crisiswatch:8080 has not been connected for 5m"
                    " and keeps reconnecting; /healthz `sources[].last_error` names the last"
                    " connection error.",
                    "runbook": "docs/runbook.md#crisiswatchsourcedown",
                },
            }
        ],
    )


def test_pages_owed_fires_while_the_escalation_waits_for_the_store(tmp_path: Path) -> None:
    """A level-2 page waited 74 s on a dead database with /healthz ok, the outbox empty and no
    alert (resilience QA, twelfth session): what the escalation holds is exported now."""
    registry = CollectorRegistry()
    svc = IncidentService(AlertingConfig(), FakeClock(0.0), emit_nothing, registry=registry)
    svc._backlog.append(cast(Any, object()))  # one event kept: emit failed
    promtool_test(
        tmp_path,
        exported(registry),
        "CrisiswatchPagesOwed",
        [
            {
                "exp_labels": {"severity": "critical", **TARGET},
                "exp_annotations": {
                    "summary": "escalation pages are owed on crisiswatch:8080",
                    "description": "1 escalation steps or events on crisiswatch:8080 wait for"
                    " the store; pages go out when it recovers. /healthz `escalation` and"
                    " `problems` say which; fix the store.",
                    "runbook": "docs/runbook.md#crisiswatchpagesowed",
                },
            }
        ],
    )


async def emit_nothing(n: Any) -> None:
    return None


def test_outbox_stuck_fires_when_nothing_was_ever_delivered(tmp_path: Path) -> None:
    # a receiver that never worked since the start: the delivered counter has no series at all
    registry = CollectorRegistry()
    metrics = DeliveryMetrics(registry)
    metrics.pending.set(3)
    metrics.oldest_pending.set(1200.0)
    series = exported(registry)
    assert not [s for s in series if "notifications_delivered" in s["series"]]
    promtool_test(
        tmp_path,
        series,
        "CrisiswatchOutboxStuck",
        [
            {
                "exp_labels": {"severity": "critical", **TARGET},
                "exp_annotations": {
                    "summary": "notification outbox on crisiswatch:8080 is stuck",
                    "description": "The oldest pending notification on crisiswatch:8080 is 20m"
                    " 0s old and nothing was delivered for 5m. Check /healthz `outbox`"
                    " (store_error, failing_receivers, receivers.*.last_error) and the log for"
                    " 'delivery of ... failed'.",
                    "runbook": "docs/runbook.md#crisiswatchoutboxstuck",
                },
            }
        ],
    )
    # and stays quiet while other notifications are being delivered
    delivering = {
        "series": 'crisiswatch_notifications_delivered_total{action="trigger",receiver="pager"}',
        "values": "0+1x60",
    }
    promtool_test(tmp_path, [*series, delivering], "CrisiswatchOutboxStuck", [])


def samples(registry: CollectorRegistry) -> dict[str, float]:
    text = generate_latest(registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


def page_reaching_nobody(severity: int) -> list[dict[str, str]]:
    """What a real runner exports around a page that reaches nobody (the demo config: nobody
    has a receiver) at minute 5, as promtool input series."""
    registry = CollectorRegistry()
    clock = FakeClock(1_768_384_800.0)

    async def emit(n: Notification) -> None:
        raise AssertionError(f"nobody can receive {n}")

    runner = EscalationRunner(AlertingConfig(), clock, emit, registry=registry)
    before = samples(registry)
    book = IncidentBook()
    for event in book.on_verdict(V("acme", 0, 0.9, severity, onset="open"), clock.now()):
        asyncio.run(runner.handle(event))
    return stepped(before, samples(registry))


def stepped(
    before: dict[str, float], after: dict[str, float], minute: int = 5
) -> list[dict[str, str]]:
    """promtool input series for an event at `minute`: each series at its value `before` (none
    if it had no series yet), then at its value `after` for the rest of the hour."""
    return [
        {"series": n, "values": f"{before.get(n, '_')}x{minute - 1} {v}x{60 - minute}"}
        for n, v in after.items()
    ]


def held(series: list[dict[str, str]]) -> list[dict[str, str]]:
    """The same series without the event: their first value held for the hour."""
    return [{**s, "values": s["values"].split("x")[0] + "x60"} for s in series]


def test_a_sev1_page_that_reached_nobody_fires_a_critical_alert(tmp_path: Path) -> None:
    series = page_reaching_nobody(1)
    expected = {
        "exp_labels": {"severity": "critical", "policy": "default", **TARGET},
        "exp_annotations": {
            "summary": "a SEV1 page of policy default reached nobody",
            "description": "An escalation of policy default on crisiswatch:8080 went over every"
            " level and could page nobody (users without receivers, unstaffed schedules); it"
            " retries, but nobody is on it. Find the incident: log line 'incident <id>: nobody"
            " reachable at any level of the policy' or the open SEV1 incidents (GET"
            " /api/v1/incidents?state=open); its timeline says who was skipped and why.",
            "runbook": "docs/runbook.md#crisiswatchsev1pagereachednobody",
        },
    }
    promtool_test(tmp_path, series, "CrisiswatchSev1PageReachedNobody", [expected])
    promtool_test(tmp_path, series, "CrisiswatchPageReachedNobody", [])


def test_a_lower_page_that_reached_nobody_fires_a_warning(tmp_path: Path) -> None:
    series = page_reaching_nobody(3)
    promtool_test(tmp_path, series, "CrisiswatchSev1PageReachedNobody", [])
    expected = {
        "exp_labels": {"severity": "warning", "policy": "default", **TARGET},
        "exp_annotations": {
            "summary": "a page of policy default reached nobody",
            "description": "An escalation of policy default on crisiswatch:8080 went over every"
            " level and could page nobody (everyone in quiet hours, users without receivers,"
            " unstaffed schedules); it retries, but nobody is on it. Find the incident: log"
            " line 'incident <id>: nobody reachable at any level of the policy' or the open"
            " incidents (GET /api/v1/incidents?state=open); its timeline says who was skipped"
            " and why.",
            "runbook": "docs/runbook.md#crisiswatchpagereachednobody",
        },
    }
    promtool_test(tmp_path, series, "CrisiswatchPageReachedNobody", [expected])
    # and nothing fires while every page reaches somebody
    promtool_test(tmp_path, held(series), "CrisiswatchPageReachedNobody", [])


def test_a_notification_given_up_fires_a_critical_alert(tmp_path: Path) -> None:
    """A page refused for good (HTTP 400) at minute 5, from a real outbox: nothing alerted,
    since the receiver then works again and never fails 5 times in a row (QA, tenth session)."""

    before, after = paging(tmp_path, [DeliveryError("pager", "HTTP 400", recoverable=False)])
    name = 'crisiswatch_notifications_given_up_total{reason="failed",receiver="pager"}'
    assert before[name] == 0.0 and after[name] == 1.0
    series = stepped(before, after)
    expected = {
        "exp_labels": {"severity": "critical", "receiver": "pager", "reason": "failed", **TARGET},
        "exp_annotations": {
            "summary": "a notification to pager was given up (failed)",
            "description": "A notification to receiver pager on crisiswatch:8080 will never be"
            " delivered (failed): someone may not have been paged. The service log line 'gave"
            " up on' names the incident and the error; tell the on-call by hand.",
            "runbook": "docs/runbook.md#crisiswatchnotificationgivenup",
        },
    }
    promtool_test(tmp_path, series, "CrisiswatchNotificationGivenUp", [expected])
    promtool_test(tmp_path, held(series), "CrisiswatchNotificationGivenUp", [])


def paging(
    tmp_path: Path, answers: list[DeliveryError | None]
) -> tuple[dict[str, float], dict[str, float]]:
    """What a real outbox (a store of its own) exports before and after it sends one page to
    `pager`, whose answers are `answers` in turn (an error raised, or None: accepted), each
    retry as soon as it is due."""
    db = Path(tempfile.mkdtemp(dir=tmp_path)) / "o.db"

    class Pager:
        async def send(self, n: Notification) -> None:
            if (error := answers.pop(0)) is not None:
                raise error

    async def run() -> tuple[dict[str, float], dict[str, float]]:
        registry = CollectorRegistry()
        store = await open_store(f"sqlite:///{db}")
        clock = FakeClock(0.0)
        outbox = Outbox(store, {"pager": Pager()}, clock, registry)
        before = samples(registry)
        await outbox.enqueue(Notification("n1", "pager", "trigger", "k", {"id": "i1"}, 0.0))
        while answers:
            await outbox.tick()
            clock.advance(600.0)
        await store.close()
        return before, samples(registry)

    return asyncio.run(run())


def test_receiver_failing_fires_on_the_first_failures_after_a_start(tmp_path: Path) -> None:
    """The in-memory consecutive-failures gauge came back at 1 after a restart and needed 5
    failures, one per backoff (~30 min on a dead pager); the alert now reads the attempt
    counters, whose first series after a start counts at once. A failure retried into a
    success is no alert."""
    failing = DeliveryError("pager", "HTTP 503", recoverable=True, status=503)
    before, after = paging(tmp_path, [failing])
    expected = {
        "exp_labels": {"severity": "warning", "receiver": "pager", **TARGET},
        "exp_annotations": {
            "summary": "receiver pager on crisiswatch:8080 keeps failing",
            "description": "Every delivery attempt to receiver pager on crisiswatch:8080 in the"
            " last 15m failed (about 1). /healthz `outbox.receivers.pager.last_error` and the"
            " log line 'delivery of ... to pager failed' say why; if it is your pager, page by"
            " hand meanwhile.",
            "runbook": "docs/runbook.md#crisiswatchreceiverfailing",
        },
    }
    # at minute 10, so that it is 10 minutes old when promtool looks (15 minutes: over)
    promtool_test(tmp_path, stepped(before, after, 10), "CrisiswatchReceiverFailing", [expected])
    before, after = paging(tmp_path, [failing, None])
    assert after['crisiswatch_notification_attempts_total{receiver="pager",result="ok"}'] == 1
    promtool_test(tmp_path, stepped(before, after), "CrisiswatchReceiverFailing", [])


# Series that exist only after their event (a page, an ack, a dead letter, ...): a labelled
# counter has no series before its first increment. (`crisiswatch_incidents` is not among them:
# it starts at 0 for every state and severity.) And the collectors' own series, which the demo,
# not a collector, does not have.
EVENT_DRIVEN = {
    "crisiswatch_duplicate_mentions_total",
    "crisiswatch_collector_dead_letters_total",
    "crisiswatch_collector_duplicates_total",
    "crisiswatch_collector_connected",
    "crisiswatch_collector_reconnects_total",
    "crisiswatch_collector_dropped_total",  # an MQTT source's, an HTTP ingest endpoint's
    "crisiswatch_collector_shed_requests_total",
    "crisiswatch_escalations_total",
    "crisiswatch_notifications_enqueued_total",
    "crisiswatch_notifications_delivered_total",
    "crisiswatch_notification_attempts_total",
    "crisiswatch_notifications_given_up_total",
    "crisiswatch_notification_delivery_seconds",
    "crisiswatch_receiver_consecutive_failures",
    "crisiswatch_incident_actions_total",
    "crisiswatch_incident_action_rejections_total",
}


@pytest.mark.integration
async def test_rules_and_dashboard_query_series_the_running_service_exports(
    app_factory: Any,
) -> None:
    used = set(METRIC.findall(RULES.read_text()))
    for expr in grafana_exprs():
        used |= set(METRIC.findall(expr))
    async with app_factory(speed=120, **LEXICON) as run, aiohttp.ClientSession() as http:
        names: set[str] = set()
        for _ in range(150):
            async with http.get(run.url + "/metrics") as r:
                assert r.status == 200
                assert r.headers["Content-Type"].startswith("text/plain; version=")
                text = await r.text()
            names = {base(s.name) for f in text_string_to_metric_families(text) for s in f.samples}
            if "crisiswatch_crisis_score" in names:
                break
            await asyncio.sleep(0.2)
    silent = {base(n) for n in used} - names - EVENT_DRIVEN
    assert silent == set(), f"queried but never exported: {sorted(silent)}"


@pytest.mark.integration
async def test_every_registered_metric_is_exported_by_the_running_service(
    app_factory: Any,
) -> None:
    # a metric defined (and documented) but never set shows nothing in Grafana, silently
    async with app_factory(speed=120, **LEXICON) as run, aiohttp.ClientSession() as http:
        registered = {
            m.name + ("_total" if m.type == "counter" else "")
            for collector in list(run.app.registry._collector_to_names)
            for m in collector.collect()
        }
        names: set[str] = set()
        for _ in range(150):
            async with http.get(run.url + "/metrics") as r:
                text = await r.text()
            names = {base(s.name) for f in text_string_to_metric_families(text) for s in f.samples}
            if "crisiswatch_crisis_score" in names:
                break
            await asyncio.sleep(0.2)
    never = {n for n in registered - EVENT_DRIVEN if n not in names and base(n) not in names}
    assert never == set(), f"registered but never set: {sorted(never)}"


def test_batch_duration_buckets_resolve_an_overloaded_pipeline() -> None:
    # histogram_quantile reports the top finite bucket for anything above it
    registry = CollectorRegistry()
    PipelineMetrics(registry).batch_seconds.observe(4.0)
    name = "crisiswatch_batch_duration_seconds_bucket"
    assert registry.get_sample_value(name, {"le": "1.0"}) == 0
    assert registry.get_sample_value(name, {"le": "5.0"}) == 1
