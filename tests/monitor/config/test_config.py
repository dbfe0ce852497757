from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from monitor.config import load_config, parse_config
from monitor.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]


def topics(*queries: str) -> list[dict[str, str]]:
    return [{"name": f"t{i}", "query": q} for i, q in enumerate(queries)]


def test_the_shipped_configs_are_valid() -> None:
    cfg = load_config(ROOT / "config" / "default.yaml")
    assert [t.name for t in cfg.topics] == ["acme", "globex", "initech"]
    assert cfg.sources.demo.enabled and cfg.server.port == 8080
    assert cfg.storage.url.startswith("sqlite:///var/")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"topics": topics("acme", "(acme OR globex")}, r"^topics\[1\]\.query: .*column \d+"),
        ({"topics": topics("acme"), "sever": {}}, r"^sever: unknown key$"),
        ({"topics": [{"name": "a", "query": "x", "qq": 1}]}, r"^topics\[0\]\.qq: unknown key$"),
        ({"topics": topics("a", "b") + topics("c")}, r"^topics\[2\]\.name: duplicate topic 't0'$"),
        ({"topics": topics("a"), "server": {"port": 70000}}, r"^server\.port: .*70000"),
        (
            {"topics": topics("a"), "aggregation": {"bucket_seconds": 0}},
            r"^aggregation\.bucket_seconds: ",
        ),
        (
            {"topics": topics("a"), "detection": {"weekly_halflife_weeks": 0}},
            r"^detection\.weekly_halflife_weeks: .*0",
        ),
        ({"topics": "acme"}, r"^topics: "),
        ({}, r"^topics: Field required$"),  # not "(got {})": the mapping is not the value
        ({"topics": [{"name": "a"}]}, r"^topics\[0\]\.query: Field required$"),
        (
            {"topics": topics("a"), "aggregation": {"bucket_seconds": float("inf")}},
            r"^aggregation\.bucket_seconds: .*finite.*inf",
        ),
        (
            {"topics": topics("a"), "detection": {"scales_seconds": [0, float("nan")]}},
            r"^detection\.scales_seconds\[1\]: .*finite.*nan",
        ),
        (
            {"topics": topics("a"), "detection": {"open_threshold": 0.2, "close_threshold": 0.5}},
            r"^detection\.close_threshold: 0\.5 must not exceed open_threshold \(0\.2\)$",
        ),
        (
            {"topics": topics("a"), "detection": {"scales_seconds": [0, -60]}},
            r"^detection\.scales_seconds: .*got \[0\.0, -60\.0\]$",
        ),
        (
            {"topics": topics("a"), "detection": {"scale_weights": [1, 1]}},
            r"^detection\.scale_weights: .*scales_seconds \(4\), got \[1\.0, 1\.0\]$",
        ),
        (
            {"topics": topics("a"), "detection": {"scale_weights": [1, -1, 1, 1]}},
            r"^detection\.scale_weights: must not be negative .*got \[1\.0, -1\.0, 1\.0, 1\.0\]$",
        ),
    ],
)
def test_errors_name_the_path_and_the_value(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


def test_yaml_syntax_errors_name_the_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("topics:\n  - name: a\n   query: [\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: invalid YAML at line \d+"):
        load_config(p)


def test_check_config_exits_2_with_one_line(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("topics:\n  - {name: a, query: acme}\n  - {name: b, query: '(acme OR x'}\n")
    run = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "check-config", str(p)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: topics[1].query: ")
    ok = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "check-config", "config/default.yaml"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert ok.returncode == 0 and "ok (3 topics)" in ok.stdout


def test_a_section_with_every_key_commented_out_means_its_defaults(tmp_path: Path) -> None:
    # YAML reads a key with nothing under it as null: the user left the defaults
    p = tmp_path / "c.yaml"
    p.write_text(
        "topics: [{name: a, query: acme}]\n"
        "aggregation:\n"
        "  # bucket_seconds: 60\n"
        "sources:\n"
        "  demo:\n"
        "alerting:\n"
        "  route:\n"
        "server:\n"
    )
    assert load_config(p) == parse_config({"topics": [{"name": "a", "query": "acme"}]})


def test_a_required_key_left_null_is_still_an_error_naming_it(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("topics:\naggregation:\n")
    with pytest.raises(ConfigError, match=r"^topics: "):
        load_config(p)


def test_a_config_that_is_not_utf8_is_one_config_error(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_bytes("topics: [{name: a, query: acme, title: Größe}]\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"c.yaml: not UTF-8 text at line 1"):
        load_config(p)


def test_a_key_given_twice_is_an_error_naming_the_line(tmp_path: Path) -> None:
    # PyYAML keeps the last one silently: the first `topics` list would go unwatched
    p = tmp_path / "c.yaml"
    p.write_text(
        "topics: [{name: a, query: acme}]\n"
        "server: {port: 8081}\n"
        "topics: [{name: b, query: globex}]\n"
    )
    with pytest.raises(ConfigError, match=r"c.yaml: duplicate key 'topics' at line 3"):
        load_config(p)
    nested = tmp_path / "n.yaml"
    nested.write_text("topics: [{name: a, query: acme}]\nserver:\n  port: 1\n  port: 2\n")
    with pytest.raises(ConfigError, match=r"n.yaml: duplicate key 'port' at line 4"):
        load_config(nested)


@pytest.mark.parametrize(
    ("section", "values", "message"),
    [
        ("server", {"port": True}, r"^server\.port: expected a number \(got true\)$"),
        (
            "detection",
            {"calm_seconds": "7200"},
            r"^detection\.calm_seconds: expected a number \(got '7200'\)$",
        ),
        (
            "detection",
            {"sentiment_min_count": True},
            r"^detection\.sentiment_min_count: expected a number",
        ),
        (
            "detection",
            {"scales_seconds": [0, "60"]},
            r"^detection\.scales_seconds\[1\]: expected a number \(got '60'\)$",
        ),
        (
            "detection",
            {"repage": "yes"},
            r"^detection\.repage: expected true or false \(got 'yes'\)$",
        ),
        (
            "sources",
            {"demo": {"enabled": "off"}},
            r"^sources\.demo\.enabled: expected true or false \(got 'off'\)$",
        ),
    ],
)
def test_numbers_and_booleans_are_taken_only_as_written(
    section: str, values: dict[str, object], message: str
) -> None:
    """Lax parsing read `port: true` as port 1 and `"7200"` as 7200."""
    with pytest.raises(ConfigError, match=message):
        parse_config({"topics": topics("a"), section: values})
