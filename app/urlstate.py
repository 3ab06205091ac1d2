"""The view state <-> URL query string, in one place.

A view is reproduced by its URL: ``/explore?model=demo-lstm&layer=1&state=h&k=8&w=he&w=she&s=<id>``
(``unit=38`` picks a unit for the detail view; ``detail=unit`` / ``detail=word`` names the detail mode when
the words and the unit alone would not tell it). Explore's settings ride along when not at their defaults:
``stroke`` (link width), ``links=0.2-1`` (the link filter), ``clip`` (log10 of the colour clip) and ``opt``
(repeatable: ``pos``, ``align``, ``glyphs``; ``opt=none`` for none of them). The projection page adds
``map=pca|tsne``, ``by=pos|cluster`` and may carry more words (``w``, up to ``MAX_PICKED``: its map
selection, of which views of a few words use the first ``MAX_WORDS``) and more units (``unit`` the first,
``u`` the others). Repeated keys carry lists (``w`` words, ``s`` sentence ids), so words may hold any
character. Decoding never fails: malformed values fall back to defaults and out-of-range ones are clamped,
each noted in ``ViewState.notes`` so that the page can say in one line what it corrected.
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
STROKE_DEFAULT, STROKE_RANGE, STROKE_STEP = 1.0, (0.25, 3.0), 0.25
LINKS_DEFAULT, LINKS_STEP = (0.1, 1.0), 0.05
CLIP_RANGE, CLIP_STEP = (-3.0, 0.5), 0.25
VIEW_OPTIONS = ("pos", "align", "glyphs")
OPTIONS_DEFAULT = ("pos", "align")


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
    stroke: float = STROKE_DEFAULT   # explore: link stroke width
    links: tuple[float, float] = LINKS_DEFAULT   # explore: link filter, |e| relative to the strongest
    clip: float | None = None        # explore: log10 of the colour clip (None = the model's typical response)
    options: tuple[str, ...] = OPTIONS_DEFAULT   # explore: POS colours, aligned clouds, glyphs beside the chips
    bad_model: str | None = field(default=None, compare=False)  # a model id that is not a valid id
    notes: tuple[str, ...] = field(default=(), compare=False)  # what decoding corrected, one phrase each

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


def bounded_int(v: Any, lo: int, hi: int, default: int | None, notes: list[str] | None = None,
                name: str = "") -> int | None:
    """The integer of ``v`` clamped to lo..hi, or ``default``; what was changed is appended to ``notes``."""
    s = first_value(v)
    try:
        n = int(s) if s is not None else None
    except ValueError:
        _note(notes, f"{name} {s!r} is not a whole number: {'default' if default is None else default} used")
        return default
    if n is None:
        return default
    if not lo <= n <= hi:
        _note(notes, f"{name} {n} → {min(max(n, lo), hi)} ({lo}–{hi})")
    return min(max(n, lo), hi)


def _note(notes: list[str] | None, text: str) -> None:
    if notes is not None:
        notes.append(text[:120])


def _stepped(s: str | None, lo: float, hi: float, step: float) -> float | None:
    """float(s) clamped to lo..hi on a multiple of ``step``, or None (not a finite number)."""
    try:
        x = float(s) if s is not None else None
    except ValueError:
        return None
    if x is None or x != x or x in (float("inf"), float("-inf")):
        return None
    return round(round(min(max(x, lo), hi) / step) * step, 6)


def _bounded_float(v: Any, lo: float, hi: float, step: float, default: float | None, notes: list[str],
                   name: str) -> float | None:
    s = first_value(v)
    if s is None:
        return default
    x = _stepped(s, lo, hi, step)
    if x is None:
        _note(notes, f"{name} {s[:20]!r} is not a number: default used")
        return default
    if abs(x - float(s)) > 1e-9:
        _note(notes, f"{name} {s[:20]} → {x:g} ({lo:g} to {hi:g} in steps of {step:g})")
    return x


def _choice(v: Any, choices: tuple[str, ...], notes: list[str], name: str) -> str | None:
    s = first_value(v)
    if s is not None and s not in choices:
        _note(notes, f"{name} {s[:20]!r} ignored ({' or '.join(choices)})")
        return None
    return s


def _links(v: Any, notes: list[str]) -> tuple[float, float]:
    s = first_value(v)
    if s is None:
        return LINKS_DEFAULT
    parts = [_stepped(p, 0.0, 1.0, LINKS_STEP) for p in s.split("-", 1)] if "-" in s else []
    if len(parts) != 2 or None in parts or parts[0] > parts[1]:
        _note(notes, f"links {s[:20]!r} is not a range like 0.1-1: {LINKS_DEFAULT[0]:g}-{LINKS_DEFAULT[1]:g} used")
        return LINKS_DEFAULT
    return float(parts[0]), float(parts[1])


def _options(v: Any, notes: list[str]) -> tuple[str, ...]:
    given = many_values(v)
    if not given:
        return OPTIONS_DEFAULT
    unknown = [o for o in given if o not in VIEW_OPTIONS and o != "none"]
    if unknown:
        _note(notes, f"opt {', '.join(repr(o[:20]) for o in unknown[:3])} ignored (pos, align, glyphs or none)")
    return tuple(o for o in VIEW_OPTIONS if o in given)


def view_settings(params: Mapping[str, Any], notes: list[str]) -> dict[str, Any]:
    """Explore's settings from the query: stroke, links, clip and options."""
    return dict(stroke=_bounded_float(params.get("stroke"), *STROKE_RANGE, STROKE_STEP, STROKE_DEFAULT, notes,
                                      "stroke"),
                links=_links(params.get("links"), notes),
                clip=_bounded_float(params.get("clip"), *CLIP_RANGE, CLIP_STEP, None, notes, "clip"),
                options=_options(params.get("opt"), notes))


def _settings_pairs(vs: ViewState) -> list[tuple[str, Any]]:
    pairs: list[tuple[str, Any]] = []
    if vs.stroke != STROKE_DEFAULT:
        pairs.append(("stroke", f"{vs.stroke:g}"))
    if tuple(vs.links) != LINKS_DEFAULT:
        pairs.append(("links", f"{vs.links[0]:g}-{vs.links[1]:g}"))
    if vs.clip is not None:
        pairs.append(("clip", f"{vs.clip:g}"))
    if tuple(vs.options) != OPTIONS_DEFAULT:
        pairs += [("opt", o) for o in vs.options] or [("opt", "none")]
    return pairs


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
    notes: list[str] = []
    state = first_value(params.get("state"))
    if state and not _STATE_RE.match(state):
        _note(notes, f"state {state[:20]!r} is not a state name: the default used")
    words = [w.strip()[:100] for w in many_values(params.get("w")) if w.strip()]
    sentences = [s for s in many_values(params.get("s")) if _SENTENCE_RE.match(s)]
    detail = first_value(params.get("detail"))
    unit = bounded_int(params.get("unit"), 0, 1 << 16, None, notes, "unit")
    more_units = [u for u in (bounded_int(x, 0, 1 << 16, None) for x in many_values(params.get("u"))) if u is not None]
    return ViewState(
        model=model,
        layer=bounded_int(params.get("layer"), 0, 64, None, notes, "layer"),
        state=state if state and _STATE_RE.match(state) else None,
        k=bounded_int(params.get("k"), K_MIN, K_MAX, K_DEFAULT, notes, "k") or K_DEFAULT,
        nwords=bounded_int(params.get("n"), 3, 100, NWORDS_DEFAULT, notes, "n") or NWORDS_DEFAULT,
        words=tuple(dict.fromkeys(words))[:MAX_WORDS],
        picked=tuple(dict.fromkeys(words))[:MAX_PICKED],
        sentences=tuple(dict.fromkeys(sentences))[:MAX_SENTENCES],
        unit=unit,
        units=((unit,) + tuple(more_units)) if unit is not None and more_units else (),
        detail=detail,
        model_b=model_b,
        layer_b=bounded_int(params.get("layer_b"), 0, 64, None),
        method=_choice(params.get("map"), MAP_METHODS, notes, "map"),
        color=_choice(params.get("by"), MAP_COLORS, notes, "by"),
        bad_model=bad or bad_b,
        **view_settings(params, notes),
        notes=tuple(notes),
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
    pairs += _settings_pairs(vs)
    return "?" + urlencode(pairs) if pairs else ""


def href(path: str, vs: ViewState) -> str:
    """``path`` plus the query of ``vs`` (for links between pages)."""
    return path + to_query(vs)
