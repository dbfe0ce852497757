"""Metrics contract: documented names, rules that promtool accepts, a Grafana dashboard built on
documented metrics, and a real Prometheus (Debian package) scraping the running service."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from .conftest import LEXICON, ROOT, free_port, have

RULES = ROOT / "dashboards" / "prometheus" / "rules.yml"
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


def test_rules_cover_the_required_alerts() -> None:
    doc = yaml.safe_load(RULES.read_text())
    alerts = {r["alert"] for g in doc["groups"] for r in g["rules"]}
    assert {
        "CrisiswatchDown",
        "CrisiswatchSourceStale",
        "CrisiswatchOutboxStuck",
        "CrisiswatchCrisisScoreHigh",
    } <= alerts


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
