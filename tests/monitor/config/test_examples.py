"""The documented examples fit together, and config/examples/ loads, so neither can rot."""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from pydantic import BaseModel

from alerting.escalation import EscalationState, Plan, Trigger, step
from monitor.cli import main
from monitor.config import Config, load_config
from monitor.config.receivers import check_secrets

ROOT = Path(__file__).resolve().parents[3]
PRODUCTION = ROOT / "config" / "examples" / "production.yaml"
DOCS = ["docs/alerting.md", "docs/collectors.md", "docs/delivery.md"]


def _yaml_blocks(doc: Path) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)


def test_the_yaml_examples_of_the_docs_make_one_valid_config(tmp_path: Path) -> None:
    blocks = [b for d in DOCS for b in _yaml_blocks(ROOT / d)]
    assert len(blocks) == len(DOCS)  # one per doc: each is a whole section
    # the routes of docs/alerting.md name these topics
    topics = "topics:\n  - {name: acme, query: acme}\n  - {name: internal-test, query: test}\n"
    p = tmp_path / "docs.yaml"
    p.write_text(topics + "".join(blocks), encoding="utf-8")
    cfg = load_config(p)  # before: alerting.default_receivers[0]: undefined receiver 'pagerduty'
    assert cfg.alerting.default_receivers == ["pager"]


def _env_in(node: object) -> set[str]:
    """The values of every ``*_env`` key under `node` (a config section, or a list of them)."""
    if isinstance(node, list):
        return set().union(*(_env_in(n) for n in node)) if node else set()
    if not isinstance(node, BaseModel):
        return set()
    names: set[str] = set()
    for key in type(node).model_fields:
        value = getattr(node, key)
        if key.endswith("_env") and isinstance(value, str):
            names.add(value)
        else:
            names |= _env_in(value)
    return names


def _needed_env(cfg: Config) -> set[str]:
    """What the service reads at start-up: delivery's secrets and the enabled sources'."""
    sources = [getattr(cfg.sources, k) for k in type(cfg.sources).model_fields]
    enabled = [s for s in sources if getattr(s, "enabled", False)]
    return _env_in(cfg.delivery) | _env_in(enabled)


@pytest.fixture
def production_env(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    cfg = load_config(PRODUCTION)
    names = _needed_env(cfg)
    for name in names:
        value = "https://hooks.slack.com/services/T0/B0/x" if "SLACK" in name else f"s3cret-{name}"
        monkeypatch.setenv(name, value)
    return names


def test_the_production_example_passes_check_config(
    production_env: set[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", str(PRODUCTION)]) == 0
    assert capsys.readouterr().out.strip().endswith(": ok (4 topics)")
    cfg = load_config(PRODUCTION)
    check_secrets(cfg.delivery, os.environ)  # every secret the service resolves at start-up


def test_the_production_example_is_the_promised_shape() -> None:
    cfg = load_config(PRODUCTION)
    assert cfg.sources.mqtt.enabled and cfg.sources.http.enabled
    assert not cfg.sources.demo.enabled
    assert cfg.storage.url.startswith("postgresql://")
    assert urlsplit(cfg.storage.url).password is None  # it comes from PGPASSWORD
    assert {r.type for r in cfg.delivery.receivers} >= {"pagerduty", "slack", "email"}
    assert len(cfg.alerting.schedules) == 2 and len(cfg.alerting.silences) >= 1
    assert all(t.query for t in cfg.topics)


def test_the_production_example_lists_every_variable_it_names(production_env: set[str]) -> None:
    """The header says which variables to set: it must stay in step with the `*_env` keys."""
    header = PRODUCTION.read_text(encoding="utf-8").split("\ntopics:")[0]
    listed = set(re.findall(r"\b(CW_[A-Z0-9_]+)", header))
    assert listed == production_env


def test_check_config_with_secrets_refuses_what_run_would(
    production_env: set[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """check-config said ok to a file whose secrets `run` then refused (QA)."""
    assert main(["check-config", "--secrets", str(PRODUCTION)]) == 0
    monkeypatch.setenv("CW_SLACK_WEBHOOK", "not-a-url")
    assert main(["check-config", str(PRODUCTION)]) == 0  # the file alone is fine
    assert main(["check-config", "--secrets", str(PRODUCTION)]) == 2
    err = capsys.readouterr().err
    assert "delivery.receivers[" in err and "CW_SLACK_WEBHOOK does not hold" in err
    assert "not-a-url" not in err


def test_check_config_with_secrets_reports_a_missing_source_secret(
    production_env: set[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`run` starts without a source's secret (that feature off), so --secrets passed while
    HTTP ingest would answer 503 to everything (QA, eleventh session)."""
    monkeypatch.delenv("CW_INGEST_TOKEN")
    assert main(["check-config", "--secrets", str(PRODUCTION)]) == 2
    assert "sources.http.token_env: environment variable CW_INGEST_TOKEN is not set" in (
        capsys.readouterr().err
    )


def test_check_config_with_secrets_names_every_missing_one(
    production_env: set[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """It stopped at the first: an operator fixed one variable per run (QA)."""
    monkeypatch.delenv("CW_INGEST_TOKEN")
    monkeypatch.delenv("CW_PD_ROUTING_KEY_AMER")
    assert main(["check-config", "--secrets", str(PRODUCTION)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "CW_PD_ROUTING_KEY_AMER" in err[0] and "CW_INGEST_TOKEN" in err[1]


def test_the_production_example_at_night_wakes_the_lead_for_a_sev1_only() -> None:
    """What the example's backstop comment promises, on its own escalation plan."""
    plan = Plan.from_config(load_config(PRODUCTION).alerting)
    night = datetime(2026, 12, 8, 3, 0, tzinfo=ZoneInfo("Europe/Berlin")).timestamp()

    def first_step(severity: int) -> list[str]:
        labels = {"region": "emea", "brand": "acme", "topic": "acme"}
        inc = {"id": "inc-1", "key": "acme/volume", "topic": "acme", "kind": "volume",
               "severity": severity, "state": "triggered", "labels": labels}  # fmt: skip
        _, cmds = step(EscalationState.new("inc-1", plan), Trigger(inc), night)
        return [str(c) for c in cmds if str(c).startswith(("notify", "log level"))]

    assert first_step(3) == [
        "notify trigger slack-crisis",
        "log level-1 skipped",
        "log level-2 paged",
    ]
    assert first_step(1) == [
        "notify trigger slack-crisis",
        "log level-1 paged",
        "notify trigger pager-lead lead",
    ]
