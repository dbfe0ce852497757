"""Content terms of a mention, for the emerging-term detector.

>>> content_terms(["rt", "@acme", "the", "#outage", "else", "not", "fixed", "😡", "2024", "outage"])
('outage', 'fixed')
>>> content_terms(["status", "acme", "com"])  # a bare domain: its ending is no term
('status', 'acme')
>>> content_terms(["$acme", "c&a", "e.g", "3.5"])  # a cashtag is its word; C&A is a term
('acme', 'c&a')
"""

from __future__ import annotations

_STOPWORDS_TEXT = """
    a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    out over own same she should so some such than that the their theirs them then there these
    they this those through to too under until up very was we were what when where which while
    who whom why will with would you your yours yourself im ive id youre dont doesnt didnt isnt
    cant wont its it's i'm don't doesn't didn't isn't can't won't i've you're that's thats rt
    amp via lol u ur gonna get got go going one like new today still yet really us i'll you'll
    he'll she'll we'll they'll it'll i'd you'd he'd she'd we'd they'd you've we've they've we're
    they're aren't wasn't weren't hasn't haven't hadn't shouldn't wouldn't couldn't mustn't ain't
    y'all youll theyre arent wasnt werent hasnt havent hadnt shouldnt wouldnt couldnt aint yall
    may might must shall even much many ever every since though although whether upon within
    without across onto per etc another anyone everyone someone something anything everything
    else anybody everybody somebody nobody nothing
    oh http https www lt gt quot nbsp
    com net org io co de html htm php e.g i.e z.b d.h u.a o.k
    aber alle allem allen aller alles als also am an ander andere anderen auch auf aus bei bin
    bis bist da damit dann das dass dein deine dem den der des dich die dies diese diesem diesen
    dieser dieses dir doch dort du durch ein eine einem einen einer eines er es etwas euch euer
    fur hab habe haben hat hatte hier hin hinter ich ihm ihn ihnen ihr ihre im in ist ja jede
    jedem jeden jeder jetzt kann kein keine mal man mehr mein meine mich mir mit muss nach nicht
    nichts noch nun nur ob oder ohne schon sehr sein seine sich sie sind so soll sondern um und
    uns unser unter vom von vor war waren warum was weil weiter wenn wer werden wie wieder will
    wir wird wo zu zum zur uber fuer ueber gegen denn beim ins ans aufs seit hast habt hatten
    hattest wurde wurden worden wuerde ware waere konnen koennen konnte konnten kannst musst
    mussen muessen musste sollte sollen sollten wollen wollte willst darf durfen mochte moechte
    sei seid keinen keiner keinem keines meinem meinen meiner meines deinem deinen deiner seinem
    seinen seiner ihrem ihren ihrer unsere unseren unserem eure euren halt eben ne na ach gar
    wohl eigentlich gerade grad sonst erst dabei dazu dafur daran darauf drauf davon immer heute
    bzw usw sowie zwischen wegen trotz welche welcher welches welchen jemand selbst viel viele
"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())


def content_terms(tokens: list[str], limit: int = 32) -> tuple[str, ...]:
    """Folded words without stopwords, handles, emoji and numbers; hashtags and cashtags lose
    ``#``/``$``; deduped.

    ``tokens`` come from :func:`monitor.enrich.text.tokenize` (already folded, URLs removed).
    """
    seen: dict[str, None] = {}
    if limit <= 0:
        return ()
    for tok in tokens:
        first = tok[0]
        if first == "@":
            continue
        word = tok[1:] if first == "#" or first == "$" else tok
        if len(word) < 2 or word in STOPWORDS or not word[0].isalpha():
            continue
        seen[word] = None
        if len(seen) >= limit:
            break
    return tuple(seen)
