"""Checking an on-demand ablation request ("Test these units" in Explore, ``rnnvis jobs ablate``).

:func:`plan_ablate_job` checks every field of the request (types and bounds, then against the stored model:
its layers, states and units) and returns the ``queued`` record of an ``ablate`` job, or raises
:class:`~workers.errors.JobValidationError` with a message per field.  The job has one stage, ``ablate``
(queue ``analyze``): :func:`workers.stages.run_ablate_stage`.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from analytics import store
from analytics.ablation import BASELINE_SETS, DEFAULT_PREFIX, MODES
from analytics.ablation.run import MAX_SETS
from models.checkpoint import check_model_id, checkpoint_file
from workers.errors import JobValidationError
from workers.records import JobRecord, new_job_id

__all__ = ["plan_ablate_job", "ABLATE_FIELDS", "MAX_PREFIX", "MAX_UNITS"]

#: The longest prefix (tokens) a request may measure; 0 is the whole split.
MAX_PREFIX = 10_000_000
#: The most units one request may name (a layer's hidden size is checked against the model too).
MAX_UNITS = 8192
#: Whole-number fields: (least, most, default); None as default: required.
ABLATE_FIELDS: dict[str, tuple[int, int, int | None]] = {
    "layer": (0, 1024, None), "k": (2, 64, None), "cluster": (0, 63, None),
    "prefix": (0, MAX_PREFIX, DEFAULT_PREFIX), "baseline_sets": (2, MAX_SETS, BASELINE_SETS), "seed": (0, 2**31 - 1, 0),
}
_KNOWN = set(ABLATE_FIELDS) | {"model_id", "state", "units", "modes"}


def _whole(name: str, value: Any, errors: dict[str, str]) -> int | None:
    lo, hi, default = ABLATE_FIELDS[name]
    if value is None:
        if default is None and name == "layer":
            errors[name] = "give the layer of the units"
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        errors[name] = f"must be a whole number, got {type(value).__name__}"
        return None
    if not lo <= value <= hi:
        errors[name] = f"must be between {lo} and {hi}, got {value}"
        return None
    return value


def _units(value: Any, errors: dict[str, str]) -> list[int]:
    if not isinstance(value, (list, tuple)) or not value:
        errors["units"] = "give a list of unit indices (at least one)"
        return []
    if len(value) > MAX_UNITS:
        errors["units"] = f"at most {MAX_UNITS} units, got {len(value)}"
        return []
    if any(isinstance(u, bool) or not isinstance(u, int) for u in value):
        errors["units"] = "every unit must be a whole number"
        return []
    if len(set(value)) != len(value):
        errors["units"] = "a unit is named twice"
        return []
    return sorted(value)


def _model_shape(root: str | os.PathLike, model_id: Any, errors: dict[str, str]) -> dict[str, Any] | None:
    """The stored model's cell, layers, hidden size and states, or None (with the reason in ``errors``)."""
    if not isinstance(model_id, str) or len(model_id) > 128:
        errors["model_id"] = "give the model's id (text, at most 128 characters)"
        return None
    try:
        check_model_id(model_id)
    except ValueError as e:
        errors["model_id"] = str(e)
        return None
    if not checkpoint_file(root, model_id).exists() or store.partition_version(root, "models", model_id) is None:
        errors["model_id"] = f"model {model_id!r} is not analysed in this store"
        return None
    with store.connect(root) as con:
        m = store.query(con, "SELECT cell, layers, hidden_size FROM models WHERE model_id = ?", [model_id])
    if m.empty:
        errors["model_id"] = f"model {model_id!r} is not analysed in this store"
        return None
    row = m.iloc[0]
    return {"cell": str(row["cell"]), "layers": int(row["layers"]), "hidden": int(row["hidden_size"])}


def _against_model(shape: dict[str, Any], p: dict[str, Any], errors: dict[str, str]) -> None:
    """The request's layer, state and units against the model's shape."""
    if p["layer"] is not None and p["layer"] >= shape["layers"]:
        errors["layer"] = f"must be 0 .. {shape['layers'] - 1} for this model, got {p['layer']}"
    states = ("h", "c") if shape["cell"] == "lstm" else ("h",)
    if p["state"] not in states:
        errors["state"] = f"must be {' or '.join(states)} for a {shape['cell']}, got {p['state']!r}"
    H, units = shape["hidden"], p["units"]
    if units and (units[0] < 0 or units[-1] >= H):
        errors["units"] = f"units must lie in 0 .. {H - 1}, got {units[0]} .. {units[-1]}"
    elif units and len(units) >= H:
        errors["units"] = f"at most {H - 1} of the layer's {H} units (the random sets are drawn from the rest)"


def plan_ablate_job(root: str | os.PathLike, request: Mapping[str, Any], *, submitted_by: str = "") -> JobRecord:
    """Validate an on-demand ablation and return its (not yet written) ``queued`` record.

    ``request``: ``model_id``, ``layer``, ``state`` ('h' or 'c'), ``units`` (a list of unit indices), optionally
    ``k`` (the co-clustering whose word clusters are targets) and ``cluster`` (the unit cluster of k the units
    are), ``prefix`` (tokens measured, 0 = the whole split), ``baseline_sets``, ``seed`` and ``modes``.
    """
    errors: dict[str, str] = {}
    unknown = sorted(str(k)[:40] for k in set(request) - _KNOWN)
    if unknown:
        errors["form"] = f"unknown field(s) {', '.join(unknown)}"
    p: dict[str, Any] = {name: _whole(name, request.get(name), errors) for name in ABLATE_FIELDS}
    state = request.get("state")
    p["state"] = state if isinstance(state, str) and len(state) <= 8 else None
    p["units"] = _units(request.get("units"), errors)
    modes = request.get("modes") or ["zero"]
    if not isinstance(modes, (list, tuple)) or not modes or any(m not in MODES for m in modes) \
            or len(set(modes)) != len(modes):
        errors["modes"] = f"modes must be some of {', '.join(MODES)}"
    else:
        p["modes"] = [m for m in MODES if m in modes]
    if p["cluster"] is not None and p["k"] is None:
        errors["cluster"] = "a unit cluster needs its k"
    if p["prefix"] == 1:
        errors["prefix"] = "0 (the whole split) or at least 2 tokens"
    shape = _model_shape(root, request.get("model_id"), errors)
    if shape is not None:
        _against_model(shape, p, errors)
    if errors:
        raise JobValidationError(errors)
    return JobRecord(new_job_id(root), "ablate", str(request["model_id"]), submitted_by=submitted_by or "anonymous",
                     params={"ablate": p}, detail={"latest": {}})
