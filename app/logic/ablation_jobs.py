"""Explore's "Test these units": an on-demand ablation of the selected chip's units (or the selected unit), run
as a job by the workers, followed while it runs and drawn beside the chips when it is done.

Plain functions of the settings, the reader and the signed-in user; :mod:`app.pages.explore` wires them. The
page keeps only ``{"job_id": ..., "done": ...}``: everything else (what was tested, by whom, on how many tokens)
is read back from the job's record on the server, never taken from the browser.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dash import html

from analytics.settings import Settings
from app import figures
from app.figures.losses import ablation_figure
from app.hosted import auth
from app.hosted.auth import User
from app.logic.common import guarded
from app.reader import Reader
from workers import client, records
from workers.errors import JobError, JobValidationError
from workers.settings import JobSettings

__all__ = ["Tested", "tested_units", "submit_test", "poll_test", "test_view"]

PAGE = "/explore"
#: Ablations replace these states (a gate is recomputed from them at every step).
ABLATED_STATES = ("h", "c")


@dataclass(frozen=True)
class Tested:
    """What "Test these units" tests: the units, the unit cluster they are (None: one selected unit), a label."""

    units: tuple[int, ...]
    cluster: int | None
    label: str


def tested_units(reader: Reader, model: str, layer: int, state: str, k: int, selection: dict | None) -> Tested:
    """The selected chip's units (or the unit selected in the detail view); ValueError saying what to select."""
    sel = selection or {}
    if state not in ABLATED_STATES:
        raise ValueError(f"ablations replace h or c; pick one of them instead of {state!r}")
    if sel.get("chip") is not None:
        chip = int(sel["chip"])
        units = reader.clusters(model, layer, state, k).units
        members = tuple(sorted(int(u) for u in units.loc[units["cluster"] == chip, "unit"]))
        if not members:
            raise ValueError(f"there is no chip H{chip} at k = {k}")
        return Tested(members, chip, f"H{chip}")
    if sel.get("unit") is not None:
        return Tested((int(sel["unit"]),), None, f"unit {int(sel['unit'])}")
    raise ValueError("select a chip (click its label) or a unit (click a cell) first")


def _note(text: str, kind: str) -> html.Div:
    return html.Div(text, className=f"alert alert-{kind} ablate-{'refused' if kind != 'info' else 'status'}",
                    role="alert" if kind != "info" else "status")


def submit_test(settings: Settings, js: JobSettings, user: User | None, reader: Reader, model: str | None,
                layer: int | None, state: str | None, k: int | None, selection: dict | None
                ) -> tuple[html.Div, dict | None]:
    """Queue the ablation of the selection (members and admins): (a message, the page's job data or None)."""
    try:
        who = auth.check_user_role(user, "member")
    except auth.PermissionDenied as e:
        return _note(f"{e} Viewers see the stored ablations only.", "warning"), None
    if not model or layer is None or not state:
        return _note("Pick a model, layer and state first.", "warning"), None
    try:
        t = tested_units(reader, model, int(layer), state, int(k or 6), selection)
        rec = client.submit_ablate(settings, {"model_id": model, "layer": int(layer), "state": state,
                                              "units": list(t.units), "k": int(k or 6), "cluster": t.cluster},
                                   submitted_by=who.name, job_settings=js)
    except JobValidationError as e:
        return _note("Not submitted: " + "; ".join(f"{f}: {m}" for f, m in e.errors.items()), "danger"), None
    except (JobError, ValueError) as e:   # BrokerUnavailable is a JobError
        return _note(str(e), "danger"), None
    text = (f"Queued job {rec.job_id}: {t.label} of layer {layer} {state} ({len(t.units)} units) against "
            f"{rec.params['ablate']['baseline_sets']} random sets.")
    return _note(text, "info"), {"job_id": rec.job_id, "done": False}


def _read(settings: Settings, job: dict | None) -> records.JobRecord | None:
    job_id = (job or {}).get("job_id")
    if not job_id:
        return None
    try:
        rec = records.read_job(settings.store, str(job_id))
    except (JobError, ValueError):
        return None
    return rec if rec.kind == "ablate" else None


def poll_test(settings: Settings, js: JobSettings, job: dict | None) -> tuple[Any, dict | None, bool]:
    """While the test runs: (its progress line, the job data, whether to stop polling); ``done`` set at the end."""
    rec = _read(settings, job)
    if rec is None:
        return None, None, True
    p = rec.params["ablate"]
    what = f"job {rec.job_id}: {len(p['units'])} units of layer {p['layer']} {p['state']}"
    if rec.status == "done":
        tokens = (rec.detail.get("result") or {}).get("tokens", 0)
        return _note(f"Done, {what} on the first {tokens:,} tokens: drawn above.", "info"), {**job, "done": True}, True
    if rec.status in records.TERMINAL:
        return _note(f"The test {rec.status}, {what}" + (f": {rec.error}" if rec.error else "."), "danger"), \
            {**job, "done": True}, True
    cancelling = records.cancel_requested(settings.store, rec.job_id)
    status = records.display_status(rec.status, rec.heartbeat_at, cancelling, stale_after_s=js.stale_after_s)
    return _note(f"Testing, {what}: {status} {rec.progress:.0%}.", "info"), job, False


def test_view(settings: Settings, reader: Reader, model: str | None, layer: int | None, state: str | None,
              k: int | None, selection: dict | None, job: dict | None) -> Any | None:
    """The figure of the finished test, if it tested what is selected now; None otherwise (the stored view)."""
    rec = _read(settings, job)
    if rec is None or rec.status != "done" or rec.model_id != model or layer is None or not state:
        return None
    p = rec.params["ablate"]
    try:
        now = tested_units(reader, model, int(layer), state, int(k or 6), selection)
    except Exception:  # noqa: BLE001 - nothing (or something else) selected: the stored view answers
        return None
    if (p["layer"], p["state"], tuple(p["units"]), p["k"]) != (int(layer), state, now.units, int(k or 6)):
        return None

    def run() -> Any:
        n = int((rec.detail.get("result") or {}).get("tokens", 0))
        rows = reader.requested_ablations(model, p, rec.submitted_by, n)
        if rows.empty:
            return None
        how = "zeroing" if p["modes"][0] == "zero" else "putting their means in place of"
        text = (f"{now.label}: {how} its {len(now.units)} units, against {p['baseline_sets']} random sets "
                f"(tested by {rec.submitted_by})<br><sup>the first {n:,} tokens of the analysed split · coloured: "
                "beyond the random sets (p ≤ 0.05) · hover: z and p</sup>")
        return ablation_figure(rows, text)

    return guarded(run, lambda a: figures.message_figure("No ablation.", height=160), reader, PAGE)
