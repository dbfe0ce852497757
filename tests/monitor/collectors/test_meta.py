"""Meta webhooks: handshake, HMAC-SHA256 over the raw body, mapping of feed/IG/Messenger events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from monitor.collectors.common import Secret
from monitor.collectors.meta import Deleted, MetaWebhook, Rejected, Skipped, meta_events, sign
from monitor.config.sources import MetaWebhookConfig
from monitor.model import Mention

from .conftest import Harness, make_harness

SECRET = "app-secret-for-tests"
PATH = "/api/v1/webhooks/meta"

PAGE_FEED: dict[str, Any] = {
    "object": "page",
    "entry": [
        {
            "id": "1001",
            "time": 1714564800,
            "changes": [
                {
                    "field": "feed",
                    "value": {
                        "from": {"id": "u1", "name": "Ann Example"},
                        "item": "comment",
                        "verb": "add",
                        "post_id": "1001_55",
                        "comment_id": "55_901",
                        "parent_id": "1001_55",
                        "message": "Three weeks and no refund. Unacceptable.",
                        "created_time": 1714564790,
                    },
                },
                {
                    "field": "feed",
                    "value": {
                        "from": {"id": "u2", "name": "Bob"},
                        "item": "comment",
                        "verb": "add",
                        "post_id": "1001_55",
                        "comment_id": "55_902",
                        "parent_id": "55_901",
                        "message": "same here",
                        "created_time": 1714564795,
                    },
                },
                {
                    "field": "feed",
                    "value": {
                        "item": "reaction",
                        "verb": "add",
                        "post_id": "1001_55",
                        "reaction_type": "angry",
                    },
                },
                {
                    "field": "feed",
                    "value": {
                        "item": "comment",
                        "verb": "remove",
                        "post_id": "1001_55",
                        "comment_id": "55_800",
                    },
                },
            ],
        }
    ],
}

INSTAGRAM: dict[str, Any] = {
    "object": "instagram",
    "entry": [
        {
            "id": "17841400000000000",
            "time": 1714564800,
            "changes": [
                {
                    "field": "comments",
                    "value": {
                        "from": {"id": "ig1", "username": "carla"},
                        "media": {"id": "1790000000", "media_product_type": "FEED"},
                        "id": "17865799348089039",
                        "text": "your app ate my data",
                    },
                }
            ],
        }
    ],
}

MESSENGER: dict[str, Any] = {
    "object": "page",
    "entry": [
        {
            "id": "1001",
            "time": 1714564800123,
            "messaging": [
                {
                    "sender": {"id": "psid-7"},
                    "recipient": {"id": "1001"},
                    "timestamp": 1714564799000,
                    "message": {"mid": "m_abc", "text": "hello? anyone?"},
                },
                {"sender": {"id": "psid-7"}, "recipient": {"id": "1001"}, "read": {"watermark": 1}},
            ],
        }
    ],
}


def test_page_feed_mapping() -> None:
    out = list(meta_events(PAGE_FEED))
    a, b = out[0], out[1]
    assert isinstance(a, Mention) and isinstance(b, Mention)
    assert (a.id, a.kind, a.in_reply_to, a.created_at) == (
        "55_901",
        "comment",
        "1001_55",
        1714564790.0,
    )
    assert (b.kind, b.in_reply_to, b.author.handle) == ("reply", "55_901", "Bob")
    assert a.channel == "facebook" and a.url == "https://www.facebook.com/1001_55"
    assert isinstance(out[2], Skipped)
    assert out[3] == Deleted(("meta", "55_800"))


def test_instagram_and_messenger_mapping() -> None:
    (ig,) = meta_events(INSTAGRAM)
    assert isinstance(ig, Mention)
    assert (ig.channel, ig.kind, ig.author.handle, ig.in_reply_to) == (
        "instagram",
        "comment",
        "carla",
        "1790000000",
    )
    dm, receipt = meta_events(MESSENGER)
    assert isinstance(dm, Mention) and isinstance(receipt, Skipped)
    assert (dm.kind, dm.created_at, dm.text) == ("dm", 1714564799.0, "hello? anyone?")


def test_bad_shapes_are_rejections_not_crashes() -> None:
    assert isinstance(next(meta_events([1])), Rejected)
    (r,) = meta_events({"object": "whatsapp_business_account", "entry": []})
    assert isinstance(r, Rejected) and r.error.reason == "unknown_source"
    outs = list(
        meta_events(
            {
                "object": "page",
                "entry": [
                    {"changes": [1, {"field": "feed", "value": {"item": "post", "message": 5}}]},
                    3,
                ],
            }
        )
    )
    assert [o.error.reason for o in outs if isinstance(o, Rejected)] == [
        "wrong_type",
        "missing_field",
        "wrong_type",
    ]


@pytest.fixture
async def env() -> AsyncIterator[tuple[Harness, TestClient[web.Request, web.Application]]]:
    h = make_harness()
    hook = MetaWebhook(
        MetaWebhookConfig(enabled=True), h.ctx, verify_token=Secret("vt"), app_secret=Secret(SECRET)
    )
    app = web.Application()
    app.add_routes(hook.routes())
    client = TestClient(TestServer(app))
    await client.start_server()
    yield h, client
    await client.close()


async def test_handshake(env: tuple[Harness, Any]) -> None:
    h, client = env
    q = {"hub.mode": "subscribe", "hub.verify_token": "vt", "hub.challenge": "1158201444"}
    r = await client.get(PATH, params=q)
    assert (r.status, await r.text()) == (200, "1158201444")
    r = await client.get(PATH, params={**q, "hub.verify_token": "nope"})
    assert (r.status, await r.json()) == (403, {"error": "forbidden"})
    assert (
        h.metric("crisiswatch_collector_auth_failures_total", source="meta", kind="verify_token")
        == 1
    )


async def test_signed_post_is_processed_and_bad_signature_is_401(env: tuple[Harness, Any]) -> None:
    h, client = env
    # signature is over the exact bytes sent, whitespace included
    raw = json.dumps(PAGE_FEED, indent=1).encode()
    good = {"X-Hub-Signature-256": sign(SECRET.encode(), raw), "Content-Type": "application/json"}
    r = await client.post(PATH, data=raw, headers=good)
    assert r.status == 200
    assert await r.json() == {
        "accepted": 2,
        "duplicate": 0,
        "deleted": 1,
        "skipped": 1,
        "rejected": 0,
    }
    assert [m.id for m in h.submitted] == ["55_901", "55_902"]
    assert h.retracted == [("meta", "55_800")]
    # Meta redelivers: no duplicate mention, and the delete is neither passed on nor counted
    # twice (QA: it was)
    r = await client.post(PATH, data=raw, headers=good)
    assert await r.json() == {
        "accepted": 0,
        "duplicate": 3,
        "deleted": 0,
        "skipped": 1,
        "rejected": 0,
    }
    assert len(h.submitted) == 2 and h.retracted == [("meta", "55_800")]
    assert h.metric("crisiswatch_collector_deletes_total", source="meta") == 1

    tampered = raw.replace(b"refund", b"REFUND")
    for headers in (
        {"X-Hub-Signature-256": sign(SECRET.encode(), raw)},
        {"X-Hub-Signature-256": sign(b"other", tampered)},
        {"X-Hub-Signature-256": "sha1=" + "0" * 40},
        {},
    ):
        r = await client.post(PATH, data=tampered, headers=headers)
        assert (r.status, await r.json()) == (401, {"error": "bad signature"})
    assert (
        h.metric("crisiswatch_collector_auth_failures_total", source="meta", kind="signature") == 4
    )
    assert len(h.submitted) == 2


async def test_signed_garbage_is_dead_lettered_once_and_answered_200(
    env: tuple[Harness, Any],
) -> None:
    # QA: it was a 400, which Meta retries for good; and each redelivery was a dead letter
    h, client = env
    signed = {"X-Hub-Signature-256": ""}
    for raw in (
        b'{"object": "page", "entry": [{',
        json.dumps({**PAGE_FEED, "object": "x"}).encode(),
    ):
        signed["X-Hub-Signature-256"] = sign(SECRET.encode(), raw)
        for key in ("rejected", "duplicate"):  # delivered, then redelivered
            r = await client.post(PATH, data=raw, headers=signed)
            assert r.status == 200
            assert (await r.json())[key] == 1
    assert h.letters.reasons == {"malformed_json": 1, "unknown_source": 1}
    assert h.letters.items[0][3] == b'{"object": "page", "entry": [{'


async def test_a_signature_that_is_not_utf8_is_a_401_not_a_500(env: tuple[Harness, Any]) -> None:
    h, client = env
    raw = json.dumps(PAGE_FEED).encode()
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: x\r\n".encode()
        + b"X-Hub-Signature-256: sha256=\xff\xfe\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(raw) + raw)
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    writer.close()
    await writer.wait_closed()
    assert status == 401
    assert (
        h.metric("crisiswatch_collector_auth_failures_total", source="meta", kind="signature") == 1
    )
    assert h.submitted == []


async def test_an_oversized_unsigned_body_is_refused_without_a_dead_letter(
    env: tuple[Harness, Any],
) -> None:
    """A body over the limit is never read, so its signature is unknown: a dead letter (a
    store row) per request let anyone fill the store (QA, tenth session)."""
    h, client = env
    r = await client.post(PATH, data=b"x" * (4 * 1024 * 1024 + 1))
    assert (r.status, await r.json()) == (413, {"error": "too large"})
    assert h.letters.items == []


async def test_a_redelivery_while_the_first_delivery_runs_deletes_nothing_twice() -> None:
    """Meta retries a body it has no 2xx for yet, usually while the first request still runs:
    the retry saw the body as new and deleted and dead-lettered a second time (review)."""
    h = make_harness()
    slow = asyncio.Event()
    retract = h.ctx.retract

    async def slow_retract(key: tuple[str, str]) -> None:
        await slow.wait()
        assert retract is not None
        await retract(key)

    h.ctx.retract = slow_retract
    hook = MetaWebhook(
        MetaWebhookConfig(enabled=True), h.ctx, verify_token=Secret("vt"), app_secret=Secret(SECRET)
    )
    app = web.Application()
    app.add_routes(hook.routes())
    raw = json.dumps(PAGE_FEED).encode()
    headers = {"X-Hub-Signature-256": sign(SECRET.encode(), raw)}
    async with TestClient(TestServer(app)) as client:
        first = asyncio.create_task(client.post(PATH, data=raw, headers=headers))
        for _ in range(100):  # until the first delivery waits in its delete
            await asyncio.sleep(0.01)
            if h.submitted:
                break
        second = await client.post(PATH, data=raw, headers=headers)
        slow.set()
        one = await first
        assert (one.status, second.status) == (200, 200)
        assert (await one.json())["deleted"] == 1 and (await second.json())["deleted"] == 0
    assert h.retracted == [("meta", "55_800")]
