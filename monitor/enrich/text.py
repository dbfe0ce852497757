"""Text normalisation and tokenisation shared by query matching, terms and sentiment.

Everything here is pure and built on C-level primitives (``str.casefold``,
``unicodedata.normalize``, compiled regexes) because it runs once per mention on the hot path.

>>> fold("Rückruf ÄRGER Straße café")
'ruckruf arger strasse cafe'
>>> tokenize("RT @Acme: #Outage again 😡😡 https://x.co/1 don't")
['rt', '@acme', '#outage', 'again', '😡', '😡', "don't"]
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
# ``#``/``@`` start a hashtag/handle only after a non-word character (not in bob@acme.com).
_TOKEN = re.compile(
    rf"(?:(?<!\w)[#@])?(?:{_W}+(?:'{_W}+)*|[{_CJK_CLASS}])|{_FLAG}|[{_EMOJI_CLASS}]"
)
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
    folded = unicodedata.normalize("NFKD", text.casefold())
    return folded if folded.isascii() else _COMBINING.sub("", folded).translate(_FOLD_TABLE)


def strip_urls(text: str) -> str:
    """Remove URLs (they carry no topic or sentiment and confuse language ID).

    >>> strip_urls("down again https://t.co/x1 see www.acme.com now")
    'down again   see   now'
    """
    return _URL.sub(" ", text)


def tokenize(text: str) -> list[str]:
    """Fold ``text``, drop URLs and split into words, ``#hashtags``, ``@handles`` and single emoji.

    Tokens are plain strings; the first character tells the kind (``#``, ``@``, emoji, other).
    ``’`` is read as ``'`` and a possessive ``'s`` is dropped; Chinese/Japanese characters are
    one token each.

    >>> tokenize("Café #Rückruf 👍 @Globex_DE")
    ['cafe', '#ruckruf', '👍', '@globex_de']
    """
    folded = fold(strip_urls(text))
    if "’" in folded:
        folded = folded.replace("’", "'")
    if "'" in folded:
        folded = _POSSESSIVE.sub("", folded)
    return _TOKEN.findall(folded)


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
