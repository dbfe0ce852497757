"""Boolean topic queries: parse once into an AST, compile into closures, match documents.

The language is the one social-listening tools use:

- ``acme AND (outage OR down)``, ``acme NOT job`` or ``acme -job``; juxtaposition means AND
  (``acme outage``). Operators are upper-case (a lower-case ``or``, and ``!``, ``&&``, ``||``,
  are errors that say what to write); precedence NOT/``-`` > NEAR/ONEAR > AND > OR.
- ``"exact phrase"``; ``a NEAR/3 b`` (at most 3 words between, any order), ``a ONEAR/3 b``
  (a before b). Operands of NEAR may be terms, phrases, wildcards and OR-groups of those.
- ``refund*`` trailing wildcard (at least 3 letters before ``*``).
- ``#hashtag`` matches only the hashtag, ``@handle`` only the mention of that handle,
  ``$cashtag`` only the cashtag; a plain word also matches the same word used as a hashtag or
  cashtag (``acme`` matches ``#acme`` and ``$ACME``).
- Words joined by ``&`` or ``.`` (``c&a``, ``at&t``, ``e.on``, ``acme.com``) match only so
  joined (``C&A``, ``C & A``), not their letters apart (``vitamin C, a``).
- Field filters ``lang:de``, ``channel:x``, ``author:@handle``, ``country:DE``.
- Case- and accent-insensitive; a query word with ä/ö/ü also matches the ae/oe/ue spelling, ß
  matches ss; emoji are terms of their own.

>>> q = parse_query('(acme OR #acmefail) AND (outage OR "not working") NOT lang:fr')
>>> q.matches_text("ACME outage since 9am")
True
>>> q.matches_text("acme is great")
False
>>> parse_query("acme -job -(career OR hiring)").matches_text("Acme job fair")
False
>>> parse_query("acme AND (outage OR down")
Traceback (most recent call last):
...
monitor.errors.QuerySyntaxError: unbalanced parenthesis at column 10
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from monitor.enrich.text import CJK_CHAR, fold, parts, tokenize, umlaut_variants
from monitor.errors import QuerySyntaxError

__all__ = [
    "And",
    "Doc",
    "Field",
    "Near",
    "Node",
    "Not",
    "Or",
    "Phrase",
    "Prefix",
    "Query",
    "Term",
    "language_code",
    "make_doc",
    "parse_query",
]

FIELDS = ("lang", "channel", "author", "country")
MIN_PREFIX = 3
MAX_DEPTH = 100  # parentheses, NOTs and NEAR chains; deeper would exhaust the recursion limit
# Distinct spans one NEAR may build for one mention. Only a post that repeats the query's words
# thousands of times needs more (a chain of 9 NEARs over "acme outage" x 8,000 took 7.8 s);
# such a post holds the words, so it counts as a match, in bounded time.
MAX_SPANS = 5_000


class _TooManySpans(Exception):
    pass


# --------------------------------------------------------------------------- documents


@dataclass(slots=True)
class Doc:
    """What a query sees of a mention: its tokens plus metadata for field filters.

    ``keys`` holds every token plus the bare word of each hashtag, so a plain word term is one
    set lookup. Positions for phrases and NEAR are built lazily on first use.
    """

    tokens: list[str]
    keys: set[str]
    lang: str = ""
    channel: str = ""
    author: str = ""
    country: str = ""
    _positions: dict[str, list[int]] | None = field(default=None, repr=False)

    def positions(self) -> dict[str, list[int]]:
        """Key → token positions; a token is also listed under its :func:`parts` (``#w`` and
        ``$w`` under ``w``, ``c&a`` under ``c`` and ``a``), at its own position."""
        if self._positions is None:
            pos: dict[str, list[int]] = {}
            for i, tok in enumerate(self.tokens):
                pos.setdefault(tok, []).append(i)
                if tok[0] in "#$" or "." in tok or "&" in tok:
                    for part in parts(tok):
                        pos.setdefault(part, []).append(i)
            self._positions = pos
        return self._positions


def make_doc(
    tokens: list[str], *, lang: str = "", channel: str = "", author: str = "", country: str = ""
) -> Doc:
    """Build a :class:`Doc` from tokens (see :func:`monitor.enrich.text.tokenize`).

    >>> sorted(make_doc(["#acme", "down", "c&a"]).keys)
    ['#acme', 'a', 'acme', 'c', 'c&a', 'down']
    >>> make_doc([], lang="ger").lang
    'de'
    """
    keys = set(tokens)
    joined = "\0".join(keys)  # one C scan tells whether any token has parts (most have none)
    if "#" in joined or "$" in joined or "." in joined or "&" in joined:
        for tok in tuple(keys):
            keys.update(parts(tok))
    return Doc(
        tokens,
        keys,
        lang=lang.lower() if len(lang) == 2 else language_code(lang),
        channel=channel.lower(),
        author=fold(author).lstrip("@"),
        country=country.lower(),
    )


# ISO 639-2 (bibliographic and terminology) and 639-3 codes of the languages that have a
# 639-1 code, from Debian's iso-codes; then individual languages a source may name for a
# macrolanguage (Standard Arabic, Mandarin, ...), and German dialects, which are read (and
# scored) as German: a post tagged gsw or bar is German to a German/English team.
_ISO639_TEXT = """
    aar:aa abk:ab afr:af aka:ak alb:sq amh:am ara:ar arg:an arm:hy asm:as ava:av ave:ae aym:ay
    aze:az bak:ba bam:bm baq:eu bel:be ben:bn bis:bi bod:bo bos:bs bre:br bul:bg bur:my cat:ca
    ces:cs cha:ch che:ce chi:zh chu:cu chv:cv cor:kw cos:co cre:cr cym:cy cze:cs dan:da deu:de
    div:dv dut:nl dzo:dz ell:el eng:en epo:eo est:et eus:eu ewe:ee fao:fo fas:fa fij:fj fin:fi
    fra:fr fre:fr fry:fy ful:ff geo:ka ger:de gla:gd gle:ga glg:gl glv:gv gre:el grn:gn guj:gu
    hat:ht hau:ha hbs:sh heb:he her:hz hin:hi hmo:ho hrv:hr hun:hu hye:hy ibo:ig ice:is ido:io
    iii:ii iku:iu ile:ie ina:ia ind:id ipk:ik isl:is ita:it jav:jv jpn:ja kal:kl kan:kn kas:ks
    kat:ka kau:kr kaz:kk khm:km kik:ki kin:rw kir:ky kom:kv kon:kg kor:ko kua:kj kur:ku lao:lo
    lat:la lav:lv lim:li lin:ln lit:lt ltz:lb lub:lu lug:lg mac:mk mah:mh mal:ml mao:mi mar:mr
    may:ms mkd:mk mlg:mg mlt:mt mon:mn mri:mi msa:ms mya:my nau:na nav:nv nbl:nr nde:nd ndo:ng
    nep:ne nld:nl nno:nn nob:nb nor:no nya:ny oci:oc oji:oj ori:or orm:om oss:os pan:pa per:fa
    pli:pi pol:pl por:pt pus:ps que:qu roh:rm ron:ro rum:ro run:rn rus:ru sag:sg san:sa sin:si
    slk:sk slo:sk slv:sl sme:se smo:sm sna:sn snd:sd som:so sot:st spa:es sqi:sq srd:sc srp:sr
    ssw:ss sun:su swa:sw swe:sv tah:ty tam:ta tat:tt tel:te tgk:tg tgl:tl tha:th tib:bo tir:ti
    ton:to tsn:tn tso:ts tuk:tk tur:tr twi:tw uig:ug ukr:uk urd:ur uzb:uz ven:ve vie:vi vol:vo
    wel:cy wln:wa wol:wo xho:xh yid:yi yor:yo zha:za zho:zh zul:zu
    arb:ar cmn:zh zsm:ms pes:fa prs:fa ekk:et lvs:lv swh:sw als:sq azj:az uzn:uz khk:mn plt:mg
    ydd:yi fil:tl
    gsw:de bar:de swg:de ksh:de pfl:de sxu:de vmf:de
"""
_ISO639_1 = dict(pair.split(":") for pair in _ISO639_TEXT.split())


def language_code(code: str) -> str:
    """A language tag's primary subtag, lower case, as its ISO 639-1 code where one exists.

    Sources tag posts ``deu``, ``ger`` or ``de-AT`` alike; the detector, the sentiment heads and
    ``lang:`` filters speak 639-1.

    >>> [language_code(c) for c in ("deu", "ger", "de-AT", "gsw", "EN_us", "eng", "und", "ary")]
    ['de', 'de', 'de', 'de', 'en', 'en', 'und', 'ary']
    """
    primary = code.lower().replace("_", "-").split("-")[0]
    return _ISO639_1.get(primary, primary)


# --------------------------------------------------------------------------- AST

Span = tuple[int, int]  # [first, last] token positions, inclusive


@dataclass(frozen=True, slots=True)
class Term:
    """One token; ``variants`` are the folded spellings (umlaut forms) that count as a hit."""

    variants: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Prefix:
    """A trailing-wildcard word: any word starting with ``stem``."""

    stem: str


@dataclass(frozen=True, slots=True)
class Phrase:
    """Consecutive tokens."""

    parts: tuple[Term | Prefix, ...]


@dataclass(frozen=True, slots=True)
class Near:
    left: Node
    right: Node
    distance: int
    ordered: bool


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


@dataclass(frozen=True, slots=True)
class Field:
    name: Literal["lang", "channel", "author", "country"]
    value: str


Node = Term | Prefix | Phrase | Near | And | Or | Not | Field


# --------------------------------------------------------------------------- lexer

_LEX = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<lpar>\()
  | (?P<rpar>\))
  | (?P<quote>"[^"]*"?)
  | (?P<near>O?NEAR(?:/[^\s()"]*)?)(?=[\s()"]|$)
  | (?P<op>AND|OR|NOT)(?=[\s()"]|$)
  | (?P<neg>-)(?=[^\s)])
  | (?P<word>[^\s()"]+)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class _Lex:
    kind: str
    text: str
    col: int  # 1-based


def _lex(text: str) -> list[_Lex]:
    out: list[_Lex] = []
    for m in _LEX.finditer(text):
        kind = m.lastgroup
        assert kind is not None
        if kind != "ws":
            out.append(_Lex(kind, m.group(), m.start() + 1))
    return out


# --------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.lexes = _lex(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> _Lex | None:
        return self.lexes[self.i] if self.i < len(self.lexes) else None

    def end_col(self) -> int:
        return len(self.text.rstrip()) + 1

    def fail(self, message: str, col: int) -> QuerySyntaxError:
        return QuerySyntaxError(message, col)

    def parse(self) -> Node:
        if not self.lexes:
            raise self.fail("empty query", 1)
        node = self.or_expr()
        tok = self.peek()
        if tok is not None:
            if tok.kind == "rpar":
                raise self.fail("unbalanced parenthesis", tok.col)
            raise self.fail(f"unexpected {tok.text!r}", tok.col)  # pragma: no cover - defensive
        return node

    def or_expr(self) -> Node:
        children = [self.and_expr()]
        while (tok := self.peek()) is not None and tok.kind == "op" and tok.text == "OR":
            self.i += 1
            children.append(self.and_expr(after=tok))
        return children[0] if len(children) == 1 else Or(tuple(children))

    def and_expr(self, after: _Lex | None = None) -> Node:
        children = [self.near_expr(after)]
        while (tok := self.peek()) is not None:
            if tok.kind == "op" and tok.text == "AND":
                self.i += 1
                children.append(self.near_expr(after=tok))
            elif tok.kind in ("lpar", "quote", "word", "neg") or (
                tok.kind == "op" and tok.text == "NOT"
            ):
                children.append(self.near_expr())  # juxtaposition is AND
            else:
                break
        return children[0] if len(children) == 1 else And(tuple(children))

    def near_expr(self, after: _Lex | None = None) -> Node:
        left = self.unary(after)
        depth = self.depth
        while (tok := self.peek()) is not None and tok.kind == "near":
            self.i += 1
            self.nest(tok)  # each NEAR wraps the chain so far
            ordered = tok.text.startswith("O")
            name = "ONEAR" if ordered else "NEAR"
            m = re.fullmatch(r"O?NEAR/(\d+)", tok.text)
            if m is None:
                raise self.fail(f"{name} needs a distance like {name}/3", tok.col)
            start = self.peek()
            right = self.unary(after=tok)
            for side, col in ((left, tok.col), (right, start.col if start else tok.col)):
                if not _positional(side):
                    raise self.fail(
                        f"{name} operands must be terms, phrases or OR-groups of them", col
                    )
            left = Near(left, right, int(m.group(1)), ordered)
        self.depth = depth
        return left

    def nest(self, tok: _Lex) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"query nested too deeply (more than {MAX_DEPTH} levels)", tok.col)

    def unary(self, after: _Lex | None = None) -> Node:
        tok = self.peek()
        # "-job" is X search's and the listening tools' NOT; it read as "job" (QA)
        if tok is not None and (tok.kind == "neg" or (tok.kind == "op" and tok.text == "NOT")):
            self.i += 1
            self.nest(tok)
            node = Not(self.unary(after=tok))
            self.depth -= 1
            return node
        return self.primary(after)

    def primary(self, after: _Lex | None) -> Node:
        tok = self.peek()
        if tok is None:
            what = f"a term after {after.text}" if after else "a term"
            raise self.fail(f"expected {what}", self.end_col())
        if tok.kind == "lpar":
            self.i += 1
            if (nxt := self.peek()) is not None and nxt.kind == "rpar":
                raise self.fail("empty parentheses", tok.col)
            self.nest(tok)
            node = self.or_expr()
            close = self.peek()
            if close is None or close.kind != "rpar":
                raise self.fail("unbalanced parenthesis", tok.col)
            self.i += 1
            self.depth -= 1
            return node
        if tok.kind == "rpar":
            if after is not None:
                raise self.fail(f"expected a term after {after.text}", tok.col)
            raise self.fail("unbalanced parenthesis", tok.col)
        if tok.kind in ("op", "near"):
            op = tok.text.split("/")[0]
            where = f"after {after.text}" if after else "before it"
            raise self.fail(f"operator {op} needs a term {where}", tok.col)
        self.i += 1
        if tok.kind == "quote":
            return self.phrase(tok)
        return self.word(tok)

    def phrase(self, tok: _Lex) -> Node:
        if len(tok.text) < 2 or not tok.text.endswith('"'):
            raise self.fail("unterminated quote", tok.col)
        terms = _terms(tok.text[1:-1])
        if not terms:
            raise self.fail("empty phrase", tok.col)
        return terms[0] if len(terms) == 1 else Phrase(terms)

    def word(self, tok: _Lex) -> Node:
        text = tok.text
        self.not_an_operator(tok)
        name, colon, value = text.partition(":")
        if colon and name.isalpha() and not name.startswith(("#", "@")):
            if name.lower() in ("http", "https") and value.startswith("//"):
                site = value[2:].split("/")[0]
                # the site's name matches only where a post writes it as text, not in its links
                raise self.fail(
                    "a link never matches: links are removed from posts before matching; "
                    "search the words posts use"
                    + (f" (e.g. {site!r}, which matches it written as text)" if site else ""),
                    tok.col,
                )
            if name.lower() not in FIELDS:
                raise self.fail(f"unknown field {name!r} (use {', '.join(FIELDS)})", tok.col)
            if not value:
                raise self.fail(f"field {name.lower()} needs a value", tok.col)
            value = fold(value).lstrip("@")
            if name.lower() == "lang":
                value = language_code(value)  # lang:deu is lang:de, as the posts' codes are
            return Field(name.lower(), value)  # type: ignore[arg-type]
        star = text.find("*")
        if star != -1 and CJK_CHAR.search(text):
            # CJK words already match inside longer runs (one token per character)
            text = text.replace("*", "")
        elif star != -1:
            if star != len(text) - 1:
                raise self.fail("wildcard * only at the end of a word", tok.col + star)
            if text[0] in "#@":
                raise self.fail(
                    "wildcard * does not apply to #hashtags or @handles", tok.col + star
                )
            stems = umlaut_variants(unicodedata.normalize("NFKC", text[:-1]).lower())
            if not re.search(r"\w", stems[0]):
                raise self.fail(
                    f"wildcard * applies to words, not to {text[:-1]!r}: write it without *",
                    tok.col + star,
                )
            # an apostrophe stays inside a token (o'reilly), any other punctuation splits it
            if split := re.search(r"[^\w']", stems[0]):
                word = text[:-1]
                # "wifi" is how people write wi-fi too; "acmecom" or "eon" is no one's word
                joined = f" or {word.replace('-', '')}*" if split.group() == "-" else ""
                raise self.fail(
                    f"wildcard * applies to one word, and {split.group()!r} splits {word!r} "
                    f'into words: try the phrase "{word}"{joined}',
                    tok.col + star,
                )
            if sum(c.isalpha() for c in stems[0]) < MIN_PREFIX:
                raise self.fail(
                    f"wildcard needs at least {MIN_PREFIX} letters before *", tok.col + star
                )
            if len(stems) == 1:
                return Prefix(stems[0])
            return Or(tuple(Prefix(st) for st in stems))
        terms = _terms(text)
        if not terms:
            raise self.fail(f"{text!r} has no searchable characters", tok.col)
        return terms[0] if len(terms) == 1 else Phrase(terms)

    def not_an_operator(self, tok: _Lex) -> None:
        """Refuse what people write for an operator that would silently be a word: ``or``
        matched posts with the word "or" in them, ``!job`` posts with "job" (QA)."""
        text = tok.text
        if text.lower() in ("and", "or", "not") or re.fullmatch(r"(?i)o?near/\d+", text):
            op = text.upper()
            raise self.fail(
                f"{text!r} is not an operator (operators are upper-case): write {op}, or "
                f'"{text}" in quotes to search for the word',
                tok.col,
            )
        if text in ("&&", "&", "||", "|"):
            op = "AND" if text[0] == "&" else "OR"
            raise self.fail(f"{text!r} is not an operator: write {op}", tok.col)
        nxt = self.peek()  # the lexeme after this one (word() is called past it)
        glued = nxt is not None and nxt.col == tok.col + len(text) and nxt.kind in ("lpar", "quote")
        if text[0] == "!" and (text.strip("!") or glued):
            rest = text.lstrip("!") or (nxt.text if nxt and nxt.kind == "quote" else "(…)")
            raise self.fail(
                f"'!' is not an operator: write NOT {rest} or -{rest} to exclude {rest}", tok.col
            )
        if text == "-":
            raise self.fail(
                "'-' excludes only when written before what it excludes: write -job or NOT job",
                tok.col,
            )


def _positional(node: Node) -> bool:
    """Can ``node`` report token positions (and so be an operand of NEAR)?"""
    if isinstance(node, Or):
        return all(_positional(c) for c in node.children)
    return isinstance(node, Term | Prefix | Phrase | Near)


def _terms(raw: str) -> tuple[Term, ...]:
    """The tokens of ``raw`` as terms, each with its ae/oe/ue spelling if written with umlauts.

    Writing ä as ae never moves a token boundary, so both tokenisations align one to one.
    """
    words = tokenize(raw, limit=None)
    # NFKC: "u" + U+0308 as pasted from macOS is ü, and so is a styled 𝗨̈
    low = unicodedata.normalize("NFKC", raw).lower()
    if not any(c in low for c in "äöü"):
        return tuple(Term((w,)) for w in words)
    alts = tokenize(low.replace("ä", "ae").replace("ö", "oe").replace("ü", "ue"), limit=None)
    if len(alts) != len(words):  # pragma: no cover - defensive, see above
        alts = words
    return tuple(Term((w,) if w == a else (w, a)) for w, a in zip(words, alts, strict=True))


# --------------------------------------------------------------------------- compile

Pred = Callable[[Doc], bool]
SpanFn = Callable[[Doc], list[Span]]


def _term_pred(t: Term) -> Pred:
    if len(t.variants) == 1:
        (v,) = t.variants
        return lambda d: v in d.keys
    vs = t.variants
    return lambda d: any(v in d.keys for v in vs)


def _compile(node: Node) -> Pred:
    if isinstance(node, Term):
        return _term_pred(node)
    if isinstance(node, Prefix):
        stem = node.stem
        return lambda d: any(k.startswith(stem) for k in d.keys)
    if isinstance(node, Phrase | Near):
        spans = _compile_spans(node)
        present = _operands_present(node)

        def has_span(d: Doc) -> bool:
            try:
                return bool(spans(d))
            except _TooManySpans:
                # too many to pair: a match if every operand occurs (an inner NEAR that
                # overflowed counted as a match without its outer word; QA, tenth session)
                return present(d)

        return has_span
    if isinstance(node, And):
        preds = tuple(_compile(c) for c in node.children)
        return lambda d: all(p(d) for p in preds)
    if isinstance(node, Or):
        preds = tuple(_compile(c) for c in node.children)
        return lambda d: any(p(d) for p in preds)
    if isinstance(node, Not):
        inner = _compile(node.child)
        return lambda d: not inner(d)
    value = node.value
    if node.name == "lang":
        return lambda d: d.lang == value
    if node.name == "channel":
        return lambda d: d.channel == value
    if node.name == "author":
        return lambda d: d.author == value
    return lambda d: d.country == value


def _compile_spans(node: Node) -> SpanFn:
    if isinstance(node, Term):
        vs = node.variants

        def term_spans(d: Doc) -> list[Span]:
            pos = d.positions()
            return [(i, i) for v in vs for i in pos.get(v, ())]

        return term_spans
    if isinstance(node, Prefix):
        stem = node.stem

        def prefix_spans(d: Doc) -> list[Span]:
            return [
                (i, i)
                for i, t in enumerate(d.tokens)
                if t.startswith(stem) or any(w.startswith(stem) for w in parts(t))
            ]

        return prefix_spans
    if isinstance(node, Phrase):
        firsts = _compile_spans(node.parts[0])
        n = len(node.parts)
        singles = [_single_matcher(p) for p in node.parts[1:]]

        def phrase_spans(d: Doc) -> list[Span]:
            toks = d.tokens
            out: list[Span] = []
            for start, _ in firsts(d):
                if start + n > len(toks):
                    continue
                if all(m(toks[start + 1 + j]) for j, m in enumerate(singles)):
                    out.append((start, start + n - 1))
            return out

        return phrase_spans
    if isinstance(node, Or):
        fns = [_compile_spans(c) for c in node.children]
        return lambda d: [s for f in fns for s in f(d)]
    if isinstance(node, Near):
        left, right = _compile_spans(node.left), _compile_spans(node.right)
        dist, ordered = node.distance, node.ordered

        def near_spans(d: Doc) -> list[Span]:
            # Each side once, its distinct spans only (all of them: an outer span can reach a
            # word its inner one cannot), for each left span only the right spans within
            # reach (bisect), and at most MAX_SPANS. Pairing every left with every right, and
            # the right side recomputed per left span, took 12.8 s on one 240-character post
            # for a five-deep NEAR chain, on the event loop (QA, tenth session).
            ls = left(d)
            if not ls:
                return []
            rs = right(d)
            if not rs:
                return []
            by_start = sorted(set(rs))
            starts = [b0 for b0, _ in by_start]
            by_end = sorted(by_start, key=lambda s: s[1])
            ends = [b1 for _, b1 in by_end]
            out: list[Span] = []
            for a0, a1 in set(ls):
                # right after left, at most `dist` words between: a1 < b0 <= a1 + dist + 1
                hi = bisect_right(starts, a1 + dist + 1)
                out += [(a0, b1) for _, b1 in by_start[bisect_right(starts, a1) : hi]]
                if not ordered:  # right before left: a0 - dist - 1 <= b1 < a0
                    lo = bisect_left(ends, a0 - dist - 1)
                    out += [(b0, a1) for b0, _ in by_end[lo : bisect_left(ends, a0)]]
                if len(out) > MAX_SPANS:
                    raise _TooManySpans
            return sorted(set(out))

        return near_spans
    raise TypeError(f"not positional: {node!r}")  # the parser rejects this earlier


def _operands_present(node: Node) -> Pred:
    """Does every operand of a positional ``node`` occur (ignoring where)? What a NEAR that
    would need more than MAX_SPANS spans is taken to mean."""
    if isinstance(node, Near):
        left, right = _operands_present(node.left), _operands_present(node.right)
        return lambda d: left(d) and right(d)
    if isinstance(node, Or):
        preds = tuple(_operands_present(c) for c in node.children)
        return lambda d: any(p(d) for p in preds)
    spans = _compile_spans(node)  # a term, wildcard or phrase: cheap to find exactly
    return lambda d: bool(spans(d))


def _single_matcher(p: Term | Prefix) -> Callable[[str], bool]:
    """Does one token match this phrase part? A token counts as its :func:`parts` too."""
    if isinstance(p, Prefix):
        stem = p.stem
        return lambda t: t.startswith(stem) or any(w.startswith(stem) for w in parts(t))
    vs = frozenset(p.variants)
    return lambda t: t in vs or not vs.isdisjoint(parts(t))


# --------------------------------------------------------------------------- pre-filter keys


def required_keys(node: Node) -> frozenset[str] | None:
    """Index keys of which at least one must occur for ``node`` to match, or None if unknown.

    Exact keys are token strings; a key ending in ``*`` is a prefix stem.

    >>> sorted(required_keys(parse_query("acme (outage OR ausfall*)").root) or ())
    ['acme']
    >>> sorted(required_keys(parse_query("acme OR #globex OR refund*").root) or ())
    ['#globex', 'acme', 'refund*']
    >>> required_keys(parse_query("NOT acme").root) is None
    True
    """
    if isinstance(node, Term):
        return frozenset(node.variants)
    if isinstance(node, Prefix):
        return frozenset({node.stem + "*"})
    if isinstance(node, Phrase):
        return _best([required_keys(p) for p in node.parts])
    if isinstance(node, Near):
        return _best([required_keys(node.left), required_keys(node.right)])
    if isinstance(node, And):
        return _best([required_keys(c) for c in node.children])
    if isinstance(node, Or):
        out: set[str] = set()
        for c in node.children:
            keys = required_keys(c)
            if keys is None:
                return None
            out |= keys
        return frozenset(out)
    return None  # NOT and field filters cannot be required


def _best(options: Sequence[frozenset[str] | None]) -> frozenset[str] | None:
    """The most selective alternative: fewest keys, then longest (rarer) keys, exact before *."""
    known = [o for o in options if o is not None]
    if not known:
        return None
    return min(
        known,
        key=lambda ks: (len(ks), any(k.endswith("*") for k in ks), -min(len(k) for k in ks)),
    )


# --------------------------------------------------------------------------- public


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed query: the source text, its AST, the compiled predicate and pre-filter keys."""

    text: str
    root: Node
    predicate: Pred = field(repr=False, compare=False)
    required: frozenset[str] | None

    def matches(self, doc: Doc) -> bool:
        """Exact evaluation on one document."""
        return self.predicate(doc)

    def matches_text(
        self, text: str, *, lang: str = "", channel: str = "", author: str = "", country: str = ""
    ) -> bool:
        """Convenience for tests and the CLI: tokenise ``text`` and evaluate.

        >>> q = parse_query('"product recall" NEAR/2 acme')
        >>> q.matches_text("Acme announces a product recall")
        True
        >>> parse_query('acme ONEAR/1 rückruf').matches_text("Rueckruf bei Acme")
        False
        """
        doc = make_doc(tokenize(text), lang=lang, channel=channel, author=author, country=country)
        return self.predicate(doc)


def parse_query(text: str) -> Query:
    """Parse a topic query; raise :class:`~monitor.errors.QuerySyntaxError` with a 1-based column.

    >>> parse_query("acme OR").root
    Traceback (most recent call last):
    ...
    monitor.errors.QuerySyntaxError: expected a term after OR at column 8
    >>> parse_query("acme AND ou*")
    Traceback (most recent call last):
    ...
    monitor.errors.QuerySyntaxError: wildcard needs at least 3 letters before * at column 12
    """
    root = _Parser(text).parse()
    return Query(text, root, _compile(root), required_keys(root))
