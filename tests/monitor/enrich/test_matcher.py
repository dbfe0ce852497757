"""The pre-filter never changes results: candidates are a superset of real matches."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.enrich.matcher import TopicMatcher
from monitor.enrich.query import make_doc, parse_query
from monitor.enrich.text import tokenize

QUERIES = [
    "acme AND outage",
    "acme OR globex",
    "NOT acme",
    '"data breach" NEAR/2 (acme OR globex)',
    "refund* AND NOT acme",
    "#acmefail OR @acme",
    "lang:de",
    "initech ONEAR/1 down",
    "rückruf OR skandal",
    "rück* NEAR/2 acme",
    "東京電力 OR #東京",
    '"acme\'s app"',
]
WORDS = [
    "acme",
    "globex",
    "initech",
    "outage",
    "data",
    "breach",
    "refunds",
    "refund",
    "down",
    "#acmefail",
    "@acme",
    "Rückruf",
    "Rueckruf",
    "skandal",
    "ok",
    "😡",
    "Acme’s",
    "app",
    "Rueckrufe",
    "東京電力の",
    "#東京",
    "bob@acme.com",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(WORDS), max_size=8), st.sampled_from(["en", "de"]))
def test_prefilter_equals_brute_force(words: list[str], lang: str) -> None:
    topics = [(f"t{i}", parse_query(q)) for i, q in enumerate(QUERIES)]
    matcher = TopicMatcher(topics)
    doc = make_doc(tokenize(" ".join(words)), lang=lang)
    brute = tuple(name for name, q in topics if q.matches(doc))
    assert matcher.match(doc) == brute


def test_candidates_skip_unrelated_queries() -> None:
    matcher = TopicMatcher([("a", parse_query("acme")), ("b", parse_query("globex outage"))])
    assert matcher.candidates(make_doc(tokenize("acme outage"))) == {0}


JOINED_QUERIES = ["c&a", "at&t OR $acme", '"visit acme" OR acme.com', "acme NEAR/1 down", "acm*"]
JOINED_WORDS = ["C&A", "C", "&", "A", "AT&T", "$ACME", "acme.com", "visit", "acme", "down", ","]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(JOINED_WORDS), max_size=8))
def test_prefilter_equals_brute_force_on_joined_words_and_cashtags(words: list[str]) -> None:
    """A joined word (c&a, acme.com) or a cashtag is indexed under its parts too."""
    topics = [(f"t{i}", parse_query(q)) for i, q in enumerate(JOINED_QUERIES)]
    doc = make_doc(tokenize(" ".join(words)))
    brute = tuple(name for name, q in topics if q.matches(doc))
    assert TopicMatcher(topics).match(doc) == brute


def test_cashtag_and_joined_name_candidates() -> None:
    matcher = TopicMatcher([("a", parse_query("acme")), ("c", parse_query("c&a"))])
    assert matcher.match(make_doc(tokenize("$ACME and C&A"))) == ("a", "c")
    assert matcher.match(make_doc(tokenize("vitamin C, a habit"))) == ()
