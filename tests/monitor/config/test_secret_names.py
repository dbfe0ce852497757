"""``*_env`` keys name environment variables; a secret pasted into one is refused at parse time
without being repeated, and resolved secrets are checked (empty, not a URL) by name only."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import aiohttp
import pytest
from pydantic import BaseModel

from monitor.clock import FakeClock
from monitor.config import Config, load_config, parse_config
from monitor.config.base import Section
from monitor.config.receivers import DeliveryConfig, check_secrets, secret
from monitor.errors import ConfigError

HEX = "e93facc04764012d7bfb002500d5d1a6"  # a PagerDuty routing key, as QA pasted it
PASTED = [
    HEX,
    "T0001/B0002/XXXXXXXXXXXXXXXXXXXXXXXX",  # a Slack webhook path
    "xoxb-1234-5678-abcdefgh",  # a Slack token
    "dGhpcyBpcyBhIHNlY3JldCB0b2tlbg==",  # base64
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc",  # an API key with underscores
    "hunter2 with spaces",
]


def _sections(**delivery_and_sources: Any) -> dict[str, Any]:
    return {"topics": [], **delivery_and_sources}


# (a config holding `value` in one `*_env` key, the config path that must be named)
CASES: list[tuple[str, Any]] = [
    (
        "delivery.receivers[0].routing_key_env",
        lambda v: _sections(
            delivery={"receivers": [{"name": "p", "type": "pagerduty", "routing_key_env": v}]}
        ),
    ),
    (
        "delivery.receivers[0].url_env",
        lambda v: _sections(delivery={"receivers": [{"name": "s", "type": "slack", "url_env": v}]}),
    ),
    (
        "delivery.receivers[0].secret_env",
        lambda v: _sections(
            delivery={
                "receivers": [
                    {"name": "h", "type": "webhook", "url": "https://h.example/x", "secret_env": v}
                ]
            }
        ),
    ),
    (
        "delivery.receivers[0].password_env",
        lambda v: _sections(
            delivery={
                "receivers": [
                    {"name": "m", "type": "email", "sender": "a@example.org", "password_env": v}
                ]
            }
        ),
    ),
    ("delivery.links.secret_env", lambda v: _sections(delivery={"links": {"secret_env": v}})),
    (
        "delivery.api.tokens[0].token_env",
        lambda v: _sections(delivery={"api": {"tokens": [{"name": "ana", "token_env": v}]}}),
    ),
    (
        "delivery.api.pagerduty_webhook_secret_env",
        lambda v: _sections(delivery={"api": {"pagerduty_webhook_secret_env": v}}),
    ),
    ("sources.mqtt.password_env", lambda v: _sections(sources={"mqtt": {"password_env": v}})),
    ("sources.http.token_env", lambda v: _sections(sources={"http": {"token_env": v}})),
    (
        "sources.meta.verify_token_env",
        lambda v: _sections(sources={"meta": {"verify_token_env": v}}),
    ),
    ("sources.meta.app_secret_env", lambda v: _sections(sources={"meta": {"app_secret_env": v}})),
    ("sources.mastodon.token_env", lambda v: _sections(sources={"mastodon": {"token_env": v}})),
]


def _env_fields(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[str]:
    """The names of every ``*_env`` field anywhere in the config tree."""
    out: set[str] = set()
    if model in seen:
        return out
    seen.add(model)
    for name, field in model.model_fields.items():
        if name.endswith("_env"):
            out.add(f"{model.__name__}.{name}")
        stack: list[Any] = [field.annotation]
        while stack:  # through list[...], X | None, Annotated[...] and unions
            ann = stack.pop()
            if isinstance(ann, type) and issubclass(ann, Section):
                out |= _env_fields(ann, seen)
            stack.extend(get_args(ann))
    return out


def test_every_env_key_of_the_tree_is_covered_here() -> None:
    fields = {f.rsplit(".", 1)[1] for f in _env_fields(Config, set())}
    covered = {path.rsplit(".", 1)[1] for path, _ in CASES}
    assert fields == covered


@pytest.mark.parametrize(("path", "build"), CASES, ids=[p for p, _ in CASES])
@pytest.mark.parametrize("pasted", PASTED, ids=range(len(PASTED)))
def test_a_secret_in_an_env_key_is_refused_without_echoing_it(
    path: str, build: Any, pasted: str
) -> None:
    with pytest.raises(ConfigError) as ei:
        parse_config(build(pasted))
    assert ei.value.path == path
    assert ei.value.value is None
    assert pasted not in str(ei.value)
    assert "environment variable" in ei.value.reason


@pytest.mark.parametrize(("path", "build"), CASES, ids=[p for p, _ in CASES])
def test_a_number_in_an_env_key_is_refused_without_echoing_it(path: str, build: Any) -> None:
    with pytest.raises(ConfigError) as ei:
        parse_config(build(123456789012345))  # an all-digit key, which YAML reads as a number
    assert ei.value.path == path
    assert "123456789012345" not in str(ei.value)


@pytest.mark.parametrize(
    "name", ["CW_PD_ROUTING_KEY", "META_APP_SECRET", "pd_key_2", "AWS_SECRET_ACCESS_KEY", "K"]
)
def test_ordinary_variable_names_pass(name: str) -> None:
    for _, build in CASES:
        parse_config(build(name))


def test_the_qa_case_from_a_file(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(
        "topics: []\n"
        "delivery:\n"
        "  receivers:\n"
        f"    - {{name: p, type: pagerduty, routing_key_env: {HEX}}}\n"
    )
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert str(ei.value) == (
        "delivery.receivers[0].routing_key_env: looks like a secret, not the name of an "
        "environment variable: put the value in the environment and name the variable here"
    )


def test_an_empty_variable_is_empty_not_unset() -> None:
    with pytest.raises(ConfigError, match=r"^x\.token_env: environment variable T is empty$"):
        secret({"T": ""}, "T", "x.token_env")
    with pytest.raises(ConfigError, match=r"^x\.token_env: environment variable T is empty$"):
        secret({"T": "  \n"}, "T", "x.token_env")
    with pytest.raises(ConfigError, match=r"^x\.token_env: environment variable T is not set$"):
        secret({}, "T", "x.token_env")


@pytest.mark.parametrize(
    "value", ["not-a-url", "hooks.slack.com/services/T/B/x", "ftp://h/x", "https://"]
)
def test_a_url_env_that_holds_no_url_is_an_error_naming_the_variable(value: str) -> None:
    cfg = DeliveryConfig.model_validate(
        {"receivers": [{"name": "slack", "type": "slack", "url_env": "CW_SLACK_WEBHOOK"}]}
    )
    with pytest.raises(ConfigError) as ei:
        check_secrets(cfg, {"CW_SLACK_WEBHOOK": value})
    assert str(ei.value) == (
        "delivery.receivers[0].url_env: environment variable CW_SLACK_WEBHOOK does not hold an "
        "absolute http:// or https:// URL"
    )  # the variable's name, never its value


async def test_the_service_refuses_a_slack_url_env_that_holds_no_url_at_start_up() -> None:
    from alerting.notifiers import build_notifiers

    cfg = DeliveryConfig.model_validate(
        {"receivers": [{"name": "p", "type": "slack", "url_env": "CW_SLACK_WEBHOOK"}]}
    )
    async with aiohttp.ClientSession() as s:
        with pytest.raises(ConfigError, match="CW_SLACK_WEBHOOK does not hold an absolute") as ei:
            build_notifiers(
                cfg.receivers, s, env={"CW_SLACK_WEBHOOK": "not-a-url"}, clock=FakeClock()
            )
        assert "not-a-url" not in str(ei.value)
        ok = build_notifiers(
            cfg.receivers,
            s,
            env={"CW_SLACK_WEBHOOK": "https://hooks.slack.com/services/T/B/x"},
            clock=FakeClock(),
        )
        assert list(ok) == ["p"]


def test_check_secrets_names_config_paths() -> None:
    cfg = DeliveryConfig.model_validate(
        {
            "receivers": [
                {"name": "console", "type": "log"},
                {"name": "p", "type": "pagerduty", "routing_key_env": "PD"},
                {"name": "m", "type": "email", "sender": "a@example.org", "password_env": "PW"},
            ],
            "links": {"secret_env": "LINK"},
            "api": {"tokens": [{"name": "ana", "token_env": "TOK"}]},
        }
    )
    env = {"PD": "k", "PW": "pw", "LINK": "s", "TOK": "t"}
    check_secrets(cfg, env)
    for var, path in [
        ("PD", "delivery.receivers[1].routing_key_env"),
        ("PW", "delivery.receivers[2].password_env"),
        ("LINK", "delivery.links.secret_env"),
        ("TOK", "delivery.api.tokens[0].token_env"),
    ]:
        with pytest.raises(ConfigError) as ei:
            check_secrets(cfg, {k: v for k, v in env.items() if k != var})
        assert ei.value.path == path
        assert str(ei.value) == f"{path}: environment variable {var} is not set"


# --- an empty `*_env` means no credential where none is allowed ------------------------------


def test_an_empty_optional_env_key_means_no_credential() -> None:
    cfg = parse_config(
        _sections(
            sources={
                "mqtt": {"enabled": True, "host": "h", "topics": ["x"], "password_env": ""},
                "mastodon": {"token_env": ""},
            },
            delivery={
                "receivers": [
                    {"name": "m", "type": "email", "sender": "a@example.org", "password_env": ""}
                ],
                "links": {"secret_env": ""},
                "api": {"pagerduty_webhook_secret_env": ""},
            },
        )
    )
    assert cfg.sources.mqtt.password_env is None and cfg.sources.mastodon.token_env is None
    assert cfg.delivery.links.secret_env is None
    assert cfg.delivery.api.pagerduty_webhook_secret_env is None
    check_secrets(cfg.delivery, {})  # nothing to resolve


@pytest.mark.parametrize(
    "path", ["delivery.receivers[0].routing_key_env", "sources.http.token_env"]
)
def test_an_empty_required_env_key_says_it_is_empty(path: str) -> None:
    build = dict(CASES)[path]
    with pytest.raises(ConfigError) as ei:
        parse_config(build(""))
    assert str(ei.value) == f"{path}: empty: name the environment variable that holds the secret"


# --- a short secret that passes as a name is not repeated when it resolves to nothing --------


@pytest.mark.parametrize("pasted", ["hunter2", "Tr0ub4dor_and_3", "pd_key_2"])
def test_an_unset_variable_with_an_unusual_name_is_not_named(pasted: str) -> None:
    cfg = DeliveryConfig.model_validate(
        {
            "receivers": [
                {"name": "m", "type": "email", "sender": "a@example.org", "password_env": pasted}
            ],
            "links": {"secret_env": pasted},
        }
    )
    with pytest.raises(ConfigError) as ei:
        check_secrets(cfg, {})
    assert str(ei.value) == (
        "delivery.receivers[0].password_env: the variable this key names is not set"
    )
    with pytest.raises(ConfigError) as ei:
        secret({pasted: " "}, pasted, "delivery.links.secret_env")
    assert str(ei.value) == "delivery.links.secret_env: the variable this key names is empty"
    with pytest.raises(ConfigError) as ei:
        secret({pasted: "x"}, pasted, "delivery.receivers[0].url_env")
    assert pasted not in str(ei.value)


def test_check_config_secrets_does_not_repeat_a_short_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.cli import main

    monkeypatch.delenv("Tr0ub4dor_and_3", raising=False)
    p = tmp_path / "c.yaml"
    p.write_text("topics: []\ndelivery:\n  links: {secret_env: Tr0ub4dor_and_3}\n")
    assert main(["check-config", str(p), "--secrets"]) == 2
    out = capsys.readouterr()
    assert "Tr0ub4dor" not in out.out + out.err
    assert "delivery.links.secret_env: the variable this key names is not set" in out.err


# --- the "looks like a secret" check refuses keys, not long or run-together names ------------


@pytest.mark.parametrize(
    "name",
    [
        "MICROSOFT365SMTP_PASSWORD",
        "PagerDutyRoutingKey2",
        "APPSETTING_PagerDutyRoutingKey1",  # Azure App Service
        "AWS_SECRET_ACCESS_KEY",
        "CW_PD_ROUTING_KEY_EMEA",
        "SLACK_WEBHOOK_URL_2",
        "GITHUB_TOKEN",
        "CRISISWATCHPRODUCTIONPAGERDUTYROUTINGKEY",  # one all-letter part of 40
        "CW_DEADBEEF_KEY",  # a short hex-looking word
    ],
)
def test_real_world_variable_names_pass(name: str) -> None:
    for _, build in CASES:
        parse_config(build(name))


@pytest.mark.parametrize(
    "pasted",
    [
        HEX,
        HEX.upper(),
        "xoxb-2401512841-7291620581623-Yh3KqPz8mWnR5tLc2VbX9dFa",  # a Slack bot token
        "q7Rk2ZxVb9LmT4wHc8NpY3sJd5Fg",  # a base64 (url-safe) random token
        "ghp_16C7e42F292c6912E7710c838347Ae178B4a",  # a GitHub token
    ],
)
def test_pasted_keys_are_refused(pasted: str) -> None:
    for path, build in CASES:
        with pytest.raises(ConfigError) as ei:
            parse_config(build(pasted))
        assert ei.value.path == path and pasted not in str(ei.value)
