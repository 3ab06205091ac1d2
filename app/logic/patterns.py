"""Patterns: select a span of tokens, propose the units that stay on across it, find the same pattern in the corpus.

The page state lives in the URL (:class:`PatternState`): ``/patterns?model=m&layer=1&state=h&u=3&u=17&theta=0.5
&from=1200&len=3&at=1190`` (``s`` = a typed sentence's id instead of a corpus passage, ``ob=1`` off before,
``min`` least units matched), so a colleague opening the link sees the same matches.
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, urlencode

import numpy as np
import pandas as pd
from dash import dcc, html

from analytics import patterns
from app import figures, ids
from app.figures.patterns import matches_figure, passage_figure
from app.logic.units import unit_href
from app.reader import Reader
from app.urlstate import bounded_int, first_value, many_values, model_param

PAGE = "/patterns"
PASSAGE = 40          # tokens of a corpus passage
MAX_UNITS = 64        # units in a pattern
MAX_SPAN = 64         # tokens in a span (L)
SHOWN = 30            # matches drawn and listed
CONTEXT = 3           # tokens shown around a match
THETA_DEFAULT = 0.5
_SENTENCE_RE = re.compile(r"^[0-9a-f]{8,40}$")


@dataclass(frozen=True)
class PatternState:
    """What a Patterns URL pins down (None = the page's default)."""

    model: str | None = None
    layer: int | None = None
    state: str | None = None
    units: tuple[int, ...] = ()
    theta: float = THETA_DEFAULT
    start: int | None = None          # span start: a corpus position, or a token index of the sentence
    length: int | None = None         # span length L
    at: int | None = None             # first position of the corpus passage shown
    sentence: str | None = None       # a typed sentence (its id) instead of a corpus passage
    off_before: bool = False
    min_units: int | None = None
    notes: tuple[str, ...] = field(default=(), compare=False)   # what decoding corrected, one phrase each

    @property
    def key(self) -> str | None:
        return f"{self.layer}:{self.state}" if self.layer is not None and self.state else None

    @property
    def span(self) -> dict | None:
        if self.start is None or not self.length:
            return None
        return {"start": self.start, "stop": self.start + self.length, "pending": False}


def from_query(params: Mapping[str, Any] | str | None) -> PatternState:
    """PatternState from a query string or Dash's parsed query; malformed values fall back to defaults."""
    if isinstance(params, str):
        params = parse_qs(params.lstrip("?"), keep_blank_values=True)
    params = params or {}
    notes: list[str] = []
    model, _ = model_param(params.get("model"))
    state = first_value(params.get("state"))
    if state and not re.fullmatch(r"[a-z]{1,8}", state):
        notes.append(f"state {state[:20]!r} ignored")
        state = None
    units = [int(u) for u in many_values(params.get("u")) if u.isdigit() and int(u) < 1 << 16]
    if len(units) < len(many_values(params.get("u"))) or len(dict.fromkeys(units)) > MAX_UNITS:
        notes.append(f"units: only whole numbers, at most {MAX_UNITS} kept")
    sentence = first_value(params.get("s"))
    if sentence and not _SENTENCE_RE.match(sentence):
        notes.append("s is not a sentence id: ignored")
        sentence = None
    return PatternState(
        model=model, layer=bounded_int(params.get("layer"), 0, 64, None, notes, "layer"), state=state,
        units=tuple(dict.fromkeys(units))[:MAX_UNITS], theta=_theta(params.get("theta"), notes),
        start=bounded_int(params.get("from"), 0, 1 << 31, None, notes, "from"),
        length=bounded_int(params.get("len"), 1, MAX_SPAN, None, notes, "len"),
        at=bounded_int(params.get("at"), 0, 1 << 31, None, notes, "at"), sentence=sentence,
        off_before=first_value(params.get("ob")) == "1",
        min_units=bounded_int(params.get("min"), 1, MAX_UNITS, None, notes, "min"), notes=tuple(notes))


def _theta(v: Any, notes: list[str]) -> float:
    """The threshold θ of a link, in -5..5 (a malformed one: the default); what was changed goes to ``notes``."""
    try:
        theta = float(first_value(v) or THETA_DEFAULT)
    except ValueError:
        notes.append(f"theta {str(first_value(v))[:20]!r} is not a number: {THETA_DEFAULT:g} used")
        return THETA_DEFAULT
    if not np.isfinite(theta) or not -5.0 <= theta <= 5.0:
        fixed = THETA_DEFAULT if not np.isfinite(theta) else min(max(theta, -5.0), 5.0)
        notes.append(f"theta {theta:g} → {fixed:g} (-5 to 5)")
        theta = fixed
    return round(theta, 3)


def to_query(ps: PatternState) -> str:
    """The query string (with ``?``) of a pattern state; defaults left out."""
    pairs: list[tuple[str, Any]] = []
    for name, value in (("model", ps.model), ("layer", ps.layer), ("state", ps.state)):
        if value is not None:
            pairs.append((name, value))
    pairs += [("u", u) for u in ps.units]
    if ps.theta != THETA_DEFAULT:
        pairs.append(("theta", f"{ps.theta:g}"))
    if ps.start is not None and ps.length:
        pairs += [("from", ps.start), ("len", ps.length)]
    if ps.sentence:
        pairs.append(("s", ps.sentence))
    elif ps.at is not None:
        pairs.append(("at", ps.at))
    if ps.off_before:
        pairs.append(("ob", 1))
    if ps.min_units:
        pairs.append(("min", ps.min_units))
    return "?" + urlencode(pairs) if pairs else ""


def state_of(model, key, units, theta, span, options, min_units, at, source, sentence) -> PatternState:
    """The page's controls as a PatternState, with the bounds :func:`from_query` applies (a span of 1..MAX_SPAN
    tokens, θ within ±5, at most MAX_UNITS units): a forged span's width never sizes an array."""
    layer, state = parse_key(key)
    span = span if isinstance(span, Mapping) else {}
    start, stop = _position(span.get("start")), _position(span.get("stop"))
    has_span = start is not None and bool(stop)
    use_sentence = source == "sentence" and bool(sentence)
    theta = float(theta if theta is not None else THETA_DEFAULT)
    return PatternState(model=model, layer=layer, state=state, units=tuple(int(u) for u in units or ())[:MAX_UNITS],
                        theta=round(min(max(theta, -5.0), 5.0), 3) if np.isfinite(theta) else THETA_DEFAULT,
                        start=start if has_span else None,
                        length=min(max(stop - start, 1), MAX_SPAN) if has_span else None,
                        at=None if use_sentence else _position(at), sentence=sentence if use_sentence else None,
                        off_before="off" in (options or ()),
                        min_units=min(max(int(min_units), 1), MAX_UNITS) if min_units else None)


def _position(v: Any) -> int | None:
    """A corpus position from a control (None when unset or not a number), within 0..2**31."""
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
        return None
    return min(max(int(v), 0), 1 << 31)


def parse_key(key: str | None) -> tuple[int | None, str | None]:
    if not key or ":" not in key:
        return None, None
    layer, state = key.split(":", 1)
    return (int(layer), state) if layer.isdigit() else (None, None)


def key_options(reader: Reader, model: str | None, wanted: str | None) -> tuple[list[dict], str | None]:
    """(options, value) of the layer-and-state picker: the keys the model stored token states for."""
    if not model:
        return [], None
    info = reader.token_info(model)
    opts = [{"label": f"layer {lay} · {s}", "value": f"{lay}:{s}"} for lay, s in info.keys]
    values = [o["value"] for o in opts]
    return opts, wanted if wanted in values else (values[-1] if values else None)


def source_values(reader: Reader, model: str, key: str, source: str, at: int | None,
                  sentence: str | None) -> tuple[list[str], np.ndarray, int]:
    """(tokens [T], values [T, H], position of token 0) of the passage or the typed sentence."""
    layer, state = parse_key(key)
    if layer is None:
        raise ValueError("pick a layer and state with token states")
    if source == "sentence":
        if not sentence:
            return [], np.zeros((0, 0), np.float32), 0
        tokens, values = reader.sentence_states(sentence, layer, state)
        return list(tokens), values, 0
    info = reader.token_info(model)
    start = min(max(0, int(at or 0)), max(0, info.tokens - PASSAGE))
    stop = min(info.tokens, start + PASSAGE)
    ids_, words, _ = reader.token_text(model)
    return [str(w) for w in words[ids_[start:stop]]], reader.token_passage(model, layer, state, start, stop), start


def span_in(span: dict | None, offset: int, T: int) -> tuple[int, int] | None:
    """The span as indices into the shown tokens, if it lies within them."""
    if not span or span.get("start") is None or span.get("stop") is None:
        return None
    a, b = int(span["start"]) - offset, int(span["stop"]) - offset
    return (a, b) if 0 <= a < b <= T else None


def token_buttons(tokens: Sequence[str], span: dict | None, offset: int) -> list:
    sel = span_in(span, offset, len(tokens))
    pending = bool(span and span.get("pending"))
    out = []
    for i, t in enumerate(tokens):
        cls = "pt-token" + (" in-span" if sel and sel[0] <= i < sel[1] else "") + \
            (" pending" if pending and sel and i == sel[0] else "")
        out.append(html.Button(t, id={"type": ids.PT_TOKEN, "index": i}, n_clicks=0, className=cls,
                               title=f"position {offset + i}"))
    return out


def click(span: dict | None, index: int, offset: int) -> dict:
    """A click on token ``index``: the first click starts a span, the second ends it (either order)."""
    pos = offset + int(index)
    if span and span.get("pending") and span.get("start") is not None:
        a, b = sorted((int(span["start"]), pos))
        return {"start": a, "stop": b + 1, "pending": False}
    return {"start": pos, "stop": pos + 1, "pending": True}


def span_text(tokens: Sequence[str], span: dict | None, offset: int) -> str:
    sel = span_in(span, offset, len(tokens))
    if not sel:
        return "Click the first and the last token of a span."
    words = " ".join(tokens[sel[0]:sel[1]])
    more = " (click its last token)" if span.get("pending") else ""
    return f"Span: “{words}”, {sel[1] - sel[0]} token(s) from position {offset + sel[0]}{more}."


def unit_links(model: str | None, key: str | None, units: Sequence[int] | None) -> list:
    """The pattern's units as links to their unit pages."""
    if not model or not key or ":" not in key or not units:
        return []
    layer, state = key.split(":", 1)
    return ["Unit pages: "] + [dcc.Link(str(u), href=unit_href(model, int(layer), state, int(u)), className="unit-link")
                               for u in list(units)[:MAX_UNITS]]


def shown_units(units: Sequence[int], values: np.ndarray, limit: int = 16) -> list[int]:
    """The chosen units, else the ``limit`` units with the highest values in the passage."""
    if units:
        return [int(u) for u in units if 0 <= int(u) < values.shape[1]]
    if values.size == 0:
        return []
    return [int(u) for u in np.argsort(-np.nanmax(values, axis=0), kind="stable")[:limit]]


def passage_view(reader: Reader, model, key, source, at, sentence, span, theta, units) -> tuple[list, dict, str]:
    """(token buttons, heat map, span text) of the passage or typed sentence."""
    tokens, values, offset = source_values(reader, model, key, source, at, sentence)
    shown = shown_units(units or [], values)
    sel = span_in(span, offset, len(tokens))
    what = "typed sentence" if source == "sentence" else f"corpus positions {offset}-{offset + len(tokens) - 1}"
    fig = passage_figure(tokens, values[:, shown] if shown else values[:, :0], shown, sel,
                         float(theta if theta is not None else THETA_DEFAULT),
                         f"{key} over the {what}" + ("" if units else " (the 16 highest units)"))
    return token_buttons(tokens, span, offset), fig, span_text(tokens, span, offset)


def propose(reader: Reader, model, key, source, at, sentence, span, theta, off_before: bool) -> list[int]:
    """Units on (≥ θ) across the selected span and off right after it (so the span itself matches them all),
    strongest first (at most MAX_UNITS)."""
    tokens, values, offset = source_values(reader, model, key, source, at, sentence)
    sel = span_in(span, offset, len(tokens))
    if sel is None or (span or {}).get("pending"):
        return []
    return patterns.propose_units(values, sel[0], sel[1], float(theta), off_before=off_before, off_after=True,
                                  limit=MAX_UNITS)


def _context(matches: patterns.Matches, word_ids: np.ndarray, words: np.ndarray, series: np.ndarray, width: int):
    """Words [M, W] and the mean value of the pattern's units [M, W] around each match (CONTEXT before)."""
    pos = matches.start[:, None] - CONTEXT + np.arange(width)[None, :]
    ok = (pos >= 0) & (pos < len(word_ids))
    safe = np.clip(pos, 0, max(0, len(word_ids) - 1))
    text = np.where(ok, words[word_ids[safe]], "")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)              # a position with no value: NaN
        mean = np.nanmean(series[safe], axis=2)
    return text.astype(object), np.where(ok, mean, np.nan)


def search_view(reader: Reader, ps: PatternState) -> tuple[dict, list, Any, str]:
    """(matches figure, list of highlighted passages, per-position summary, count line) of a pattern."""
    if not ps.model or ps.layer is None or not ps.units or not ps.length:
        return (figures.message_figure("Select a span and units, then Search.", height=160), [], [],
                "No search yet.")
    series = reader.unit_series(ps.model, ps.layer, ps.state, ps.units)
    found = patterns.search(series, ps.theta, ps.length, units=ps.units, off_before=ps.off_before,
                            min_units=ps.min_units)
    word_ids, words, tags = reader.token_text(ps.model)
    summary = patterns.position_summary(found, word_ids, words, tags)
    top = patterns.Matches(found.start[:SHOWN], found.stop[:SHOWN], found.score[:SHOWN], found.matched[:SHOWN],
                           found.units, found.total)
    width = CONTEXT + ps.length + 1 + CONTEXT
    text, mean = _context(top, word_ids, words, series, width)
    k = len(ps.units)
    need = ps.min_units or k
    full = int((found.score == k).sum())
    heading = f"{found.total} matches (≥ {need} of {k} units; {full} with all), best {len(top)} shown"
    fig = matches_figure(text, mean, top.start, top.stop, top.score, k, CONTEXT, heading)
    items = []
    for i in range(len(top)):
        a, b = int(top.start[i]), int(top.stop[i])
        row = text[i]
        link = replace(ps, start=a, length=b - a, at=max(0, a - 5), sentence=None)
        items.append(html.Li([
            html.Span(f"#{i + 1} · {int(top.score[i])}/{k} units · @{a} ", className="muted small"),
            html.Span(" ".join(row[:CONTEXT]) + " "), html.Mark(" ".join(row[CONTEXT:CONTEXT + b - a])),
            html.Span(" " + " ".join(row[CONTEXT + b - a:])), " ",
            dcc.Link("open", href=PAGE + to_query(link), className="small")], className="pt-match"))
    count = (f"{found.total} matches of {k} units ≥ {ps.theta:g} for {ps.length}±1 tokens"
             + (", off before" if ps.off_before else "") + ".")
    return fig, items, summary_table(summary), count


def summary_table(summary: pd.DataFrame, top: int = 5) -> Any:
    """Offsets as columns; the most common words (with their share), then the most common POS tags."""
    if summary.empty:
        return html.P("No matches to summarise.", className="muted small")
    offsets = sorted(summary["offset"].unique())
    first = summary.groupby("offset").first()
    reach = (first["count"] / first["share"]).round().astype(int)        # matches that reach each offset
    head = html.Tr([html.Th("")] + [html.Th(("before" if o < 0 else f"+{o}") + f" ({reach[o]})",
                                            title=f"{reach[o]} matches reach this position") for o in offsets])
    rows = []
    for kind in ("word", "pos"):
        part = summary[summary["kind"] == kind]
        for r in range(top):
            cells = []
            for o in offsets:
                col = part[part["offset"] == o]
                cells.append(html.Td(f"{col.iloc[r]['item']} {col.iloc[r]['share']:.0%}" if len(col) > r else ""))
            rows.append(html.Tr([html.Th(kind if r == 0 else "")] + cells, className=f"pt-{kind}"))
    return html.Table([html.Thead(head), html.Tbody(rows)], className="pt-summary")
