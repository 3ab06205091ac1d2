"""The view state <-> URL query string, in one place.

A view is reproduced by its URL: ``/explore?model=demo-lstm&layer=1&state=h&k=8&w=he&w=she&s=<id>``
(``unit=38`` picks a unit for the detail view; ``detail=unit`` / ``detail=word`` names the detail mode when
the words and the unit alone would not tell it). The projection page adds ``map=pca|tsne``, ``by=pos|cluster``
and may carry more words (``w``, up to ``MAX_PICKED``: its map selection, of which views of a few words
use the first ``MAX_WORDS``) and more units (``unit`` the first, ``u`` the others).
Repeated keys carry lists (``w`` words, ``s`` sentence ids), so words may hold
any character. Decoding never fails: malformed values fall back to defaults
(the page then says what it could not find, e.g. an unknown model).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, urlencode

K_MIN, K_MAX = 2, 20
K_DEFAULT = 6
NWORDS_DEFAULT = 20
MAX_WORDS = 3            # words overlaid in the detail view
MAX_SENTENCES = 4
DETAIL_MODES = ("word", "unit")
MAX_PICKED = 100         # words and units selected on the projection map
MAP_METHODS = ("tsne", "pca")
MAP_COLORS = ("pos", "cluster")
_STATE_RE = re.compile(r"^[a-z]{1,8}$")
_SENTENCE_RE = re.compile(r"^[0-9a-f]{8,40}$")
_MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class ViewState:
    """What a URL pins down. ``model``/``layer``/``state`` None = the page's default."""

    model: str | None = None
    layer: int | None = None
    state: str | None = None
    k: int = K_DEFAULT
    nwords: int = NWORDS_DEFAULT
    words: tuple[str, ...] = ()
    sentences: tuple[str, ...] = ()
    unit: int | None = None          # the unit picked for the unit-centred detail
    detail: str | None = None        # detail mode, "word" or "unit"; None = unit when a unit and no words are set
    model_b: str | None = None       # compare page
    layer_b: int | None = None
    method: str | None = None        # projection page: "pca" or "tsne" (None = t-SNE)
    color: str | None = None         # projection page: words coloured by "pos" or "cluster" (None = POS)
    picked: tuple[str, ...] = ()     # every word selected on the map when more than MAX_WORDS; words = its head
    units: tuple[int, ...] = ()      # every unit selected on the map when more than one; unit = its first
    bad_model: str | None = field(default=None, compare=False)  # a model id that is not a valid id

    def __post_init__(self) -> None:
        picked = tuple(dict.fromkeys(self.picked))[:MAX_PICKED]
        if picked:
            object.__setattr__(self, "words", picked[:MAX_WORDS])
        object.__setattr__(self, "picked", picked if len(picked) > MAX_WORDS else ())
        units = tuple(dict.fromkeys(self.units))[:MAX_PICKED]
        if units:
            object.__setattr__(self, "unit", units[0])
        object.__setattr__(self, "units", units if len(units) > 1 else ())
        if self.method not in MAP_METHODS:
            object.__setattr__(self, "method", None)
        if self.color not in MAP_COLORS:
            object.__setattr__(self, "color", None)
        # a mode that the unit and the words imply anyway is no mode: one view, one state (and one URL)
        if self.detail not in DETAIL_MODES or self.detail == self._implied_mode():
            object.__setattr__(self, "detail", None)

    def _implied_mode(self) -> str:
        return "unit" if self.unit is not None and not self.words else "word"

    def with_(self, **changes: Any) -> ViewState:
        return replace(self, **changes)

    @property
    def map_words(self) -> tuple[str, ...]:
        """The words selected on the projection map (all of them, not only the first MAX_WORDS)."""
        return self.picked or self.words

    @property
    def map_units(self) -> tuple[int, ...]:
        """The units selected on the projection map."""
        return self.units or ((self.unit,) if self.unit is not None else ())

    @property
    def detail_mode(self) -> str:
        """The detail view's mode: the one the URL names, else unit when only a unit is picked, else word."""
        return self.detail or self._implied_mode()


def first_value(v: Any) -> str | None:
    if isinstance(v, (list, tuple)):
        v = v[0] if v else None
    return None if v is None else str(v)


def many_values(v: Any) -> list[str]:
    if v is None:
        return []
    return [str(x) for x in (v if isinstance(v, (list, tuple)) else [v])]


def bounded_int(v: Any, lo: int, hi: int, default: int | None) -> int | None:
    s = first_value(v)
    try:
        n = int(s) if s is not None else None
    except ValueError:
        return default
    if n is None:
        return default
    return min(max(n, lo), hi)


def model_param(v: Any) -> tuple[str | None, str | None]:
    s = first_value(v)
    if s is None or s == "":
        return None, None
    return (s, None) if _MODEL_RE.match(s) else (None, s[:200])


def from_query(params: Mapping[str, Any] | str | None) -> ViewState:
    """ViewState from a query string (``?a=b``) or Dash pages' parsed query parameters."""
    if params is None:
        params = {}
    if isinstance(params, str):
        params = {k: v for k, v in parse_qs(params.lstrip("?"), keep_blank_values=True).items()}
    model, bad = model_param(params.get("model"))
    model_b, bad_b = model_param(params.get("b"))
    state = first_value(params.get("state"))
    words = [w.strip()[:100] for w in many_values(params.get("w")) if w.strip()]
    sentences = [s for s in many_values(params.get("s")) if _SENTENCE_RE.match(s)]
    detail = first_value(params.get("detail"))
    unit = bounded_int(params.get("unit"), 0, 1 << 16, None)
    more_units = [u for u in (bounded_int(x, 0, 1 << 16, None) for x in many_values(params.get("u"))) if u is not None]
    return ViewState(
        model=model,
        layer=bounded_int(params.get("layer"), 0, 64, None),
        state=state if state and _STATE_RE.match(state) else None,
        k=bounded_int(params.get("k"), K_MIN, K_MAX, K_DEFAULT) or K_DEFAULT,
        nwords=bounded_int(params.get("n"), 3, 100, NWORDS_DEFAULT) or NWORDS_DEFAULT,
        words=tuple(dict.fromkeys(words))[:MAX_WORDS],
        picked=tuple(dict.fromkeys(words))[:MAX_PICKED],
        sentences=tuple(dict.fromkeys(sentences))[:MAX_SENTENCES],
        unit=unit,
        units=((unit,) + tuple(more_units)) if unit is not None and more_units else (),
        detail=detail,
        model_b=model_b,
        layer_b=bounded_int(params.get("layer_b"), 0, 64, None),
        method=first_value(params.get("map")),
        color=first_value(params.get("by")),
        bad_model=bad or bad_b,
    )


def to_query(vs: ViewState) -> str:
    """Query string (with the leading ``?``) for a view state; defaults are left out."""
    pairs: list[tuple[str, Any]] = []
    if vs.model:
        pairs.append(("model", vs.model))
    if vs.layer is not None:
        pairs.append(("layer", vs.layer))
    if vs.state:
        pairs.append(("state", vs.state))
    if vs.k != K_DEFAULT:
        pairs.append(("k", vs.k))
    if vs.nwords != NWORDS_DEFAULT:
        pairs.append(("n", vs.nwords))
    pairs += [("w", w) for w in (vs.picked or vs.words[:MAX_WORDS])]
    pairs += [("s", s) for s in vs.sentences[:MAX_SENTENCES]]
    if vs.unit is not None:
        pairs.append(("unit", vs.unit))
        pairs += [("u", u) for u in vs.units[1:]]
    if vs.detail:
        pairs.append(("detail", vs.detail))   # only set when the unit and the words do not imply it
    if vs.model_b:
        pairs.append(("b", vs.model_b))
    if vs.layer_b is not None:
        pairs.append(("layer_b", vs.layer_b))
    if vs.method:
        pairs.append(("map", vs.method))
    if vs.color:
        pairs.append(("by", vs.color))
    return "?" + urlencode(pairs) if pairs else ""


def href(path: str, vs: ViewState) -> str:
    """``path`` plus the query of ``vs`` (for links between pages)."""
    return path + to_query(vs)
