"""Config of enrichment (owned by monitor/enrich)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from monitor.config.base import Section

#: The languages py3langid's model labels (``monitor.enrich.lang``); a test keeps the list
#: equal to the model's. Kept here so that checking a config does not load the model (0.4 s).
_LANGUAGE_ID_TEXT = """
    ace af am an ar ary arz as az ba bcl be bg bn br bs ca crh cs cy da de dz el en eo es
    et eu ext fa fi fo fr fuv fy ga gcf gcr gd gl gom grc gu gug guw ha hbo he hi hr ht hu
    hy id ig is it ja jv ka kab kik kk km kn ko ku ky la lb lg lij ln lo lt ltg lv mg mk
    ml mn mr ms mt my ne nl nn no nso oc om or pa pcm pl ps pt qu ro ru rw sa sdh se si sk
    sl sn so sq sr st sv sw ta te tg th tk tl tr tt ug uk ur uz uzs vec vi vo wa wuu xh yo
    yue zh zu zxx
"""
LANGUAGE_ID_CODES = frozenset(_LANGUAGE_ID_TEXT.split())


def _language_code(value: str) -> str:
    """A code language ID can answer with; anything else would be preferred in vain.

    >>> _language_code("fr")
    'fr'
    >>> _language_code("klingon")
    Traceback (most recent call last):
    ...
    ValueError: not a language that language ID knows (a lower-case ISO 639 code: en, de, fr, …)
    """
    if value not in LANGUAGE_ID_CODES:
        raise ValueError(
            "not a language that language ID knows (a lower-case ISO 639 code: en, de, fr, …)"
        )
    return value


LanguageCode = Annotated[str, AfterValidator(_language_code)]


class EnrichmentConfig(Section):
    """How mentions are enriched: language, sentiment, content words."""

    sentiment: Literal["baseline", "linear"] = "linear"
    """`linear`: the trained model shipped in the package; `baseline`: the hand-written
    lexicon."""
    languages: list[LanguageCode] = Field(default=["en", "de"], min_length=1)
    """Languages language ID prefers on short texts (ISO 639 codes it knows). Sentiment does not
    depend on it: German gets the German model, every other language the English one."""
    language_boost: float = Field(default=4.0, ge=1.0, le=100.0)
    """How strongly those languages are preferred (a factor on their language-ID score)."""
    trust_source_lang: bool = True
    """Keep a language the collector already knew instead of detecting it again."""
    batch_size: int = Field(default=256, ge=1)
    """Mentions taken from the queue and scored together (larger: faster, burstier)."""
    max_terms: int = Field(default=32, ge=0, le=1000)
    """Content words of a mention counted for emerging terms (0: no term detection)."""
