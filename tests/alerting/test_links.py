from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerting.links import LinkClaim, LinkError, LinkSigner, sign, verify
from alerting.notification import Notification

ids = st.text(st.characters(blacklist_characters="|", blacklist_categories=["Cs"]), max_size=40)


@given(ids, ids, st.sampled_from(["acknowledge", "resolve", "snooze"]))
def test_roundtrip_any_text(incident: str, who: str, action: str) -> None:
    claim = LinkClaim(action, incident, 100, who, "60")  # type: ignore[arg-type]
    assert verify([b"k"], sign(b"k", claim), now=99.9) == claim


def test_every_byte_of_the_token_is_protected() -> None:
    token = sign(b"k", LinkClaim("acknowledge", "inc-1", 100, "ana"))
    for i in range(len(token)):
        flipped = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
        with pytest.raises(LinkError):
            verify([b"k"], flipped, now=0.0)


def test_rotation_old_links_keep_working() -> None:
    old = LinkSigner([b"old"], base_url="http://h")
    new = LinkSigner([b"new", b"old"], base_url="http://h")
    token = old.url(LinkClaim("resolve", "i", 50)).rsplit("/", 1)[1]
    assert new.verify(token, 0.0).incident_id == "i"
    with pytest.raises(LinkError, match="bad signature"):
        LinkSigner([b"new"], base_url="http://h").verify(token, 0.0)


@pytest.mark.parametrize("token", ["", ".", "abc", "abc.def", "!!!.???"])
def test_garbage_is_refused(token: str) -> None:
    with pytest.raises(LinkError):
        verify([b"k"], token, 0.0)


def test_pipe_in_fields_is_rejected_at_signing() -> None:
    with pytest.raises(ValueError):
        sign(b"k", LinkClaim("acknowledge", "a|b", 1))


def test_decorate_adds_links_to_triggers_only() -> None:
    s = LinkSigner([b"k"], base_url="http://h/", ttl_seconds=3600, snooze_seconds=900)
    n = Notification("n", "pager", "trigger", "k", {"id": "inc-1"}, 0.0, recipient="ana")
    d = s.decorate(n, now=100.0)
    assert sorted(d.links) == ["ack", "resolve", "snooze"]
    assert all(u.startswith("http://h/act/") for u in d.links.values())
    snooze = s.verify(d.links["snooze"].rsplit("/", 1)[1], now=3699.0)
    assert (snooze.who, snooze.param, snooze.expires_at) == ("ana", "900", 3700)
    assert s.decorate(d, now=100.0) is d  # already has links
    resolve = Notification("n2", "pager", "resolve", "k", {"id": "inc-1"}, 0.0)
    assert s.decorate(resolve, now=0.0) is resolve
    with pytest.raises(ValueError):
        LinkSigner([], base_url="x")
