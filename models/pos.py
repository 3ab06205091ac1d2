"""Brown tagset -> the 12 universal POS tags of Petrov, Das and McDonald (2012).

Written out here because the mapping is a small public table (their
``en-brown.map``) and no well-kept package on PyPI ships it without pulling in
a whole NLP toolkit.  Brown tags carry decorations that do not change the
class: ``-tl`` (title), ``-hl`` (headline), ``-nc`` (cited), ``fw-`` (foreign
word), a trailing ``*`` (negation) and ``$`` (possessive); contractions such as
``ppss+md`` take the class of their first part.
"""
from __future__ import annotations

UNIVERSAL_TAGS = ("NOUN", "VERB", "ADJ", "ADV", "PRON", "DET", "ADP", "NUM", "CONJ", "PRT", ".", "X")

_EXACT = {
    # punctuation
    ".": ".", ",": ".", ":": ".", "(": ".", ")": ".", "--": ".", "'": ".", "''": ".", "``": ".", "'s": "PRT",
    # nouns
    "nn": "NOUN", "nns": "NOUN", "np": "NOUN", "nps": "NOUN", "nr": "NOUN", "nrs": "NOUN",
    # verbs (modals are verbs in the universal set)
    "md": "VERB", "vb": "VERB", "vbd": "VERB", "vbg": "VERB", "vbn": "VERB", "vbz": "VERB",
    # adjectives, ordinals
    "jj": "ADJ", "jjr": "ADJ", "jjs": "ADJ", "jjt": "ADJ", "od": "ADJ",
    # adverbs and qualifiers
    "rb": "ADV", "rbr": "ADV", "rbt": "ADV", "rn": "ADV", "wrb": "ADV", "ql": "ADV", "qlp": "ADV", "abl": "ADV",
    # pronouns
    "pn": "PRON", "pp$": "PRON", "pp$$": "PRON", "ppl": "PRON", "ppls": "PRON", "ppo": "PRON",
    "pps": "PRON", "ppss": "PRON", "wp$": "PRON", "wpo": "PRON", "wps": "PRON",
    # determiners
    "at": "DET", "ap": "DET", "abn": "DET", "abx": "DET", "dt": "DET", "dti": "DET", "dts": "DET",
    "dtx": "DET", "wdt": "DET", "ex": "DET",
    "in": "ADP", "cd": "NUM", "cc": "CONJ", "cs": "CONJ", "to": "PRT", "rp": "PRT",
    "uh": "X", "nil": "X", "*": "ADV", "wql": "ADV",
}
_PREFIX = (("be", "VERB"), ("do", "VERB"), ("hv", "VERB"))


def brown_to_universal(tag: str) -> str:
    """Map one Brown tag (e.g. ``np-tl``, ``ber*``, ``nn$``) to a universal tag."""
    t = tag.lower()
    if t.startswith("fw-"):
        return "X"
    if t in _EXACT:
        return _EXACT[t]
    t = t.split("+")[0]
    for suffix in ("-tl", "-hl", "-nc"):
        t = t.replace(suffix, "")
    t = t.rstrip("*") or t
    if t not in _EXACT and t.endswith("$") and len(t) > 1:
        t = t[:-1]
    if t in _EXACT:
        return _EXACT[t]
    for prefix, universal in _PREFIX:
        if t.startswith(prefix):
            return universal
    return "X"
