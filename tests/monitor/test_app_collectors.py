"""The collectors as the composition root wires them: mentions sent over HTTP and over MQTT
reach the pipeline of a running App (counted in /metrics), bad ones are dead-lettered."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import aiohttp
import aiomqtt
import pytest

from monitor.decode import encode_mention
from monitor.model import Author, Mention

pytestmark = pytest.mark.integration

TOKEN = "ingest-test-token"


def mention(i: int, source: str) -> dict[str, Any]:
    m = Mention(
        id=f"{source}-{i}",
        source=source,
        channel="x",
        text=f"acme support helped me today #{i}",
        created_at=time.time() - 5,
        author=Author(id=f"a{i}", handle=f"@a{i}", followers=10),
        lang="en",
    )
    return encode_mention(m)


async def counted(http: aiohttp.ClientSession, url: str, source: str) -> float:
    async with http.get(url + "/metrics") as r:
        text = await r.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("crisiswatch_mentions_total{") and f'source="{source}"' in line
    )


async def test_http_ingest_and_mqtt_feed_the_running_pipeline(
    app_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CW_TEST_INGEST_TOKEN", TOKEN)
    prefix = f"cw-test/{uuid.uuid4().hex[:8]}"
    sources = {
        "demo": {"enabled": False},
        "http": {"enabled": True, "token_env": "CW_TEST_INGEST_TOKEN"},
        "mqtt": {
            "enabled": True,
            "client_id": f"cw-app-{uuid.uuid4().hex[:8]}",
            "topics": [f"{prefix}/in/#"],
            # the publisher subscribes to the hub as well; /healthz must not count it as a wall
            "publish": {
                "enabled": True,
                "topic_prefix": f"{prefix}/out",
                "client_id": f"cw-pub-{uuid.uuid4().hex[:8]}",
            },
        },
    }
    async with app_factory(speed=1.0, sources=sources) as run, aiohttp.ClientSession() as http:
        # HTTP: NDJSON with one bad line -> per-item results, the good ones counted
        lines = [json.dumps(mention(i, "http")) for i in range(20)] + ['{"id": 1}']
        async with http.post(
            run.url + "/api/v1/mentions",
            data="\n".join(lines),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"},
        ) as r:
            assert r.status == 207, await r.text()
        async with http.post(run.url + "/api/v1/mentions", json=mention(0, "http")) as r:
            assert r.status == 401  # no token

        # MQTT: published to the real broker, collected by the app's MQTT source
        await asyncio.sleep(1.0)  # let the source subscribe
        async with aiomqtt.Client("127.0.0.1", 1883) as client:
            for i in range(30):
                await client.publish(f"{prefix}/in/x", json.dumps(mention(i, "mqtt")), qos=1)
            await client.publish(f"{prefix}/in/x", b"\xff not json", qos=1)

        deadline = asyncio.get_running_loop().time() + 20
        while asyncio.get_running_loop().time() < deadline:
            if (
                await counted(http, run.url, "http") == 20
                and await counted(http, run.url, "mqtt") == 30
            ):
                break
            await asyncio.sleep(0.2)
        assert await counted(http, run.url, "http") == 20
        assert await counted(http, run.url, "mqtt") == 30
        async with http.get(run.url + "/healthz") as r:
            health = await r.json()
        names = {s["name"] for s in health["sources"]}
        assert {"mqtt", "http"} <= names, names
        assert health["wall_clients"] == 0
        assert run.app.dead_letters.count >= 2  # the bad HTTP line and the bad MQTT payload
