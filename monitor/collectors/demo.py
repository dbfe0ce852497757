"""The embedded demo: a seeded, deterministic simulator of brand mention streams.

Every minute of every brand is generated from its own RNG seeded by (seed, brand, minute),
so any time range can be regenerated identically (mention ids included) — a restart
replays the same history and dedup makes the overlap invisible. Crises are scripted:
the first starts `first_crisis_after_seconds` after `origin`, then one every
`crisis_every_seconds`, rotating through the brands.

>>> from monitor.config.sources import DemoSourceConfig
>>> s = DemoScenario(DemoSourceConfig(), origin=1_700_000_000.0)
>>> a = s.minute("acme", 28_333_334)
>>> a == s.minute("acme", 28_333_334) and len(a) > 0
True
>>> s.crisis_at(1_700_000_000.0 + 200).brand
'acme'
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

from monitor.clock import Clock
from monitor.collectors.base import SourceHealth
from monitor.config.sources import DemoSourceConfig
from monitor.decode import format_time
from monitor.model import Author, Mention

log = logging.getLogger(__name__)

CHANNELS = ("x", "facebook", "instagram", "linkedin", "tiktok", "reddit", "news")
CHANNEL_WEIGHTS = np.array([0.34, 0.18, 0.14, 0.06, 0.12, 0.10, 0.06])
BRAND_WEIGHTS = (1.0, 0.6, 0.35, 0.5, 0.8)

EN_CALM = (
    "just picked up the new {b} phone, really happy with it",
    "anyone else using {b} for work? thinking about switching",
    "{b} support sorted my issue in five minutes, great service",
    "the {b} store downtown is busy today",
    "love the new {b} update, battery lasts much longer",
    "is the {b} event streaming tonight?",
    "not sure about the {b} price increase tbh",
    "my {b} order arrived a day late, a bit annoying",
    "{b} keynote was ok, nothing special",
    "#{b} fans, what do you think of the new colours?",
)
DE_CALM = (
    "Neues Handy von {b} ist da, bin echt zufrieden",
    "Der {b} Kundenservice war heute super freundlich",
    "Hat jemand Erfahrung mit {b}? Überlege zu wechseln",
    "Die {b} App läuft seit dem Update viel flüssiger",
    "Lieferung von {b} kam pünktlich, danke!",
    "{b} Preise sind schon wieder gestiegen, schade",
)
EN_CRISIS = (
    "{b} {term} again?! nothing works, this is a disaster",
    "seriously @{b} fix the {term}, I have been waiting for hours",
    "{b} {term} is all over the news, terrible handling",
    "never buying {b} again after this {term}",
    "is anyone else affected by the {b} {term}? so angry",
    "the {b} {term} cost me a whole day of work. awful",
)
DE_CRISIS = (
    "{b} {term} schon wieder, nichts funktioniert, einfach furchtbar",
    "Was ist los bei {b}? {term} und keiner sagt etwas, Skandal",
    "Nie wieder {b} nach diesem {term}, total enttäuscht",
)
TERMS = (("outage", "Störung"), ("recall", "Rückruf"), ("data breach", "Datenleck"))


@dataclass(frozen=True, slots=True)
class Crisis:
    brand: str
    start: float
    end: float
    term_en: str
    term_de: str

    def intensity(self, t: float) -> float:
        """0 outside, ramping up over the first quarter, fading over the last quarter."""
        if not self.start <= t < self.end:
            return 0.0
        span = self.end - self.start
        x = (t - self.start) / span
        return min(1.0, x / 0.25, (1.0 - x) / 0.25)


class DemoScenario:
    """Pure generator: (brand, minute) -> mentions. No I/O, no clock."""

    def __init__(self, config: DemoSourceConfig, origin: float) -> None:
        self.config, self.origin = config, origin
        rng = np.random.default_rng(config.seed)
        n_authors = 400
        self._followers = np.round(rng.lognormal(5.5, 1.8, n_authors)).astype(np.int64)
        self._verified = rng.random(n_authors) < 0.03

    def crisis_at(self, t: float) -> Crisis | None:
        c = self.config
        k = math.floor((t - self.origin - c.first_crisis_after_seconds) / c.crisis_every_seconds)
        if k < 0:
            return None
        start = self.origin + c.first_crisis_after_seconds + k * c.crisis_every_seconds
        term_en, term_de = TERMS[k % len(TERMS)]
        crisis = Crisis(
            c.brands[k % len(c.brands)], start, start + c.crisis_duration_seconds, term_en, term_de
        )
        return crisis if crisis.intensity(t) > 0 else None

    def rate(self, brand: str, t: float) -> float:
        """Expected mentions per minute: daily and weekly seasonality times brand size."""
        weight = BRAND_WEIGHTS[self.config.brands.index(brand) % len(BRAND_WEIGHTS)]
        hour = (t % 86400) / 3600
        daily = 1.0 + 0.5 * math.sin((hour - 9) / 24 * 2 * math.pi)  # peak mid-afternoon UTC
        weekday = int(t // 86400 + 3) % 7  # 0 = Monday (1970-01-01 was a Thursday)
        weekly = 0.7 if weekday >= 5 else 1.0
        return self.config.base_rate_per_minute * weight * daily * weekly

    def minute(self, brand: str, m: int) -> list[Mention]:
        """All mentions of `brand` created in minute `m` (epoch minutes), sorted by time."""
        t0 = m * 60.0
        seed = zlib.crc32(f"{self.config.seed}:{brand}:{m}".encode())
        rng = np.random.default_rng(seed)
        crisis = self.crisis_at(t0 + 30.0)
        boost = crisis.intensity(t0 + 30.0) if crisis and crisis.brand == brand else 0.0
        n = int(rng.poisson(self.rate(brand, t0) * (1.0 + 5.0 * boost)))
        offsets = np.sort(rng.random(n) * 60.0)
        channels = rng.choice(len(CHANNELS), size=n, p=CHANNEL_WEIGHTS)
        authors = rng.integers(0, len(self._followers), size=n)
        out: list[Mention] = []
        for i in range(n):
            german = rng.random() < 0.3
            negative_crisis = crisis is not None and rng.random() < 0.75 * boost
            tmpl: tuple[str, ...]
            if negative_crisis:
                assert crisis is not None
                tmpl = DE_CRISIS if german else EN_CRISIS
                term = crisis.term_de if german else crisis.term_en
            else:
                tmpl, term = (DE_CALM if german else EN_CALM), ""
            text = tmpl[int(rng.integers(len(tmpl)))].format(b=brand, term=term)
            a = int(authors[i])
            out.append(
                Mention(
                    id=f"{brand}-{m}-{i}",
                    source="demo",
                    channel=CHANNELS[int(channels[i])],
                    text=text,
                    created_at=t0 + float(offsets[i]),
                    author=Author(
                        id=f"u{a}",
                        handle=f"@user{a}",
                        followers=int(self._followers[a]),
                        verified=bool(self._verified[a]),
                    ),
                    lang="de" if german else "en",
                    url=f"https://demo.invalid/{brand}/{m}/{i}",
                    kind="post" if rng.random() < 0.7 else "reply",
                )
            )
        return out


class DemoSource:
    """Streams the scenario in (possibly scaled) real time, after backfilling recent history."""

    kind = "demo"

    def __init__(
        self, config: DemoSourceConfig, clock: Clock, backfill_seconds: float, tick: float = 5.0
    ) -> None:
        self.name = "demo"
        self.clock = clock
        self.scenario = DemoScenario(config, origin=clock.now())
        self.backfill = backfill_seconds
        self.tick = tick
        self.health = SourceHealth(self.name, self.kind)

    async def stream(self) -> AsyncIterator[Mention]:
        self.health.connected = True
        origin = format_time(self.scenario.origin)
        # what a soak compares its incidents with: the scripted crises follow from the origin
        log.info("demo: crises scripted from %s (bench/demo_crises.py --start %s)", origin, origin)
        sent_until = self.clock.now() - self.backfill
        while True:
            now = self.clock.now()
            for m in range(math.floor(sent_until / 60), math.floor(now / 60) + 1):
                for brand in self.scenario.config.brands:
                    for mention in self.scenario.minute(brand, m):
                        if sent_until <= mention.created_at < now:
                            self.health.seen(mention.created_at, self.clock.now())
                            yield mention
            sent_until = now
            await self.clock.sleep(self.tick)
