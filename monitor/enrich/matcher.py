"""Run many compiled topic queries against each document, with a pre-filter.

Each query declares keys of which at least one must occur for it to match (see
:func:`monitor.enrich.query.required_keys`). The matcher indexes queries by those keys; a
document's token set then selects the few candidate queries with one dict lookup per distinct
token, plus one per 3-letter stem for wildcard keys. Only candidates (and the rare queries with
no required key, e.g. ``NOT x`` or a bare ``lang:de``) are evaluated exactly.

This is a hash-based inverted index rather than an Aho-Corasick automaton over the raw string:
mentions are tokenised anyway (for terms and sentiment), and token keys respect word boundaries,
so the pre-filter yields fewer false candidates at the cost of dictionary lookups done in C.

>>> m = TopicMatcher([("acme", parse_query("acme AND outage*")),
...                   ("globex", parse_query("globex OR #globexfail")),
...                   ("not-fr", parse_query("NOT lang:fr"))])
>>> m.match(make_doc(tokenize("ACME outages everywhere #GlobexFail"), lang="en"))
('acme', 'globex', 'not-fr')
>>> m.match(make_doc(tokenize("nothing here"), lang="fr"))
()
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.enrich.query import Doc, Query, make_doc, parse_query
from monitor.enrich.text import tokenize

__all__ = ["TopicMatcher", "make_doc", "parse_query", "tokenize"]

STEM = 3  # wildcard stems have at least this many letters; index them by their first 3 chars


class TopicMatcher:
    """Named queries, matched together; ``match`` returns names in configuration order."""

    def __init__(self, topics: Sequence[tuple[str, Query]]) -> None:
        self.names = tuple(name for name, _ in topics)
        self.queries = tuple(q for _, q in topics)
        self._exact: dict[str, list[int]] = {}
        self._stems: dict[str, list[tuple[str, int]]] = {}
        always: list[int] = []
        for i, q in enumerate(self.queries):
            if q.required is None:
                always.append(i)
                continue
            for key in q.required:
                if key.endswith("*"):
                    stem = key[:-1]
                    self._stems.setdefault(stem[:STEM], []).append((stem, i))
                else:
                    self._exact.setdefault(key, []).append(i)
        self._always = tuple(always)

    def candidates(self, doc: Doc) -> set[int]:
        """Indices of queries that may match ``doc`` (a superset of those that do)."""
        cands = set(self._always)
        exact, stems = self._exact, self._stems
        for key in doc.keys:
            hit = exact.get(key)
            if hit is not None:
                cands.update(hit)
            if stems:
                entries = stems.get(key[:STEM])
                if entries is not None:
                    cands.update(i for stem, i in entries if key.startswith(stem))
        return cands

    def match(self, doc: Doc) -> tuple[str, ...]:
        """Names of the topics whose query matches ``doc``."""
        queries = self.queries
        hits = sorted(i for i in self.candidates(doc) if queries[i].predicate(doc))
        return tuple(self.names[i] for i in hits)
