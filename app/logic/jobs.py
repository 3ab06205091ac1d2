"""Jobs page logic: the training form and the request it makes, submitting, uploading, importing, cancelling.

Plain functions of the settings, the job settings and the signed-in user
(:class:`app.hosted.auth.User`), so tests call them directly; :mod:`app.pages.jobs`
wires them to component ids. The form is derived from the training configs:
every setting of :data:`workers.planning.FORM_FIELDS` (ModelConfig and
TrainConfig fields, with the label, bounds and choices declared in :mod:`models.config`) is
a field, the usual ones shown and the rest under "More settings". The job
list and the curve are in :mod:`app.logic.jobs_view`.
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dash import html

from analytics.settings import Settings
from app.hosted import auth
from app.hosted.auth import User
from models.config import ModelConfig, TrainConfig, get_preset
from workers import client, records
from workers.errors import JobError, JobValidationError
from workers.planning import FORM_FIELDS, plan_train_job
from workers.settings import JobSettings
from workers.uploads import list_uploads, read_upload, save_corpus_upload, save_model_upload

#: The settings shown on the form; every other one of FORM_FIELDS is under "More settings".
MAIN_FIELDS = ("cell", "layers", "hidden_size", "embed_size", "epochs", "lr", "batch_size", "bptt", "dropout")
ADVANCED_FIELDS = tuple(n for n in FORM_FIELDS if n not in MAIN_FIELDS)
FIELDS = MAIN_FIELDS + ADVANCED_FIELDS
#: Fields with a message line under them (anything else goes in the banner).
ERROR_FIELDS = ("preset",) + FIELDS + ("corpus", "model_id", "name")
#: The bring-your-own-model form's message lines: request field -> the line's name on the page.
BYOM_ERROR_FIELDS = {"weights": "byom_weights", "vocab": "byom_vocab", "corpus": "byom_corpus",
                     "model_id": "byom_model_id"}
CORPUS_FORMATS = (("ptb", "PTB (train/valid/test .txt, or one file)"), ("text", "plain text"),
                  ("csv", "review CSV (text + label columns)"), ("yelp", "Yelp JSON lines"))
DEFAULT_PRESET = "demo-lstm"


def label(name: str) -> str:
    """A field's label, as its declaration (models/config.py) names it."""
    return FORM_FIELDS[name].label


def hint(name: str) -> str:
    """The allowed values of a field, as a tooltip ("1 to 8192", "rnn, gru or lstm")."""
    f = FORM_FIELDS[name]
    if f.choices:
        return ", ".join(f.choices)
    if f.low is None or not math.isfinite(f.low) or not math.isfinite(f.high):
        return "a whole number" if f.kind is int else "a number"
    return f"{'whole number, ' if f.kind is int else ''}{f.low:g} to {f.high:g}"


@dataclass
class Outcome:
    """What a submit shows: a banner, the job id (None when nothing was queued) and a message per field."""

    banner: Any
    job_id: str | None = None
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def queued(self) -> bool:
        return self.job_id is not None


def _banner(text: str, kind: str, cls: str) -> html.Div:
    return html.Div(text, className=f"alert alert-{kind} {cls}", role="alert" if kind != "info" else "status")


def preset_values(preset: str | None) -> dict[str, Any]:
    """The form values of a preset, and its corpus (a custom model: the configs' defaults)."""
    if preset and preset != "custom":
        p = get_preset(preset)
        model, train = p.model, p.train
    else:
        model, train = ModelConfig(), TrainConfig()
    # The training config's vocab_size wins: the model's is only set from the vocabulary once built.
    values = {**dataclasses.asdict(model), **dataclasses.asdict(train)}
    out = {f: values[f] for f in FIELDS}
    out["corpus"] = train.corpus
    return out


def corpus_spec(source: str | None, builtin: str | None, upload: dict | None) -> str:
    """The corpus of a request: a built-in name, ``upload:<id>``, or "" when the chosen upload is missing."""
    if source == "upload":
        return f"upload:{upload['upload_id']}" if upload and upload.get("upload_id") else ""
    return builtin or ""


def build_request(preset: str | None, values: dict[str, Any], source: str | None, builtin: str | None,
                  upload: dict | None, model_id: str | None, name: str | None) -> dict[str, Any]:
    """The training request the form describes (see :func:`workers.planning.plan_train_job`)."""
    req: dict[str, Any] = {"preset": None if preset in (None, "", "custom") else preset,
                           "model_id": model_id, "name": name}
    req.update({f: v for f, v in values.items() if f in FORM_FIELDS})
    req["corpus"] = corpus_spec(source, builtin, upload)
    return req


def _refused(errors: dict[str, str], fields) -> str:
    """The banner text of a refused request: what has no line of its own on the form is spelled out."""
    rest = "; ".join(v if k == "form" else f"{k}: {v}" for k, v in errors.items() if k not in fields)
    return "Not submitted: fix the fields marked below." + (f" {rest}" if rest else "")


def submit_train(settings: Settings, js: JobSettings, user: User | None, preset: str | None,
                 values: dict[str, Any], source: str | None, builtin: str | None, upload: dict | None,
                 model_id: str | None = None, name: str | None = None) -> Outcome:
    """Check the form and queue a training job (members only); a message per field when refused."""
    try:
        who = auth.check_user_role(user, "member")
    except auth.PermissionDenied as e:
        return Outcome(_banner(str(e), "warning", "jobs-refused"))
    missing = {f: "enter a value" for f in FIELDS if f in values and values[f] in (None, "")}
    request = build_request(preset, {f: v for f, v in values.items() if f not in missing}, source, builtin, upload,
                            model_id, name)
    try:
        if missing:  # report them with whatever else is wrong
            try:
                plan_train_job(settings.store, request, submitted_by=who.name, admin=who.can("admin"))
            except JobValidationError as e:
                raise JobValidationError({**e.errors, **missing}) from None
            raise JobValidationError(missing)
        rec = client.submit_train(settings, request, submitted_by=who.name, admin=who.can("admin"), job_settings=js)
    except JobValidationError as e:
        errors = dict(e.errors)
        return Outcome(_banner(_refused(errors, ERROR_FIELDS), "danger", "jobs-refused"), None, errors)
    except client.BrokerUnavailable as e:
        return Outcome(_banner(str(e), "danger", "jobs-broker-down"))
    return Outcome(_banner(f"Queued job {rec.job_id}: model {rec.model_id}.", "info", "jobs-queued"), rec.job_id)


def decode_upload(contents: str | None, filename: str | None, max_bytes: int, field_name: str) -> tuple[str, bytes]:
    """A dcc.Upload ``contents`` data URL as (name, bytes); JobValidationError on ``field_name`` if unusable."""
    if not contents:
        raise JobValidationError({field_name: "no file uploaded"})
    _, _, data = contents.partition(",")
    if len(data) * 3 // 4 > max_bytes + 4:
        raise JobValidationError({field_name: f"{filename} is {len(data) * 3 / 4 / 2**20:.1f} MB; the limit is "
                                              f"{max_bytes / 2**20:.0f} MB (RNNVIS_MAX_UPLOAD_MB)"})
    try:
        return filename or "upload", base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise JobValidationError({field_name: f"{filename}: the upload is damaged; try again"}) from None


def _as_list(value: Any) -> list:
    return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]


def _corpus_choice(verb: str, pick: Callable[[], Any]) -> tuple[dict | None, html.Span, str]:
    """(what the form keeps of the corpus upload that ``pick`` returns, or None; a status line; corpus source)."""
    try:
        info = pick()
    except JobValidationError as e:
        return None, html.Span("; ".join(e.errors.values()), className="jobs-upload-error"), "upload"
    except auth.PermissionDenied as e:
        return None, html.Span(str(e), className="jobs-upload-error"), "builtin"
    return ({"upload_id": info.upload_id, "task": info.task, "name": info.name},
            html.Span(f"{verb} {info.summary} ({info.fmt})", className="jobs-upload-ok"), "upload")


def upload_corpus(settings: Settings, js: JobSettings, user: User | None, contents: Any, filenames: Any,
                  fmt: str | None) -> tuple[dict | None, html.Span, str]:
    """Check and keep an uploaded corpus: (what the form keeps of it or None, a status line, corpus source)."""
    def pick():
        who = auth.check_user_role(user, "member")
        files = [decode_upload(c, n, js.max_upload_bytes, "corpus")
                 for c, n in zip(_as_list(contents), _as_list(filenames))]
        return save_corpus_upload(settings.store, files, fmt, max_bytes=js.max_upload_bytes, owner=who.name)
    return _corpus_choice("uploaded", pick)


def my_corpus_uploads(settings: Settings, user: User | None) -> list[dict[str, str]]:
    """Dropdown options: the signed-in member's own corpus uploads (an admin's: everyone's, with the
    uploader), newest first (none for viewers)."""
    if user is None or not user.can("member"):
        return []
    admin = user.can("admin")
    return [{"label": f"{u.name}: {u.summary} [{u.upload_id}]" + (f" by {u.owner or 'unknown'}" if admin else ""),
             "value": u.upload_id}
            for u in list_uploads(settings.store, user.name, admin=admin) if u.kind == "corpus"]


def reuse_corpus_upload(settings: Settings, user: User | None, upload_id: str | None
                        ) -> tuple[dict | None, html.Span, str]:
    """Choose one of the user's earlier corpus uploads (as :func:`upload_corpus` answers); another user's is
    refused."""
    def pick():
        who = auth.check_user_role(user, "member")
        info, _ = read_upload(settings.store, str(upload_id or ""), user=who.name, admin=who.can("admin"))
        if info.kind != "corpus":
            raise JobValidationError({"corpus": f"upload {info.upload_id} is a model, not a corpus"})
        return info
    return _corpus_choice("using", pick)


def submit_import(settings: Settings, js: JobSettings, user: User | None, weights: str | None,
                  weights_name: str | None, vocab: str | None, vocab_name: str | None, source: str | None,
                  builtin: str | None, upload: dict | None, model_id: str | None = None) -> Outcome:
    """Check an uploaded model (and vocabulary) and queue its import and analysis on the chosen corpus.

    ``errors`` are keyed by the page's message lines (:data:`BYOM_ERROR_FIELDS` values)."""
    try:
        who = auth.check_user_role(user, "member")
        w = decode_upload(weights, weights_name, js.max_upload_bytes, "weights")
        v = decode_upload(vocab, vocab_name, js.max_upload_bytes, "vocab") if vocab else None
        info = save_model_upload(settings.store, w, v, max_bytes=js.max_upload_bytes,
                                 max_params=js.max_model_params, owner=who.name)
        rec = client.submit_import(settings, {"model_upload": info.upload_id, "model_id": model_id,
                                              "corpus": corpus_spec(source, builtin, upload)},
                                   submitted_by=who.name, admin=who.can("admin"), job_settings=js)
    except auth.PermissionDenied as e:
        return Outcome(_banner(str(e), "warning", "jobs-refused"))
    except JobValidationError as e:
        errors = {BYOM_ERROR_FIELDS.get(k, k): m for k, m in e.errors.items()}
        return Outcome(_banner(_refused(errors, BYOM_ERROR_FIELDS.values()), "danger", "jobs-refused"), None, errors)
    except client.BrokerUnavailable as e:
        return Outcome(_banner(str(e), "danger", "jobs-broker-down"))
    return Outcome(_banner(f"Queued job {rec.job_id}: import of {info.summary} as {rec.model_id}.", "info",
                           "jobs-queued"), rec.job_id)


def cancel(settings: Settings, js: JobSettings, user: User | None, job_id: str) -> tuple[str, str | None]:
    """Cancel a job (its submitter or an admin): (a message, the refresh token or None when nothing changed)."""
    try:
        who = auth.check_user_role(user, "member")
        state = client.cancel(settings, job_id, by=who.name, admin=who.can("admin"), job_settings=js)
    except (JobError, auth.PermissionDenied) as e:
        return str(e), None
    except ValueError as e:  # a malformed job id (from a forged request)
        return f"no job {job_id!r}: {e}", None
    return f"Job {job_id}: {state}.", f"cancel:{job_id}"


def read_curve_job(settings: Settings, job_id: str | None) -> records.JobRecord | None:
    """The job whose curve is shown, or None (none picked, or gone)."""
    if not job_id:
        return None
    try:
        return records.read_job(settings.store, job_id)
    except (JobError, ValueError):
        return None
