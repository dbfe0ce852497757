"""Errors that explain what YAML did to a value, and paths the operator actually wrote."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from monitor.config import load_config, parse_config
from monitor.config.base import yaml_number_hint
from monitor.errors import ConfigError


def _load(tmp_path: Path, text: str) -> ConfigError:
    p = tmp_path / "c.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    return ei.value


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("1e4", "detection.calm_seconds: expected a number: YAML reads 1e4 as text; "
                "write 10000 or 1.0e+4"),
        ("1E4", "detection.calm_seconds: expected a number: YAML reads 1E4 as text; "
                "write 10000 or 1.0e+4"),
        ("2.5e3", "detection.calm_seconds: expected a number: YAML reads 2.5e3 as text; "
                  "write 2500 or 2.5e+3"),
    ],
)  # fmt: skip
def test_an_exponent_yaml_reads_as_text_is_explained(
    tmp_path: Path, written: str, message: str
) -> None:
    err = _load(tmp_path, f"topics: []\ndetection: {{calm_seconds: {written}}}\n")
    assert str(err) == message


@pytest.mark.parametrize(
    ("written", "suggested"),
    [
        ("5e-05", ["0.00005", "5.0e-05"]),
        ("1e-7", ["0.0000001", "1.0e-7"]),
        ("1e20", ["1.0e+20"]),
        ("-3E2", ["-300", "-3.0E+2"]),
        ("1_000e-2", ["10", "1000.0e-2"]),
        ("2.5e3", ["2500", "2.5e+3"]),
    ],
)
def test_every_suggested_spelling_is_one_yaml_reads_as_the_number(
    written: str, suggested: list[str]
) -> None:
    assert isinstance(yaml.safe_load(written), str)
    hint = yaml_number_hint(written)
    assert hint is not None
    forms = hint.split("; write ", 1)[1].split(" or ")
    assert [f.lower() for f in forms] == [f.lower() for f in suggested]
    for form in forms:
        value = yaml.safe_load(form)
        assert isinstance(value, int | float) and not isinstance(value, bool), form
        assert value == float(written.replace("_", ""))


def test_pseudo_count_written_as_python_prints_it(tmp_path: Path) -> None:
    err = _load(tmp_path, "topics: []\ndetection: {pseudo_count_per_second: 5e-05}\n")
    assert str(err) == (
        "detection.pseudo_count_per_second: expected a number: YAML reads 5e-05 as text; "
        "write 0.00005 or 5.0e-05"
    )


def test_the_suggested_spellings_are_numbers(tmp_path: Path) -> None:
    for written in ("10000", "1.0e+4"):
        p = tmp_path / "c.yaml"
        p.write_text(f"topics: []\ndetection: {{calm_seconds: {written}}}\n")
        assert load_config(p).detection.calm_seconds == 10000.0


def test_a_list_of_numbers_explains_too(tmp_path: Path) -> None:
    err = _load(tmp_path, "topics: []\ndetection: {scales_seconds: [0, 3.6e3]}\n")
    assert str(err) == (
        "detection.scales_seconds[1]: expected a number: YAML reads 3.6e3 as text; "
        "write 3600 or 3.6e+3"
    )


@pytest.mark.parametrize(("written", "shown"), [("NO", "false"), ("on", "true"), ("off", "false")])
def test_a_word_yaml_reads_as_a_boolean_is_explained(
    tmp_path: Path, written: str, shown: str
) -> None:
    err = _load(
        tmp_path, f"topics: [{{name: acme, query: acme, labels: {{country: {written}}}}}]\n"
    )
    assert str(err) == (
        f"topics[0].labels.country: Input should be a valid string (got {shown}; YAML reads "
        "unquoted no/off as false and yes/on as true: quote it)"
    )


def test_a_number_for_a_quoted_choice_is_explained(tmp_path: Path) -> None:
    err = _load(tmp_path, "topics: []\nsources: {mqtt: {protocol: 5}}\n")
    assert str(err) == (
        "sources.mqtt.protocol: Input should be '3.1.1' or '5' (got 5; YAML reads it as a "
        "number: quote it)"
    )


def test_a_number_out_of_numeric_choices_gets_no_quoting_advice(tmp_path: Path) -> None:
    err = _load(tmp_path, "topics: []\nsources: {mqtt: {qos: 3}}\n")
    assert "quote" not in str(err)


def test_a_boolean_for_a_number_keeps_the_documented_message() -> None:
    with pytest.raises(ConfigError, match=r"^server\.port: expected a number \(got true\)$"):
        parse_config({"topics": [], "server": {"port": True}})


# --- finding 5: the demo's schedules name the demo's people --------------------------------


def test_users_alone_say_the_schedule_is_the_builtin_demo() -> None:
    with pytest.raises(ConfigError) as ei:
        parse_config({"topics": [], "alerting": {"users": [{"name": "ana"}]}})
    assert str(ei.value) == (
        "alerting.schedules[0].layers[0].users[0]: unknown user 'lead' "
        "(the built-in demo schedule; define alerting.schedules too)"
    )


def test_a_demo_team_policy_and_route_say_so_too() -> None:
    users = [{"name": n} for n in ("ana", "ben", "carla", "dan", "lead")]
    schedules = [{"name": "s", "layers": [{"users": ["ana"]}]}]
    with pytest.raises(ConfigError, match=r"\(the built-in demo team; define alerting\.teams"):
        parse_config({"topics": [], "alerting": {"users": users, "schedules": schedules}})
    policies = [{"name": "p", "levels": [{"targets": ["user:ana"]}]}]
    with pytest.raises(ConfigError, match=r"\(the built-in demo route; define alerting\.route"):
        parse_config({"topics": [], "alerting": {"policies": policies}})


def test_a_schedule_the_operator_wrote_gets_no_demo_hint() -> None:
    schedules = [{"name": "s", "layers": [{"users": ["zoe"]}]}]
    with pytest.raises(ConfigError) as ei:
        parse_config({"topics": [], "alerting": {"schedules": schedules}})
    assert str(ei.value) == "alerting.schedules[0].layers[0].users[0]: unknown user 'zoe'"


# --- finding 6: a list whose entries are all commented out ---------------------------------


def test_a_list_with_every_entry_commented_out_says_empty(tmp_path: Path) -> None:
    err = _load(tmp_path, "topics: []\nalerting:\n  users:\n  #  - name: ana\n  #  - name: ben\n")
    assert str(err) == (
        "alerting.users: empty: give at least one entry, write [] for none, "
        "or remove the key for the default"
    )


_OWN_TEAM = (
    "  users: [{name: ana}]\n  schedules: []\n"
    "  policies: [{name: default, levels: [{targets: ['user:ana']}]}]\n"
)


@pytest.mark.parametrize(
    ("path", "written", "as_advised"),
    [
        ("alerting.teams", f"{_OWN_TEAM}  teams:\n", f"{_OWN_TEAM}  teams: []\n"),
        ("alerting.inhibit_rules", "  inhibit_rules:\n", "  inhibit_rules: []\n"),
        (
            "alerting.inhibit_rules[0].equal",
            "  inhibit_rules:\n    - equal:\n",
            "  inhibit_rules:\n    - equal: []\n",
        ),
    ],
)
def test_an_empty_list_whose_default_is_not_empty_offers_the_empty_list(
    tmp_path: Path, path: str, written: str, as_advised: str
) -> None:
    # removing `teams` would bring back the demo team, which names the demo's users
    err = _load(tmp_path, f"topics: []\nalerting:\n{written}")
    assert str(err) == (
        f"{path}: empty: give at least one entry, write [] for none, "
        "or remove the key for the default"
    )
    p = tmp_path / "advised.yaml"
    p.write_text(f"topics: []\nalerting:\n{as_advised}")
    load_config(p)  # the advice works


def test_a_commented_out_list_whose_default_is_empty_means_empty(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(
        "topics: []\nalerting:\n  default_receivers:\n  #  - pager\n  silences:\n"
        "delivery:\n  receivers:\n  #  - {name: console, type: log}\n"
    )
    cfg = load_config(p)
    assert cfg.alerting.default_receivers == [] and cfg.delivery.receivers == []


def test_a_list_that_needs_an_entry_says_so() -> None:
    with pytest.raises(ConfigError) as ei:
        parse_config({"topics": [], "sources": {"mqtt": {"topics": None}}})
    assert str(ei.value) == "sources.mqtt.topics: empty: give at least one entry or remove the key"
    with pytest.raises(ConfigError) as ei:
        parse_config({"topics": None})
    assert str(ei.value) == "topics: empty: give at least one entry, or write [] for none"


# --- the tag pydantic adds for a tagged union is not part of the path ----------------------


def test_a_receiver_error_path_is_the_one_the_operator_wrote() -> None:
    with pytest.raises(ConfigError) as ei:
        parse_config(
            {"topics": [], "delivery": {"receivers": [{"name": "a", "type": "alertmanager",
                                                        "url": "127.0.0.1:9093"}]}}
        )  # fmt: skip
    assert ei.value.path == "delivery.receivers[0].url"
