"""A small hand-written polarity lexicon (English, German, emoji) and negation cues.

Used by the baseline scorer and as dense features of the trained model, where it gives the
few German training examples a head start. Entries are folded (lower-case, no accents) so
they compare directly with :func:`monitor.enrich.text.tokenize` output; a trailing ``*`` marks
a stem (``enttausch*`` covers enttäuscht, enttäuschend, Enttäuschung).

>>> polarity("great"), polarity("enttauschend"), polarity("😡"), polarity("table")
(1.0, -1.0, -1.0, 0.0)
"""

from __future__ import annotations

_POSITIVE = """
good great excellent amazing awesome love loved loving lovely like liked best better nice happy
glad thanks thank thx fantastic wonderful perfect fun cool brilliant enjoy enjoyed beautiful
superb win winning won excited exciting congrats congratulations recommend recommended
fixed resolved helpful fast smooth reliable impressed impressive yay proud favorite favourite
awesome outstanding pleased grateful appreciate appreciated sweet yes wow kudos solid legit
gut super toll tolle toller klasse prima danke dank liebe lieben geil genial schone
perfekt freue freut froh glucklich begeistert empfehlen empfehlung spitze hervorragend
wunderbar wunderschon zufrieden lecker schnell erfolgreich erfolg gewonnen gewinnen bravo
juhu endlich stark starke lieb sympathisch herzlich gluckwunsch hilfreich geklappt behoben
"""

_NEGATIVE = """
bad worse worst terrible awful horrible hate hated hating sucks suck sucked poor angry annoyed
annoying disappointed disappointing disappointment broken broke fail failed failing failure
outage down crash crashed crashing bug buggy scam fraud refund useless waste slow sad sorry
lost lose losing problem problems issue issues error errors never ridiculous disgusting
unacceptable shame shameful boycott lawsuit recall recalled scandal rude late delay delayed
cancel cancelled canceled stupid wtf fuck fucking shit crap damn die dead death kill killed
angry pathetic ugly nightmare complaint complain complaining hacked breach leak leaked toxic
schlecht schlechter schlechteste scheisse mist kaputt ausfall ausgefallen storung defekt
ruckruf skandal betrug betruger enttausch* argerlich arger wutend sauer traurig leider
furchtbar schrecklich katastrophe katastrophal nervig nervt hasse hass peinlich langsam
verspatung verspatet unverschamt frechheit abzocke klage beschwerde problem probleme fehler
schade dumm blod doof ekelhaft ekel tot tod angst sorge sorgen kritik versagt versagen
"""

_EMOJI_POSITIVE = "😀😃😄😁😆😊🙂😍🥰😘😎🤩👍👏🙌💪🎉🥳❤💕💖💙💚💛💜🧡😂🤣✨🔥⭐✅😇☺♥"
_EMOJI_NEGATIVE = "😠😡🤬😤😞😔😟😕🙁☹😣😖😫😩😢😭😱😨😰🤮🤢👎💔😒🙄😑😐❌⚠💩"

_NEGATORS_TEXT = """
    not no never none nobody nothing neither nor without cannot cant dont doesnt didnt isnt
    wasnt arent werent wont wouldnt shouldnt couldnt hasnt havent hadnt aint nicht kein keine
    keiner keinen keinem keines nie niemals nichts ohne weder"""
NEGATORS = frozenset(_NEGATORS_TEXT.split())

_STEMS_POS = tuple(w[:-1] for w in _POSITIVE.split() if w.endswith("*"))
_STEMS_NEG = tuple(w[:-1] for w in _NEGATIVE.split() if w.endswith("*"))
LEXICON: dict[str, float] = {}
for _w in _POSITIVE.split():
    LEXICON[_w] = 1.0
for _w in _NEGATIVE.split():
    LEXICON[_w] = -1.0
for _c in _EMOJI_POSITIVE:
    LEXICON[_c] = 1.0
for _c in _EMOJI_NEGATIVE:
    LEXICON[_c] = -1.0


def polarity(token: str) -> float:
    """+1 / -1 / 0 for a folded token (a hashtag counts as its word)."""
    word = token[1:] if token[:1] == "#" else token
    value = LEXICON.get(word)
    if value is not None:
        return value
    if word.startswith(_STEMS_NEG):
        return -1.0
    if word.startswith(_STEMS_POS):
        return 1.0
    return 0.0


def is_negator(token: str) -> bool:
    """Does this token negate what follows? Apostrophes are ignored (``don't`` = ``dont``).

    >>> is_negator("don't"), is_negator("nicht"), is_negator("nice")
    (True, True, False)
    """
    return token.replace("'", "").replace("’", "") in NEGATORS or token.endswith("n't")
