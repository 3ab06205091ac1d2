"""Per-token states of the analysed split: collect them from the trace, store them, read them back.

The analysis (:mod:`analytics.pipeline`) hands a :class:`TokenStateCollector`
the tensors it traces; the collector keeps, for each chosen (layer, state), the
value of every unit at every position of the split in text order, as float16
([N, H] per state: 136 MB for 104k tokens × 650 units). They are written as two
views (see :mod:`analytics.schema`):

- ``corpus_tokens`` (model × position): the split in text order, with the word;
- ``token_states`` (model × layer × state × unit × position): one float16 value
  per row, sorted by unit then position, positions delta-encoded, row groups
  of 65,536 rows, so a query for a few units reads only their row groups (the
  pattern search reads 10 of 650 units in tens of milliseconds).
  docs/decisions/0001-per-unit-token-states.md compares this layout with one array row per token.

Reading: :func:`unit_series` (the search input, [N, k], by SQL through the views),
:func:`read_units` (the same from the file by row group, with :class:`UnitIndex`, the
footer parsed once: what the Patterns page uses), :func:`passage` (all units over a
few positions), :func:`word_ids`, :func:`vocab_arrays` and :func:`corpus_words`.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from . import store

if TYPE_CHECKING:
    import pyarrow.parquet as pq

log = logging.getLogger(__name__)

#: Units per chunk handed to the store writer (1 unit = N rows).
_UNITS_PER_CHUNK = 16


_SPEC = re.compile(r"^(last|none|all|)$|^(-?\d+:)?[a-z]{1,8}(,(-?\d+:)?[a-z]{1,8})*$")


def check_token_states(spec: str) -> str:
    """``spec`` if it is well formed (see :func:`parse_token_states`), else ValueError saying what is."""
    if not isinstance(spec, str) or not _SPEC.match(spec.strip().lower().replace(" ", "")):
        raise ValueError(f"token_states must be 'last', 'none', 'all' or layer:state pairs such as 1:h,0:c; "
                         f"got {spec!r}")
    return spec


def parse_token_states(spec: str, layers: int, traced: Sequence[tuple[int, str]]) -> list[tuple[int, str]]:
    """The (layer, state)s to store for an analysis option ``spec``.

    ``last`` (the default): the last layer's h; ``none`` (or empty): nothing; otherwise a comma list of
    ``layer:state`` (``1:h,0:c``), a bare state for every layer (``h``) or ``all`` (every traced key).
    Only traced keys can be stored (ValueError naming them otherwise; ``last`` is skipped if h is not traced).
    """
    spec = (spec or "none").strip().lower()
    traced = list(traced)
    if spec == "none":
        return []
    if spec == "last":
        key = (layers - 1, "h")
        return [key] if key in traced else []
    if spec == "all":
        return traced
    wanted: list[tuple[int, str]] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        if ":" in part:
            layer, state = part.split(":", 1)
            if not layer.strip().lstrip("-").isdigit():
                raise ValueError(f"token_states: {part!r} is not layer:state (e.g. 1:h)")
            lay = int(layer) % layers if int(layer) < 0 else int(layer)
            wanted.append((lay, state.strip()))
        else:
            wanted += [(layer, part) for layer in range(layers)]
    bad = [k for k in wanted if k not in traced]
    if bad:
        names = ", ".join(f"{lay}:{s}" for lay, s in traced)
        raise ValueError(f"token_states: {', '.join(f'{lay}:{s}' for lay, s in bad)} not traced by this analysis "
                         f"(traced: {names}; add the state to --states)")
    return [k for k in traced if k in set(wanted)]   # in trace order, no duplicates


def write_corpus_tokens(w: store.PartitionWriter, model_id: str, ids: np.ndarray, words: Sequence[str],
                        documents: np.ndarray | None = None) -> None:
    """Write ``corpus_tokens``: the analysed split's ids [N] in text order (every analysed model has it)."""
    ids = np.asarray(ids, dtype=np.int32)
    N, vocab = len(ids), np.asarray(words, dtype=object)
    w.write("corpus_tokens", pd.DataFrame({
        "model_id": model_id, "position": np.arange(N, dtype=np.int32),
        "document": np.zeros(N, np.int32) if documents is None else np.asarray(documents, np.int32),
        "word_id": ids, "word": vocab[ids]}), presorted=True)


class TokenStateCollector:
    """Keeps the states of ``keys`` at every position of an N-token split, from the trace's packed values.

    ``traced`` are the keys of the packed buffer (key j in columns j*H .. (j+1)*H); ``deltas``: h and c
    columns hold Δh (as the analysis traces them), turned back into states by a running sum from the start
    state of each piece.
    """

    def __init__(self, keys: Sequence[tuple[int, str]], traced: Sequence[tuple[int, str]], hidden: int, total: int,
                 deltas: bool = True):
        self.keys = list(keys)
        self.hidden = hidden
        self.total = total
        self.cols = [traced.index(k) for k in self.keys]
        self.summed = [deltas and k[1] in ("h", "c") for k in self.keys]
        self.out = torch.zeros(len(self.keys), total, hidden, dtype=torch.float16)  # [K, N, H]
        self.prev: torch.Tensor | None = None      # [K, B, H] float32: state before the next step of each piece
        self.pieces = (1, total)

    def _start_values(self, state, B: int) -> torch.Tensor:
        prev = torch.zeros(len(self.keys), B, self.hidden)
        if state is None:
            return prev
        h, c = state if isinstance(state, tuple) else (state, None)
        for j, (layer, name) in enumerate(self.keys):
            if name == "h":
                prev[j] = h[layer].float().cpu()
            elif name == "c" and c is not None:
                prev[j] = c[layer].float().cpu()
        return prev

    def begin(self, state, B: int, n: int) -> None:
        """A language model's pieces: B of n tokens (piece b = positions b·n ..), from ``state`` (None = zero)."""
        self.pieces = (B, n)
        self.prev = self._start_values(state, B)

    def _values(self, values: torch.Tensor, j: int, prev: torch.Tensor | None) -> torch.Tensor:
        """[T, B, H] float32 states of key j from the packed [T, B, K*H] chunk (running sum for deltas)."""
        c = self.cols[j] * self.hidden
        v = values[..., c:c + self.hidden].float()
        if self.summed[j]:
            v = torch.cumsum(v, 0)
            if prev is not None:
                v += prev.to(v.device)[None]
        return v

    def add(self, values: torch.Tensor, done: int) -> None:
        """Chunk [T, B, K*H] at steps done .. done+T of every piece."""
        B, n = self.pieces
        T = values.shape[0]
        view = self.out[:, :B * n].view(len(self.keys), B, n, self.hidden)
        for j in range(len(self.keys)):
            v = self._values(values, j, self.prev[j])                    # [T, B, H]
            view[j, :, done:done + T] = v.transpose(0, 1).to(torch.float16)
            self.prev[j] = v[-1]

    def put(self, values: torch.Tensor, pieces: torch.Tensor, start: int, state) -> None:
        """Replace steps start .. start+T of ``pieces`` [p] by ``values`` [T, p, K*H], traced from ``state``
        [L, p, H] (the analysis' corrections of a piece's start)."""
        n, T = self.pieces[1], values.shape[0]
        pos = (pieces[:, None] * n + torch.arange(start, start + T)[None, :]).reshape(-1)    # [p * T]
        prev = self._start_values(state, len(pieces))
        for j in range(len(self.keys)):
            v = self._values(values, j, prev[j])                          # [T, p, H]
            self.out[j, pos] = v.transpose(0, 1).reshape(-1, self.hidden).to("cpu", torch.float16)

    def add_tail(self, values: torch.Tensor, start: int, state) -> None:
        """The tail [r, 1, K*H] that continues the last piece from its end ``state`` [L, 1, H], at positions
        start .."""
        r = values.shape[0]
        prev = self._start_values(state, 1)
        for j in range(len(self.keys)):
            v = self._values(values, j, prev[j])                          # [r, 1, H]
            self.out[j, start:start + r] = v[:, 0].to(torch.float16)

    def add_documents(self, values: torch.Tensor, starts: Sequence[int], lengths: Sequence[int]) -> None:
        """A classifier batch [T, B, K*H] from zero state: document b at positions starts[b] .. + lengths[b]."""
        for j in range(len(self.keys)):
            v = self._values(values, j, None).to(torch.float16)        # [T, B, H]
            for b, (s, n) in enumerate(zip(starts, lengths)):
                self.out[j, s:s + n] = v[:n, b]

    def write(self, w: store.PartitionWriter, model_id: str) -> int:
        """Write ``token_states``; returns the state rows."""
        N, H = self.total, self.hidden
        rows = 0
        position = np.arange(N, dtype=np.int32)
        for j, (layer, state) in sorted(enumerate(self.keys), key=lambda item: item[1]):
            values = self.out[j].numpy()                                  # [N, H] float16
            for u0 in range(0, H, _UNITS_PER_CHUNK):
                u1 = min(H, u0 + _UNITS_PER_CHUNK)
                m = (u1 - u0) * N
                table = pa.table({
                    "model_id": pa.DictionaryArray.from_arrays(np.zeros(m, np.int32), [model_id]),
                    "layer": np.full(m, layer, np.int32),
                    "state": pa.DictionaryArray.from_arrays(np.zeros(m, np.int32), [state]),
                    "unit": np.repeat(np.arange(u0, u1, dtype=np.int32), N),
                    "position": np.tile(position, u1 - u0),
                    "value": np.ascontiguousarray(values[:, u0:u1].T).reshape(-1),
                })
                rows = w.write("token_states", table, presorted=True)
        return rows


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class TokenStateInfo:
    """What a model has stored: the (layer, state)s with token states, the number of tokens and units."""

    keys: tuple[tuple[int, str], ...]
    tokens: int
    hidden: int


def info(con: duckdb.DuckDBPyConnection, model_id: str) -> TokenStateInfo:
    """The token states a model has (keys empty when the analysis stored none)."""
    keys = store.query(con, "SELECT DISTINCT layer, state FROM token_states WHERE model_id = ? AND unit = 0 "
                            "ORDER BY layer, state", [model_id])
    n = store.query(con, "SELECT count(*) AS n FROM corpus_tokens WHERE model_id = ?", [model_id])["n"][0]
    hidden = 0
    if len(keys):
        hidden = int(store.query(con, "SELECT hidden_size FROM models WHERE model_id = ?", [model_id])
                     ["hidden_size"][0])
    return TokenStateInfo(tuple((int(r.layer), str(r.state)) for r in keys.itertuples()), int(n), hidden)


def unit_series(con: duckdb.DuckDBPyConnection, model_id: str, layer: int, state: str, units: Sequence[int],
                tokens: int) -> np.ndarray:
    """[tokens, len(units)] float32: each unit's value at every position (NaN where none is stored)."""
    asked = [int(u) for u in units]
    units = sorted(set(asked))
    out = np.full((len(units), tokens), np.nan, np.float32)        # filled unit by unit, returned as its .T
    if not units:
        return out.T
    marks = ", ".join("?" * len(units))      # IN (?, ...) prunes row groups by the unit statistics
    table = con.execute(f"SELECT unit, position, value FROM token_states WHERE model_id = ? AND layer = ? "
                        f"AND state = ? AND unit IN ({marks})", [model_id, layer, state, *units]).fetchnumpy()
    _scatter(out, np.asarray(units), table["unit"], table["position"], table["value"])
    return out.T if asked == units else out[np.searchsorted(units, asked)].T


@dataclass(frozen=True)
class UnitIndex:
    """The footer of one ``token_states`` file and the unit range of each row group, parsed once."""

    path: str
    metadata: pq.FileMetaData
    keys: np.ndarray       # [G] object: "layer:state" of the row group's first row
    lo: np.ndarray         # [G] smallest unit
    hi: np.ndarray         # [G] largest unit

    @classmethod
    def open(cls, path: str) -> UnitIndex:
        import pyarrow.parquet as pq
        md = pq.ParquetFile(path).metadata
        names = [md.schema.column(i).name for i in range(md.num_columns)]
        cols = {n: names.index(n) for n in ("layer", "state", "unit")}
        stats = [[md.row_group(g).column(cols[n]).statistics for n in ("layer", "state", "unit")]
                 for g in range(md.num_row_groups)]
        keys = np.array([f"{a.min}:{b.min}" if a.min == a.max and b.min == b.max else "*" for a, b, _ in stats],
                        dtype=object)
        return cls(str(path), md, keys, np.array([u.min for *_, u in stats]), np.array([u.max for *_, u in stats]))


def read_units(index: UnitIndex, layer: int, state: str, units: Sequence[int], tokens: int) -> np.ndarray:
    """:func:`unit_series` straight from the file: only the row groups holding ``units`` are decoded.

    The same values as the SQL; the page uses this (the footer of a 650-unit file is ~1,000 row groups,
    parsed once per model version instead of at every query).
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    asked = [int(u) for u in units]
    units = sorted(set(asked))                       # read ascending (the file's order), answer as asked
    out = np.full((len(units), tokens), np.nan, np.float32)
    if not units:
        return out.T
    u = np.asarray(units)
    key = f"{int(layer)}:{state}"
    groups = np.flatnonzero(((index.keys == key) | (index.keys == "*"))
                            & ((index.lo[:, None] <= u) & (index.hi[:, None] >= u)).any(axis=1))
    if groups.size:
        mixed = bool((index.keys[groups] == "*").any())     # else every row group holds this (layer, state) only
        t = pq.ParquetFile(index.path, metadata=index.metadata).read_row_groups(
            groups.tolist(), columns=(["layer", "state"] if mixed else []) + ["unit", "position", "value"])
        if mixed:                                             # decoding the strings of 'state' is slow: only here
            t = t.filter(pc.and_(pc.equal(t["layer"], layer), pc.equal(t["state"], state)))
        _scatter(out, u, t["unit"].to_numpy(), t["position"].to_numpy(), t["value"].to_numpy())
    return out.T if asked == units else out[np.searchsorted(u, asked)].T


def _scatter(out: np.ndarray, units: np.ndarray, unit: np.ndarray, pos: np.ndarray, value: np.ndarray) -> None:
    """out[k, N][index of unit[i] in ``units`` (ascending), pos[i]] = value[i]; rows of other units ignored.

    Rows come in the file's order (unit, then position): each unit is one slice, found by binary search, and
    a complete one is a plain copy (10 units × 1M tokens: ~30 ms). Any other order takes a flat scatter.
    """
    n = out.shape[1]
    if len(unit) and not (unit[1:] >= unit[:-1]).all():
        col = np.full(max(int(units.max()), int(unit.max())) + 1, -1, np.int64)
        col[units] = np.arange(len(units))
        rows = col[unit]
        keep = (rows >= 0) & (pos < n)
        out.reshape(-1)[rows[keep] * n + pos[keep]] = value[keep]
        return
    lo = np.searchsorted(unit, units, "left")
    hi = np.searchsorted(unit, units, "right")
    for k in range(len(units)):                       # one slice per unit of the pattern (<= 64)
        p, v = pos[lo[k]:hi[k]], value[lo[k]:hi[k]]
        if len(p) == n and p[0] == 0 and p[-1] == n - 1:
            out[k] = v
        else:
            keep = p < n
            out[k, p[keep]] = v[keep]


def passage(con: duckdb.DuckDBPyConnection, model_id: str, layer: int, state: str, start: int, stop: int,
            hidden: int, units: Sequence[int] | None = None) -> np.ndarray:
    """[stop - start, H] float32: every unit (or ``units``) over positions start .. stop - 1."""
    width = hidden if units is None else len(units)
    out = np.full((max(0, stop - start), width), np.nan, np.float32)
    if stop <= start:
        return out
    sql = ("SELECT unit, position, value FROM token_states WHERE model_id = ? AND layer = ? AND state = ? "
           "AND position >= ? AND position < ?")
    params: list = [model_id, layer, state, int(start), int(stop)]
    if units is not None:
        sql += " AND list_contains(?, unit)"
        params.append([int(u) for u in units])
    t = con.execute(sql, params).fetchnumpy()
    unit = t["unit"].astype(np.int64)
    if units is not None:
        col = np.full(max(units, default=0) + 1, 0, np.int64)
        col[list(units)] = np.arange(len(units))
        unit = col[unit]
    out[t["position"].astype(np.int64) - start, unit] = t["value"]
    return out


def word_ids(con: duckdb.DuckDBPyConnection, model_id: str) -> np.ndarray:
    """[N] int64: the word id at every position of the analysed split."""
    t = con.execute("SELECT word_id FROM corpus_tokens WHERE model_id = ? ORDER BY position", [model_id]).fetchnumpy()
    return t["word_id"].astype(np.int64)


def vocab_arrays(con: duckdb.DuckDBPyConnection, model_id: str) -> tuple[np.ndarray, np.ndarray]:
    """(words, tags), object arrays indexed by word id (tag None where unknown)."""
    df = store.query(con, "SELECT word_id, word, pos FROM vocab WHERE model_id = ? ORDER BY word_id", [model_id])
    n = int(df["word_id"].max()) + 1 if len(df) else 0
    words, tags = np.full(n, "", dtype=object), np.full(n, None, dtype=object)
    words[df["word_id"].to_numpy()] = df["word"].to_numpy()
    tags[df["word_id"].to_numpy()] = df["pos"].to_numpy()
    return words, tags


def corpus_words(con: duckdb.DuckDBPyConnection, model_id: str) -> pd.DataFrame:
    """The analysed split in text order: position, document, word_id, word, pos (the word's universal tag)."""
    return store.query(con, "SELECT t.position, t.document, t.word_id, t.word, v.pos FROM corpus_tokens t "
                            "LEFT JOIN vocab v ON v.model_id = t.model_id AND v.word_id = t.word_id "
                            "WHERE t.model_id = ? ORDER BY t.position", [model_id])
