"""Explore's URL: the view, its selection and its settings as a query string (:mod:`app.urlstate` keys)."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from app.logic.explore import auto_clip
from app.reader import Reader
from app.urlstate import (
    LINKS_DEFAULT,
    MAX_SENTENCES,
    MAX_WORDS,
    OPTIONS_DEFAULT,
    STROKE_DEFAULT,
    VIEW_OPTIONS,
    ViewState,
    to_query,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ViewSettings:
    """The co-cluster view's settings as the control panel holds them (the URL keeps them too)."""

    stroke: float | None = STROKE_DEFAULT
    links: Sequence[float] | None = LINKS_DEFAULT
    clip: float | None = None
    options: Sequence[str] | None = OPTIONS_DEFAULT

    def without_auto_clip(self, reader: Reader, model: str | None, layer: int | None, state: str | None
                          ) -> ViewSettings:
        """The same settings, with no clip where it is the view's default (the URL then leaves it out)."""
        if self.clip is None or not model or layer is None or not state:
            return self
        try:
            auto = auto_clip(reader, model, int(layer), state)
        except Exception as e:  # noqa: BLE001 - the view callbacks report an unknown model; the URL keeps the clip
            log.info("clip default for %s: %s", model, e)
            return self
        return replace(self, clip=None) if abs(float(self.clip) - auto) < 1e-9 else self

    def url_fields(self) -> dict[str, Any]:
        links = tuple(float(x) for x in (self.links or LINKS_DEFAULT))[:2]
        return dict(stroke=float(self.stroke if self.stroke is not None else STROKE_DEFAULT),
                    links=links if len(links) == 2 else LINKS_DEFAULT,
                    clip=None if self.clip is None else float(self.clip),
                    options=tuple(o for o in VIEW_OPTIONS if o in (self.options or ())))


def url_search(model: str | None, layer: int | None, state: str | None, k: int | None, nwords: int | None,
               words: Sequence[str] | None, sentences: Sequence[str] | None, selection: dict | None,
               mode: str | None = None, settings: ViewSettings = ViewSettings()) -> str:
    """The URL query of the current view (with the detail mode, so a unit's view reopens as one, and the view's
    settings where they differ from the defaults)."""
    unit = (selection or {}).get("unit")
    vs = ViewState(model=model, layer=layer, state=state, k=int(k or 6), nwords=int(nwords or 20),
                   words=tuple(w for w in (words or []) if w)[:MAX_WORDS],
                   sentences=tuple(s for s in (sentences or []) if s)[:MAX_SENTENCES],
                   unit=int(unit) if unit is not None else None, detail=mode if mode in ("word", "unit") else None,
                   **settings.url_fields())
    return to_query(vs)
