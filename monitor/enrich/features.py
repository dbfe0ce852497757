"""Feature extraction for the linear sentiment model, shared by training and inference.

A text becomes a list of feature names (strings); the model's vocabulary maps them to columns.
Using named features instead of hashing keeps the model stable across processes (Python's
``hash`` is salted) and lets unseen features drop out for free.

Features: word unigrams and bigrams with negation marking (``not good`` → ``w:~good``), char
3–5-grams inside words (robust to misspellings and German compounds, and shared between
English and German), emoji and emoticons, punctuation runs, elongation (``soooo``), shouting,
and bucketed counts of lexicon hits after negation. With ``lang`` in ``LANG_TAGGED`` word
features are also emitted with a language prefix, so one model can learn both shared and
language-specific weights ("frustratingly easy" domain adaptation).

Everything is regex- and str-method based so one text costs tens of microseconds.

>>> f = analyze("I don't like the new app :( soooo slow!!! @acme", "en")
>>> [x for x in f if x.startswith("w:")]
['w:i', 'w:dont', 'w:~like', 'w:~the', 'w:~new', 'w:~app', 'w:E:(', 'w:soo', 'w:slow', 'w:!!', \
'w:@user']
>>> "LEX-2" in f, "ELONG" in f
(True, True)
"""

from __future__ import annotations

import html
import re

from monitor.enrich.lexicon import is_negator, polarity
from monitor.enrich.text import fold

LANG_TAGGED = frozenset({"de"})
CHAR_NGRAMS = (3, 4, 5)
NEGATION_SCOPE = 4  # tokens; a clause break ends it earlier

_EMOJI = "\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u2300-\u23ff"
_TOKEN = re.compile(
    r"(?<!\w)(?:[<>]?[:;=][\-o*']?[()\[\]dp/\\|3*]+|<3+|\^_*\^|-_-|[:;]'\(|xd+)(?!\w)"  # emoticons
    r"|[#@]?\w+(?:['’]\w+)*"
    rf"|[{_EMOJI}]"
    r"|[!?]+|\.{2,}|[.,;:]"
)
_URL = re.compile(r"(?:https?://|www\.)\S*|\bhttp\b")
_ELONG = re.compile(r"(\w)\1{2,}")
_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
_CAPS = re.compile(r"\b[A-ZÄÖÜ]{3,}\b")
_BREAKS = frozenset(".,;:!?")


def _unescape(match: re.Match[str]) -> str:
    return chr(int(match.group(1), 16))


def analyze(text: str, lang: str = "en") -> list[str]:
    """Feature names of ``text`` (duplicates possible; the vectoriser counts presence)."""
    if "&" in text:
        text = html.unescape(text)
    if "\\u" in text:  # literal escapes left in some tweets
        text = _ESCAPE.sub(_unescape, text)
    shouting = len(_CAPS.findall(text))
    low = _URL.sub(" ", fold(text))
    elongated = _ELONG.sub(r"\1\1", low)
    feats: list[str] = []
    if elongated != low:
        feats.append("ELONG")
    if shouting:
        feats.append("CAPS" if shouting < 3 else "CAPS3")
    words: list[str] = []
    pos = neg = 0
    scope = 0
    prev = "<s>"
    for tok in _TOKEN.findall(elongated):
        first = tok[0]
        if tok[-1] in _BREAKS:  # a clause break (emoticons never end in one)
            scope = 0
            tok = tok[:2]  # "!!!!" and "!!" are the same signal
            feats.append("w:" + tok)
            prev = tok
            continue
        if first == "@":
            tok = "@user"
        elif not (first.isalnum() or first == "#" or first == "_"):
            # emoji or emoticon: mood of the writer, never negated
            feats.append("w:E" + tok)
            p = polarity(tok, lang)
            if p > 0:
                pos += 1
            elif p < 0:
                neg += 1
            prev = tok
            continue
        word = tok[1:] if first == "#" else tok
        if is_negator(word):
            scope = NEGATION_SCOPE
            word = word.replace("'", "").replace("’", "")
            feats.append("w:" + word)
            feats.append("b:" + prev + "_" + word)
            prev = word
            continue
        p = polarity(word, lang)
        if scope:
            scope -= 1
            p = -p
            name = "~" + word
        else:
            name = word
        if p > 0:
            pos += 1
        elif p < 0:
            neg += 1
        feats.append("w:" + name)
        if first == "#":
            feats.append("w:#")
        feats.append("b:" + prev + "_" + word)
        prev = word
        if first != "@":
            words.append(word)
    if pos:
        feats.append(f"LEX+{min(pos, 3)}")
    if neg:
        feats.append(f"LEX-{min(neg, 3)}")
    if pos and neg:
        feats.append("LEX+-")
    if lang in LANG_TAGGED:
        feats.extend([lang + "|" + f for f in feats])
    for w in words:
        padded = " " + w + " "
        size = len(padded)
        for n in CHAR_NGRAMS:
            if n > size:
                break
            feats.extend(["c:" + padded[i : i + n] for i in range(size - n + 1)])
    return feats
