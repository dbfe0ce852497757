"""Text normalisation and tokenisation shared by query matching, terms and sentiment.

Everything here is pure and built on C-level primitives (``str.casefold``,
``unicodedata.normalize``, compiled regexes) because it runs once per mention on the hot path.

>>> fold("Rückruf ÄRGER Straße café")
'ruckruf arger strasse cafe'
>>> tokenize("RT @Acme: #Outage again 😡😡 https://x.co/1 don't $ACME")
['rt', '@acme', '#outage', 'again', '😡', '😡', "don't", '$acme']
>>> tokenize("C&A, AT & T and E.ON")
['c&a', 'at&t', 'and', 'e.on']
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_COMBINING = re.compile(r"[\u0300-\u036f]+")
# Deleted: invisible characters that split a word without showing (soft hyphen, zero-width
# space and non-joiner, word joiner, BOM): "ac\u200bme" must still be acme. The zero-width
# joiner stays, it builds emoji. Mapped: letters with no decomposition to strip (ł, ø, đ, ħ, ı).
_FOLD_TABLE = {
    **dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u2060\ufeff\u180e"), None),
    **str.maketrans("łøđħı", "lodhi"),
}
# translate() with a dict costs ~150 ns a character; a search for those few first is C speed
_FOLD_CHARS = re.compile("[" + "".join(map(chr, _FOLD_TABLE)) + "]")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
# Emoji and pictographs: the main emoji blocks, dingbats/misc symbols, and regional indicators.
# Skin-tone modifiers (U+1F3FB-1F3FF) are left out: they vary the emoji before them.
_EMOJI_CLASS = (
    "\U0001f000-\U0001f3fa\U0001f400-\U0001faff"  # pictographs, emoticons, transport, flags
    "\u2600-\u27bf"  # misc symbols and dingbats (☀ ☹ ❤ ✔ ...)
    "\u2b00-\u2bff"  # arrows/stars (⭐)
    "\u2300-\u23ff"  # technical (⌛ ⏰)
)
# Chinese and Japanese write words without spaces: each ideograph or kana is a token, so a
# query word matches as the phrase of its characters anywhere inside a run. The kana voicing
# marks that NFKD splits off (U+3099, U+309A) are diacritics to fold, like accents.
_CJK_CLASS = "\u3040-\u3098\u309b-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
CJK_CHAR = re.compile(f"[{_CJK_CLASS}]")  # a character that is a token by itself
_W = rf"[^\W{_CJK_CLASS}]"
# A flag is two regional indicators, read in pairs from the left: one token, so 🇩🇪 does not
# match inside 🇬🇩🇪🇸 (Grenada, Spain) as the letters D E would.
_FLAG = "[\U0001f1e6-\U0001f1ff]{2}"
_PART = rf"{_W}+(?:'{_W}+)*"
# ``#``/``@`` start a hashtag/handle only after a non-word character (not in bob@acme.com);
# ``$`` starts a cashtag ($ACME) only before a letter ($5 is money). A plain word joined to
# the next by ``&`` or ``.`` without spaces is one token, because brand names and sites are
# written so (C&A, AT&T, 1&1, E.ON, acme.com) and prose and scores are not ("vitamin C, a",
# "1:1", "look at t-mobile"); its parts are still found as words (see ``parts``).
# (Plain words first: the most common token, tried first, kept findall as fast as before.)
_TOKEN = re.compile(
    rf"{_PART}(?:[&.]{_PART})*|(?<!\w)(?:[#@]|\$(?=[^\W\d_])){_PART}"
    rf"|(?:(?<!\w)[#@])?[{_CJK_CLASS}]|{_FLAG}|[{_EMOJI_CLASS}]"
)
# "C & A", "AT & T": an ampersand between two short words is the brand written with spaces
# (a longer side is prose: "Tom & Jerry" stays two words).
_SPACED_AMP = re.compile(r"(?<![\w&])(\w{1,2}) ?& ?(?=\w{1,2}(?![\w&]))")
_JOINERS = re.compile(r"[&.]")
# Queries and terms read this much of a post (of its text, and of its folded form): a longer
# post cost its length in tokenising on the event loop (QA: 100,000 characters, 0.75 s).
MAX_TOKENIZED = 10_000
_FOLD_CHUNK = 256
_POSSESSIVE = re.compile(r"(?<=\w)'s\b")  # "acme's" is acme (and "it's" is it)
_WORD_RE = re.compile(r"\w+(?:['’]\w+)*")


def fold(text: str) -> str:
    """Case- and accent-fold: lower-case (ß→ss), strip diacritics (ü→u), compatibility forms.

    Emoji and non-Latin scripts pass through unchanged (only their combining marks go).

    >>> fold("ÉCLAIR ﬁne Ärger")
    'eclair fine arger'
    >>> fold("🔥 Größe")
    '🔥 grosse'
    >>> fold("ac\u200bme Łódź Øresund ac\u00adme")
    'acme lodz oresund acme'
    """
    if text.isascii():
        return text.lower()
    # NFKD before casefold: styled letters (𝐀𝐂𝐌𝐄, 𝗔𝗖𝗠𝗘) are capitals only once decomposed, and
    # casefold leaves them as they are (they stayed 'ACME' and matched nothing; QA)
    folded = unicodedata.normalize("NFKD", text).casefold()
    if folded.isascii():
        return folded
    folded = _COMBINING.sub("", folded)
    return folded.translate(_FOLD_TABLE) if _FOLD_CHARS.search(folded) else folded


def _fold_prefix(text: str, limit: int) -> str:
    """``fold(text)[:limit]``, folding no more of ``text`` than that needs.

    NFKD expands some characters many times (U+FDFA is 18 characters), so a post of 100,000
    of them folded to 1.8 million and held the event loop for most of a second (QA). Folding
    is per character, so folding in chunks gives the same text.

    >>> _fold_prefix("\ufdfa" * 5000, 100) == fold("\ufdfa" * 5000)[:100]
    True
    """
    if text.isascii():
        return text[:limit].lower()
    out: list[str] = []
    size = 0
    for lo in range(0, len(text), _FOLD_CHUNK):
        out.append(fold(text[lo : lo + _FOLD_CHUNK]))
        size += len(out[-1])
        if size >= limit:
            break
    return "".join(out)[:limit]


def strip_urls(text: str) -> str:
    """Remove URLs (they carry no topic or sentiment and confuse language ID).

    >>> strip_urls("down again https://t.co/x1 see www.acme.com now")
    'down again   see   now'
    """
    return _URL.sub(" ", text)


def tokenize(text: str, limit: int | None = MAX_TOKENIZED) -> list[str]:
    """Fold ``text``, drop URLs and split into words, ``#hashtags``, ``@handles``, ``$cashtags``
    and single emoji; only the first ``limit`` characters (of the text and of its folded form).

    Tokens are plain strings; the first character tells the kind (``#``, ``@``, ``$``, emoji,
    other). ``’`` is read as ``'`` and a possessive ``'s`` is dropped; Chinese/Japanese
    characters are one token each; words joined by ``&`` or ``.`` are one token (see
    :func:`parts`).

    >>> tokenize("Café #Rückruf 👍 @Globex_DE $5")
    ['cafe', '#ruckruf', '👍', '@globex_de', '5']
    >>> tokenize("H & M vs h/m, Tom & Jerry, C&amp;A")
    ['h&m', 'vs', 'h', 'm', 'tom', 'jerry', 'c&a']
    >>> len(tokenize("acme " * 100_000))  # 10,000 characters are read
    2000
    """
    raw = strip_urls(text if limit is None or len(text) <= limit else text[:limit])
    # a short text cannot fold past the limit (18 x _FOLD_CHUNK < MAX_TOKENIZED)
    folded = fold(raw) if limit is None or len(raw) <= _FOLD_CHUNK else _fold_prefix(raw, limit)
    if "’" in folded:
        folded = folded.replace("’", "'")
    if "'" in folded:
        folded = _POSSESSIVE.sub("", folded)
    if "&" in folded:
        folded = _SPACED_AMP.sub(r"\1&", folded.replace("&amp;", "&"))
    return _TOKEN.findall(folded)


def parts(token: str) -> tuple[str, ...]:
    """The words a token also counts as: a hashtag's or cashtag's word, the parts of words
    joined by ``&`` or ``.``; none for a plain word or a handle (``acme`` is not ``@acme``).

    >>> parts("#acme"), parts("$acme"), parts("c&a"), parts("status.acme.com"), parts("@acme")
    (('acme',), ('acme',), ('c', 'a'), ('status', 'acme', 'com'), ())
    """
    first = token[0]
    if first == "#" or first == "$":
        return (token[1:],)
    if first == "@" or ("." not in token and "&" not in token):
        return ()
    return tuple(_JOINERS.split(token))


def words(text: str) -> list[str]:
    """Just the folded words of ``text`` (no emoji, hashtags lose their ``#``).

    >>> words("Ärger bei #Acme!")
    ['arger', 'bei', 'acme']
    """
    return _WORD_RE.findall(fold(text))


def spellings(texts: Iterable[str]) -> dict[str, str]:
    """Each folded word of ``texts`` -> how the first text to use it spelled it: lower case,
    plain letters (NFKC). URLs do not count.

    Terms are counted folded, so that "Störung" and "STORUNG" are one term; people read them
    better with their accents back.

    >>> spellings(["Große STÖRUNG bei Acme's", "storung? ﬁx"])
    {'grosse': 'große', 'storung': 'störung', 'bei': 'bei', 'acme': 'acme', 'fix': 'fix'}
    """
    out: dict[str, str] = {}
    for text in texts:
        plain = _POSSESSIVE.sub("", strip_urls(text).replace("’", "'"))
        written: list[str] = _WORD_RE.findall(plain)
        for word in written:
            out.setdefault(fold(word), unicodedata.normalize("NFKC", word).lower())
    return out


def umlaut_variants(term: str) -> tuple[str, ...]:
    """Spellings a German term may have: ``ü`` is also written ``ue``, ``ß`` also ``ss``.

    The input is lower-cased but not accent-folded; every output is folded.

    >>> umlaut_variants("rückruf")
    ('ruckruf', 'rueckruf')
    >>> umlaut_variants("acme")
    ('acme',)
    """
    base = fold(term)
    alt = term
    for src, dst in (("ä", "ae"), ("ö", "oe"), ("ü", "ue")):
        alt = alt.replace(src, dst)
    alt = fold(alt)
    return (base,) if alt == base else (base, alt)
