"""A small hand-written polarity lexicon (English, German, emoji) and negation cues.

Used by the baseline scorer and as dense features of the trained model, where it gives the
few German training examples a head start. Entries are folded (lower-case, no accents) so
they compare directly with :func:`monitor.enrich.text.tokenize` output; a trailing ``*`` marks
a stem (``enttausch*`` covers enttäuscht, enttäuschend, Enttäuschung).

>>> polarity("great"), polarity("enttauschend"), polarity("😡"), polarity("table")
(1.0, -1.0, -1.0, 0.0)
"""

from __future__ import annotations

from monitor.enrich.text import umlaut_variants

_POSITIVE_EN = """
good great excellent amazing awesome love loved loving lovely like liked best better nice happy
glad thanks thank thx fantastic wonderful perfect fun cool brilliant enjoy enjoyed beautiful
superb win winning won excited exciting congrats congratulations recommend recommended
fixed resolved helpful fast smooth reliable impressed impressive yay proud favorite favourite
awesome outstanding pleased grateful appreciate appreciated sweet yes wow kudos solid legit
haha lol
restored solved repaired recovered
"""

# German entries are written as Germans spell them; each is stored folded (ü -> u, as the
# features see it) and in its umlaut-free spelling (ü -> ue: "Rueckruf"), see _variants.
_POSITIVE_DE = """
gut super toll tolle toller klasse prima danke dank liebe lieben geil genial schöne
perfekt freue freut froh glücklich begeistert empfehlen empfehlung spitze hervorragend
wunderbar wunderschön zufrieden lecker schnell erfolgreich erfolg gewonnen gewinnen bravo
juhu endlich stark starke lieb sympathisch herzlich glückwunsch hilfreich geklappt behoben
freu* glück* liebling lustig witzig cool schönes schönen schöner hübsch* großartig wow yeah
haha hihi hehe lol
gefällt gefallen mag spaß vergnügen feier* gewinn* sieg* traum* schatz* süß* lachen lacht
danke* dankbar beste besten bester bestes gern gerne jaa yay genieß* wunder* klasse*
gelöst repariert wiederhergestellt
"""

_NEGATIVE_EN = """
bad worse worst terrible awful horrible hate hated hating sucks suck sucked poor angry annoyed
annoying disappointed disappointing disappointment broken broke fail failed failing failure
outage down crash crashed crashing bug buggy scam fraud refund useless waste slow sad sorry
lost lose losing problem problems issue issues error errors never ridiculous disgusting
unacceptable shame shameful boycott lawsuit recall recalled scandal rude late delay delayed
cancel cancelled canceled stupid wtf fuck fucking shit crap damn die dead death kill killed
angry pathetic ugly nightmare complaint complain complaining hacked breach leak leaked toxic
outages lawsuits sued suing recalls breached breaches leaks hack hackers phishing ransomware
cyberattack explosion exploded exploding explodes poisoning poisoned contaminated contamination
injured injuries burned layoffs bankrupt bankruptcy insolvency glitch glitches malfunction
defective faulty overcharged stolen shitstorm
"""

_NEGATIVE_DE = """
schlecht schlechter schlechteste scheiße mist kaputt ausfall* ausgefallen störung* defekt
rückruf* skandal* betrug betrüger enttäusch* ärgerlich ärger wütend sauer traurig leider
furchtbar schrecklich katastrophe katastrophal nervig nervt hasse hass peinlich langsam
verspätung verspätet unverschämt frechheit abzocke klage beschwerde problem probleme fehler
schade dumm blöd doof ekelhaft ekel tot tod angst sorge sorgen kritik versagt versagen
hass* wut* ärger* ärgern nerv* langweilig traurig* heul* wein* kotz* mies* übel
scheiß* verdammt kacke krank* schmerz* stress* genervt hässlich fies gemein unfair lüge* lügt
verlier* verlor* niederlage* pleite schlimm* fehl* angst* panik gefahr* tragisch verletzt
opfer krieg terror mord* unfall* böse dreck* schrott* unmöglich bloed bescheuert
datenleck* datenpanne* datendiebstahl* hackerangriff* cyberangriff* gehackt sammelklage*
insolvenz* netzausfall* stromausfall* serverausfall* totalausfall* shitstorm* panne pannen
absturz abgestürzt explosion* vergiftung* lebensmittelvergiftung* boykott* entlassung*
"""

# Emoji and emoticons count in every language. Added in the thirteenth session (QA: ~65 lexicon
# emoji only): ones whose use in complaints and praise is one-sided; 💀 😅 🥲 😏 😳 🤯 are
# left out (laughing and despairing alike).
_EMOJI_POSITIVE = (
    "😀😃😄😁😆😊🙂😍🥰😘😎🤩👍👏🙌💪🎉🥳❤💕💖💙💚💛💜🧡😂🤣✨🔥⭐✅😇☺♥"
    "💯🙏👌🤝🤗😌🌟🏆🥇💐🎊😻👑🫶💗💓💝😋🤘"
)
_EMOJI_NEGATIVE = (
    "😠😡🤬😤😞😔😟😕🙁☹😣😖😫😩😢😭😱😨😰🤮🤢👎💔😒🙄😑😐❌⚠💩"
    "🖕🤡🤦🙃😬🫠🤷😓😥😪😿🥴🤥💢😵🚮🗑⛔🆘🚨📉🙅🤨😦😧"
)

_NEGATORS_TEXT = """
    not no never none nobody nothing neither nor without cannot cant dont doesnt didnt isnt
    wasnt arent werent wont wouldnt shouldnt couldnt hasnt havent hadnt aint nicht kein keine
    keiner keinen keinem keines nie niemals nichts ohne weder"""
NEGATORS = frozenset(_NEGATORS_TEXT.split())


def _table(words: str, german: bool = False) -> tuple[dict[str, float], tuple[str, ...]]:
    """Exact words and stems (``enttäusch*``). German entries are stored folded, as the features
    see them (``ruckruf*``), and in their umlaut-free spelling (``rueckruf*``, as people without
    umlaut keys write it); ``ß`` folds to ``ss`` either way.

    >>> _table("rückruf* gut", german=True)
    ({'gut': 1.0}, ('ruckruf', 'rueckruf'))
    """
    entries = [v for w in words.split() for v in umlaut_variants(w)] if german else words.split()
    exact = {w: 1.0 for w in entries if not w.endswith("*")}
    return exact, tuple(w[:-1] for w in entries if w.endswith("*"))


# Per language, because the same spelling differs across them ("die", "bad", "gift").
_TABLES: dict[str, tuple[dict[str, float], tuple[str, ...], dict[str, float], tuple[str, ...]]] = {
    "en": (*_table(_POSITIVE_EN), *_table(_NEGATIVE_EN)),
    "de": (*_table(_POSITIVE_DE, german=True), *_table(_NEGATIVE_DE, german=True)),
}
# Emoticons as the sentiment features tokenise them (folded: ":D" -> ":d").
_EMOTICONS_POSITIVE = ":) :-) :)) ;) ;-) :d :-d ;d =) =d <3 <33 xd ^^ ^_^ :p :-p"
_EMOTICONS_NEGATIVE = ":( :-( :(( ;( :'( =( -_- :/ :-/ :|"
_EMOJI: dict[str, float] = (
    {c: 1.0 for c in _EMOJI_POSITIVE}
    | {c: -1.0 for c in _EMOJI_NEGATIVE}
    | {e: 1.0 for e in _EMOTICONS_POSITIVE.split()}
    | {e: -1.0 for e in _EMOTICONS_NEGATIVE.split()}
)


def polarity(token: str, lang: str = "") -> float:
    """+1 / -1 / 0 for a folded token (a hashtag counts as its word) in ``lang``.

    Emoji count in every language; an empty ``lang`` tries English, then German.
    """
    word = token[1:] if token[:1] == "#" else token
    value = _EMOJI.get(word)
    if value is not None:
        return value
    for code in (lang,) if lang in _TABLES else ("en", "de"):
        pos, pos_stems, neg, neg_stems = _TABLES[code]
        if word in neg or (neg_stems and word.startswith(neg_stems)):
            return -1.0
        if word in pos or (pos_stems and word.startswith(pos_stems)):
            return 1.0
    return 0.0


def is_negator(token: str) -> bool:
    """Does this token negate what follows? Apostrophes are ignored (``don't`` = ``dont``).

    >>> is_negator("don't"), is_negator("nicht"), is_negator("nice")
    (True, True, False)
    """
    return token.replace("'", "").replace("’", "") in NEGATORS or token.endswith("n't")
