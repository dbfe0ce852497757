"""Feature extraction for the linear sentiment model, shared by training and inference.

A text yields two kinds of features:

- *named* features (strings, mapped to columns by the model's vocabulary): word unigrams and
  bigrams with negation marking (``not good`` → ``w:~good``), emoji and emoticons, punctuation
  runs, elongation (``soooo``), shouting, and bucketed counts of polarity-lexicon hits
  after negation (the small hand-written lexicon, and for German the large lexicon stored in
  the model artifact);
- *char n-grams* (3–5) inside words, robust to misspellings, inflection and German compounds and
  shared between languages. They are hashed with numpy over a whole batch at once (no Python
  object per n-gram) into ``2**bits`` buckets; the model keeps weights only for buckets seen in
  training. A negated word has no char n-grams (``negated_chars`` off): they would read "bad"
  in "not bad"; its named feature ``w:~bad`` carries it.

A link is not a feature (``link_feature``): whether a post carries one says how UMSAB was
sampled (65 % of its neutral posts are link posts), not how its writer feels.

>>> fz = Featurizer()
>>> named, words = fz.named("I don't like the new app :( soooo slow!!! @acme", "en")
>>> [x for x in named if x.startswith("w:")]
['w:i', 'w:dont', 'w:~like', 'w:~the', 'w:~new', 'w:~app', 'w:E:(', 'w:soo', 'w:slow', 'w:!!', \
'w:@user']
>>> "LEX-3" in named, "ELONG" in named, words[:3]
(True, True, ['i', 'soo', 'slow'])
>>> rows, buckets = fz.char_buckets([["ok"], [], ["ab"]])
>>> rows.tolist(), len(set(buckets.tolist()))   # " ok", "ok ", " ok " / " ab", "ab ", " ab "
([0, 0, 2, 2, 0, 2], 6)
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from monitor.enrich.lexicon import is_negator, polarity
from monitor.enrich.text import fold

__all__ = ["DENSE_PREFIXES", "I64", "LEGACY_CONFIG", "FeatureConfig", "Featurizer"]

# Named features that a head may also read as raw counts (see ``linear.Head.dense_cols``).
DENSE_PREFIXES = ("GL", "LEX", "EMO", "URL", "ELONG", "CAPS", "P1", "P2", "OBJ")

I64 = npt.NDArray[np.int64]
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
CACHE_SIZE = 100_000  # token infos kept per language
_WORD, _BREAK, _NEGATOR, _EMOJI_KIND, _HANDLE, _URL_KIND = range(6)
TokenInfo = tuple[int, str, float, float, int]
_FIRST_TEXT = """i me my mine myself we us our ours im ive i'm i've ich mich mir mein meine meinen
    meinem meiner meins wir uns unser unsere unseren unserem unserer"""
_SECOND_TEXT = """you your yours yourself u ur youre youve you're du dich dir dein deine deinen
    deinem deiner euch euer eure euren eurem eurer"""
_INTENSIFIER_TEXT = """very really so too totally absolutely super extremely soo sehr echt
    total voll richtig mega extrem wirklich ganz so"""
_INTENSIFIERS = frozenset(_INTENSIFIER_TEXT.split())
_FIRST_PERSON = frozenset(_FIRST_TEXT.split())
_SECOND_PERSON = frozenset(_SECOND_TEXT.split())
_P = np.uint64(0x100000001B3)  # FNV prime: multiplier of the polynomial n-gram hash
_MIX = np.uint64(0xFF51AFD7ED558CCD)  # murmur3 finaliser constant: spreads the high bits
_SHIFT = np.uint64(33)


@dataclass(frozen=True)
class FeatureConfig:
    """Feature switches; stored in the model artifact so inference matches training.

    ``de_clause_negation``: in German a negator often follows what it negates ("gefällt mir
    nicht"), so lexicon hits anywhere in a clause with a negator are flipped.
    ``negated_chars``: negated words give char n-grams too (v2; they read "bad" in "not bad").
    ``link_feature``: a link is a feature (v2; UMSAB's neutral posts are mostly link posts, so
    it taught the German head that a link means neutral and its absence polar).
    """

    bits: int = 20
    ngrams: tuple[int, ...] = (3, 4, 5)
    de_clause_negation: bool = True
    de_lexicon_feats: bool = True
    negated_chars: bool = False
    link_feature: bool = False


#: What an artifact that predates a switch was trained with (``linear.load_model`` fills these in).
LEGACY_CONFIG = {"negated_chars": True, "link_feature": True}


def _unescape(match: re.Match[str]) -> str:
    return chr(int(match.group(1), 16))


def _bucket(count: int) -> int:
    return count if count < 3 else 3


class Featurizer:
    """Turns texts into named features and hashed char n-gram buckets.

    ``de_lexicon`` maps folded German word forms to a polarity in [-1, 1] (the model artifact
    carries it); it is consulted for ``lang == "de"`` only.
    """

    def __init__(
        self, config: FeatureConfig | None = None, de_lexicon: Mapping[str, float] | None = None
    ) -> None:
        self.config = config or FeatureConfig()
        self.de_lexicon = dict(de_lexicon or {})
        if not 8 <= self.config.bits <= 30:
            raise ValueError(f"bits must be in 8..30, got {self.config.bits}")
        self._shift = np.uint64(64 - self.config.bits)
        self._cache_en: dict[str, TokenInfo] = {}
        self._cache_de: dict[str, TokenInfo] = {}

    def named(self, text: str, lang: str = "en") -> tuple[list[str], list[str]]:
        """Named features of ``text`` and the words whose char n-grams are features."""
        if "&" in text:
            text = html.unescape(text)
        if "\\u" in text:  # literal escapes left in some tweets
            text = _ESCAPE.sub(_unescape, text)
        shouting = len(_CAPS.findall(text))
        folded = fold(text)
        low = _URL.sub(" URL ", folded) if "http" in folded or "www." in folded else folded
        elongated = _ELONG.sub(r"\1\1", low)
        feats: list[str] = []
        if elongated != low:
            feats.append("ELONG")
        if shouting:
            feats.append("CAPS" if shouting < 3 else "CAPS3")
        german = lang == "de"
        use_big = german and self.config.de_lexicon_feats
        clause_neg = german and self.config.de_clause_negation
        negated_chars = self.config.negated_chars
        link_feature = self.config.link_feature
        cache = self._cache_de if german else self._cache_en
        if len(cache) > CACHE_SIZE:  # bounded: a long-running service sees endless new tokens
            cache.clear()
        words: list[str] = []
        pos = neg = 0
        gpos = gneg = 0.0  # large-lexicon sums, whole text
        cpos = cneg = 0.0  # large-lexicon sums, current clause
        negated_clause = False
        has_url = False
        marked = False  # "!", "?" or an emoji seen
        persons = 0  # bit 1: first person, bit 2: second person
        epos = eneg = 0  # polar emoji
        boost = 1  # 2 right after an intensifier ("echt toll", "really good")
        scope = 0
        prev = "<s>"
        append = feats.append
        for tok in _TOKEN.findall(elongated):
            info = cache.get(tok)
            if info is None:
                info = cache[tok] = self._token_info(tok, lang)
            kind, word, p, g, person = info
            if kind == _WORD:
                persons |= person & 3
                if boost > 1:
                    p *= boost
                    g *= boost
                boost = 2 if person & 4 else 1
                if scope:
                    scope -= 1
                    p = -p
                    append("w:~" + word)
                    if not clause_neg:  # forward scope only
                        g = -g
                    if negated_chars:
                        words.append(word)
                else:
                    append("w:" + word)
                    words.append(word)
                if p > 0:
                    pos += int(p)
                elif p < 0:
                    neg -= int(p)
                if g > 0:
                    cpos += g
                elif g < 0:
                    cneg -= g
                if tok[0] == "#":
                    append("w:#")
                append("b:" + prev + "_" + word)
                prev = word
            elif kind == _BREAK:
                if negated_clause:
                    cpos, cneg = cneg, cpos
                gpos += cpos
                gneg += cneg
                cpos = cneg = 0.0
                negated_clause = False
                scope = 0
                boost = 1
                append("w:" + word)
                prev = word
                if word[0] != "." and word[0] != "," and word[0] != ";" and word[0] != ":":
                    marked = True  # "!" or "?": the writer speaks up
            elif kind == _NEGATOR:
                scope = NEGATION_SCOPE
                negated_clause = clause_neg
                append("w:" + word)
                append("b:" + prev + "_" + word)
                prev = word
            elif kind == _EMOJI_KIND:  # mood of the writer, never negated
                append("w:E" + word)
                marked = True
                if p > 0:
                    pos += 1
                    epos += 1
                elif p < 0:
                    neg += 1
                    eneg += 1
                prev = word
            elif kind == _HANDLE:
                append("w:@user")
                append("b:" + prev + "_@user")
                prev = "@user"
            elif link_feature:  # URL: once per text, it marks link posts, not their number
                if not has_url:
                    append("URL")
                    has_url = True
                prev = "URL"
        if pos:
            feats.append(f"LEX+{_bucket(pos)}")
        if neg:
            feats.append(f"LEX-{_bucket(neg)}")
        if pos and neg:
            feats.append("LEX+-")
        if use_big:
            if negated_clause:
                cpos, cneg = cneg, cpos
            gpos += cpos
            gneg += cneg
            if gpos:
                feats.append(f"GL+{_bucket(int(gpos + 0.5))}")
            if gneg:
                feats.append(f"GL-{_bucket(int(gneg + 0.5))}")
            if gpos and gneg:
                feats.append("GL+-")
            if not (gpos or gneg or pos or neg):
                feats.append("GL0")  # no polar word at all: a prior towards neutral
        # Style: who speaks to whom, and a report-like register (news, announcements) that
        # carries no pronoun, no emphasis and no polar word.
        if epos:
            feats.append(f"EMO+{_bucket(epos)}")
        if eneg:
            feats.append(f"EMO-{_bucket(eneg)}")
        if persons & 1:
            feats.append("P1")
        if persons & 2:
            feats.append("P2")
        if not (persons or marked or pos or neg or gpos or gneg):
            feats.append("OBJ")
        return feats, words

    def _token_info(self, tok: str, lang: str) -> TokenInfo:
        """(kind, feature word, small-lexicon polarity, large-lexicon polarity, person bits)."""
        first = tok[0]
        if tok[-1] in _BREAKS:  # a clause break (emoticons never end in one)
            return _BREAK, tok[:2], 0.0, 0.0, 0  # "!!!!" and "!!" are the same signal
        if first == "@":
            return _HANDLE, "@user", 0.0, 0.0, 0
        if not (first.isalnum() or first == "#" or first == "_"):
            return _EMOJI_KIND, tok, polarity(tok, lang), 0.0, 0
        word = tok[1:] if first == "#" else tok
        if word == "URL":
            return _URL_KIND, word, 0.0, 0.0, 0
        if is_negator(word):
            return _NEGATOR, word.replace("'", "").replace("’", ""), 0.0, 0.0, 0
        big = self.de_lexicon.get(word, 0.0) if lang == "de" else 0.0
        person = 1 if word in _FIRST_PERSON else 2 if word in _SECOND_PERSON else 0
        if word in _INTENSIFIERS:
            person |= 4  # the next polar word counts double
        return _WORD, word, polarity(word, lang), big, person

    def char_buckets(self, words: Sequence[Sequence[str]]) -> tuple[I64, I64]:
        """Hashed char n-grams of each text's words: parallel arrays (text row, bucket).

        Each word is padded with spaces (" word "); n-grams never cross words. One numpy pass
        over the whole batch: code points → rolling polynomial hash per n → mixed → top bits.
        """
        owners: list[int] = []
        lens: list[int] = []
        flat: list[str] = []
        for row, ws in enumerate(words):
            for w in ws:
                flat.append(w)
                lens.append(len(w) + 1)
                owners.append(row)
        if not flat:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty
        joined = " " + " ".join(flat) + " "
        cp = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        owner = np.empty(len(cp), dtype=np.int64)
        owner[0] = -1
        owner[1:] = np.repeat(np.asarray(owners, dtype=np.int64), lens)
        size = len(cp)
        inner = cp != 32  # interior characters of an n-gram must not be spaces
        rows_out: list[I64] = []
        buckets_out: list[I64] = []
        h = cp
        valid = np.ones(size - 1, dtype=bool)  # a 2-gram has no interior
        for n in range(2, max(self.config.ngrams) + 1):
            h = h[: size - n + 1] * _P + cp[n - 1 :]
            if n > 2:  # the n-gram at i is valid if i+1 .. i+n-2 are no spaces
                valid = valid[: size - n + 1] & inner[n - 2 : size - 1]
            if n not in self.config.ngrams:
                continue
            idx = np.flatnonzero(valid)
            mixed = h[idx] ^ np.uint64(n)
            mixed ^= mixed >> _SHIFT
            mixed *= _MIX
            mixed ^= mixed >> _SHIFT
            rows_out.append(owner[idx + 1])
            buckets_out.append((mixed >> self._shift).astype(np.int64))
        return np.concatenate(rows_out), np.concatenate(buckets_out)
