"""The view state <-> URL query string, in one place.

A view is reproduced by its URL: ``/explore?model=demo-lstm&layer=1&state=h&k=8&w=he&w=she&s=<id>``
(``unit=38`` picks a unit for the detail view; ``detail=unit`` / ``detail=word`` names the detail mode when
the words and the unit alone would not tell it).
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
    bad_model: str | None = field(default=None, compare=False)  # a model id that is not a valid id

    def __post_init__(self) -> None:
        # a mode that the unit and the words imply anyway is no mode: one view, one state (and one URL)
        if self.detail not in DETAIL_MODES or self.detail == self._implied_mode():
            object.__setattr__(self, "detail", None)

    def _implied_mode(self) -> str:
        return "unit" if self.unit is not None and not self.words else "word"

    def with_(self, **changes: Any) -> "ViewState":
        return replace(self, **changes)

    @property
    def detail_mode(self) -> str:
        """The detail view's mode: the one the URL names, else unit when only a unit is picked, else word."""
        return self.detail or self._implied_mode()


def _first(v: Any) -> str | None:
    if isinstance(v, (list, tuple)):
        v = v[0] if v else None
    return None if v is None else str(v)


def _many(v: Any) -> list[str]:
    if v is None:
        return []
    return [str(x) for x in (v if isinstance(v, (list, tuple)) else [v])]


def _int(v: Any, lo: int, hi: int, default: int | None) -> int | None:
    s = _first(v)
    try:
        n = int(s) if s is not None else None
    except ValueError:
        return default
    if n is None:
        return default
    return min(max(n, lo), hi)


def _model(v: Any) -> tuple[str | None, str | None]:
    s = _first(v)
    if s is None or s == "":
        return None, None
    return (s, None) if _MODEL_RE.match(s) else (None, s[:200])


def from_query(params: Mapping[str, Any] | str | None) -> ViewState:
    """ViewState from a query string (``?a=b``) or Dash pages' parsed query parameters."""
    if params is None:
        params = {}
    if isinstance(params, str):
        params = {k: v for k, v in parse_qs(params.lstrip("?"), keep_blank_values=True).items()}
    model, bad = _model(params.get("model"))
    model_b, bad_b = _model(params.get("b"))
    state = _first(params.get("state"))
    words = [w.strip()[:100] for w in _many(params.get("w")) if w.strip()]
    sentences = [s for s in _many(params.get("s")) if _SENTENCE_RE.match(s)]
    detail = _first(params.get("detail"))
    return ViewState(
        model=model,
        layer=_int(params.get("layer"), 0, 64, None),
        state=state if state and _STATE_RE.match(state) else None,
        k=_int(params.get("k"), K_MIN, K_MAX, K_DEFAULT) or K_DEFAULT,
        nwords=_int(params.get("n"), 3, 100, NWORDS_DEFAULT) or NWORDS_DEFAULT,
        words=tuple(dict.fromkeys(words))[:MAX_WORDS],
        sentences=tuple(dict.fromkeys(sentences))[:MAX_SENTENCES],
        unit=_int(params.get("unit"), 0, 1 << 16, None),
        detail=detail,
        model_b=model_b,
        layer_b=_int(params.get("layer_b"), 0, 64, None),
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
    pairs += [("w", w) for w in vs.words[:MAX_WORDS]]
    pairs += [("s", s) for s in vs.sentences[:MAX_SENTENCES]]
    if vs.unit is not None:
        pairs.append(("unit", vs.unit))
    if vs.detail:
        pairs.append(("detail", vs.detail))   # only set when the unit and the words do not imply it
    if vs.model_b:
        pairs.append(("b", vs.model_b))
    if vs.layer_b is not None:
        pairs.append(("layer_b", vs.layer_b))
    return "?" + urlencode(pairs) if pairs else ""


def href(path: str, vs: ViewState) -> str:
    """``path`` plus the query of ``vs`` (for links between pages)."""
    return path + to_query(vs)
