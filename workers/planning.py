"""Checking a job request before anything is queued, and the record it becomes.

The app's form and ``rnnvis jobs submit`` send a request (a dict of form
fields); :func:`plan_train_job`, :func:`plan_import_job` and
:func:`plan_analyze_job` check all of it at once and return the ``queued``
record that :mod:`workers.client` writes and publishes, or raise
:class:`~workers.errors.JobValidationError` with a message per field.
Job kinds and their stages::

    train    train (queue 'train')  -> analyze (queue 'analyze')
    import   import (queue 'analyze') -> analyze
    analyze  analyze
    ablate   ablate (queue 'analyze'; checked by :mod:`workers.ablate_planning`)
"""
from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from typing import Any

from analytics import store
from models.checkpoint import check_model_id, checkpoint_file
from models.config import ConfigError, ModelConfig, TrainConfig, apply_overrides, get_preset
from models.options import FormField, form_fields
from workers.errors import JobValidationError
from workers.records import JobRecord, jobs_with_status, new_job_id
from workers.uploads import corpus_choice, read_upload

__all__ = ["FormField", "FORM_FIELDS", "CHOICES", "TEXT_FIELDS", "check_text_fields", "coerce", "plan_train_job",
           "plan_import_job", "plan_analyze_job", "next_stage"]


#: The settings of a training request (the Jobs page's form and ``rnnvis jobs submit``), by name.
#: Derived from the configs' declarations (models.options): every offered setting, a name in both configs
#: (vocab_size) with the narrower range.
FORM_FIELDS: dict[str, FormField] = form_fields(ModelConfig, TrainConfig)
CHOICES: dict[str, tuple[str, ...]] = {n: f.choices for n, f in FORM_FIELDS.items() if f.choices}
#: The free-text fields of a request, with the most characters each may hold (a model id's own rule, 128, is
#: models.paths'). Checked before anything else reads them, so no message echoes a huge value.
TEXT_FIELDS: dict[str, int] = {"name": 200, "model_id": 128, "preset": 64, "corpus": 200, "corpus_format": 16,
                               "model_upload": 64}
#: The longest text a setting of FORM_FIELDS may be sent as (a number or a choice, typed).
SETTING_CHARS = 64


def check_text_fields(request: Mapping[str, Any]) -> None:
    """JobValidationError naming each free-text field (and setting sent as text) that is not text or is too long."""
    errors: dict[str, str] = {}
    for name, most in {**TEXT_FIELDS, **dict.fromkeys(FORM_FIELDS, SETTING_CHARS)}.items():
        value = request.get(name)
        if value is None or (name == "corpus" and isinstance(value, Mapping)) or (
                name in FORM_FIELDS and isinstance(value, (int, float))):
            continue
        if not isinstance(value, str):
            errors[name] = f"must be text, got {type(value).__name__}"
        elif len(value) > most:
            errors[name] = f"at most {most} characters, got {len(value):,}; shorten it"
    if errors:
        raise JobValidationError(errors)


def coerce(name: str, value: Any) -> Any:
    """A form value as the field's type; JobValidationError naming the field otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if name in CHOICES:
        v = str(value).strip().lower()
        if v not in CHOICES[name]:
            raise JobValidationError({name: f"must be one of {', '.join(CHOICES[name])}"})
        return v
    spec = FORM_FIELDS.get(name)
    if spec is None:
        return value
    kind, lo, hi = spec.kind, spec.low, spec.high
    try:
        if kind is int:
            f = float(value)
            if not f.is_integer():
                raise ValueError
            v: float = int(f)
        else:
            v = float(value)
            if not math.isfinite(v):
                raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise JobValidationError({name: f"must be a {'whole number' if kind is int else 'number'}, "
                                        f"got {value!r}"}) from None
    if not lo <= v <= hi:
        raise JobValidationError({name: f"must be between {lo:g} and {hi:g}, got {v:g}"})
    return v


def _check_model_id(root: str | os.PathLike, model_id: str, active_ids: set[str]) -> None:
    try:
        check_model_id(model_id)
    except ValueError as e:
        raise JobValidationError({"model_id": str(e)}) from None
    if checkpoint_file(root, model_id).exists() or store.partition_path(root, "models", model_id).exists():
        raise JobValidationError({"model_id": f"model {model_id!r} already exists; choose another id "
                                              f"(or delete it first: rnnvis delete {model_id})"})
    if model_id in active_ids:
        raise JobValidationError({"model_id": f"model id {model_id!r} is taken: another queued or running job "
                                              "already builds it"})


def _active_model_ids(root: str | os.PathLike) -> set[str]:
    """Models that a queued or running job is building (from the job database: the live records)."""
    return {m for _, m in jobs_with_status(root, "queued", "running") if m is not None}


def _analysis_params(analysis: Mapping[str, Any] | None) -> dict[str, Any]:
    from analytics.pipeline import AnalysisOptions

    fields = {f.name for f in dataclasses.fields(AnalysisOptions)}
    analysis = {k: v for k, v in (analysis or {}).items() if v is not None}
    unknown = sorted(set(analysis) - fields)
    if unknown:
        raise JobValidationError({"analysis": f"unknown analysis option(s) {', '.join(unknown)}"})
    try:
        opts = AnalysisOptions(**analysis).validate()
    except (TypeError, ValueError) as e:
        raise JobValidationError({"analysis": str(e)}) from None
    return dataclasses.asdict(opts)


def plan_train_job(root: str | os.PathLike, request: Mapping[str, Any], *, submitted_by: str = "",
                   admin: bool = False) -> JobRecord:
    """Validate a training request and return its (not yet written) ``queued`` record.

    ``request``: ``preset`` (optional: without one the defaults of a language
    model, or a classifier for a review corpus, apply), any setting of
    :data:`FORM_FIELDS` (numbers and choices), ``corpus`` (a built-in
    name or ``upload:<id>``; default: the preset's), ``model_id``, ``name``,
    ``analysis`` (AnalysisOptions fields). Every problem found is reported at
    once in :class:`JobValidationError`.errors, keyed by field.
    """
    check_text_fields(request)
    errors: dict[str, str] = {}
    preset_name = (request.get("preset") or "").strip() or None
    model_cfg, train_cfg = _start_configs(preset_name)
    overrides = _form_overrides(request, errors)
    corpus_params, corpus_task = None, None
    corpus_spec = request["corpus"] if request.get("corpus") is not None else train_cfg.corpus  # "": none chosen
    try:
        corpus_params, corpus_task = corpus_choice(root, corpus_spec, user=submitted_by or None, admin=admin)
    except JobValidationError as e:
        errors.update(e.errors)
    if corpus_task is not None:
        train_cfg = _follow_corpus(corpus_task, preset_name, model_cfg, train_cfg, errors)
    try:
        apply_overrides(model_cfg, train_cfg, overrides)
    except ConfigError as e:
        errors.setdefault("form", str(e))
    if corpus_params is not None:
        train_cfg.corpus = corpus_params.get("name") if corpus_params["source"] == "builtin" else \
            f"upload:{corpus_params['upload_id']}"
    _validate_configs(model_cfg, train_cfg, errors)

    model_id = (request.get("model_id") or "").strip() or None
    job_id = new_job_id(root)
    if model_id is None:
        model_id = f"{preset_name or model_cfg.cell}-{job_id[1:7]}"
    analysis = _check_id_and_analysis(root, model_id, request, errors)
    params = {"preset": preset_name, "overrides": overrides, "corpus": corpus_params,
              "model": dataclasses.asdict(model_cfg), "train": dataclasses.asdict(train_cfg),
              "analysis": analysis, "name": (request.get("name") or "").strip() or model_id}
    return JobRecord(job_id, "train", model_id, submitted_by=submitted_by or "anonymous", params=params,
                     detail={"latest": {}, "curve": []})


def _start_configs(preset_name: str | None) -> tuple[ModelConfig, TrainConfig]:
    """The preset's configs, or the defaults without one."""
    try:
        if preset_name:
            preset = get_preset(preset_name)
            return preset.model, preset.train
        return ModelConfig(), TrainConfig()
    except ConfigError as e:
        raise JobValidationError({"preset": str(e)}) from None


def _form_overrides(request: Mapping[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    """The request's settings as their types (problems added to ``errors``, keyed by field)."""
    overrides: dict[str, Any] = {}
    for name in list(FORM_FIELDS) + list(CHOICES):
        if name in request:
            try:
                v = coerce(name, request[name])
            except JobValidationError as e:
                errors.update(e.errors)
                continue
            if v is not None:
                overrides[name] = v
    unknown = sorted(set(request) - set(FORM_FIELDS) - set(CHOICES)
                     - {"preset", "corpus", "model_id", "name", "analysis", "corpus_format"})
    if unknown:
        errors["form"] = f"unknown field(s) {', '.join(unknown)}"
    return overrides


def _follow_corpus(corpus_task: str, preset_name: str | None, model_cfg: ModelConfig, train_cfg: TrainConfig,
                   errors: dict[str, str]) -> TrainConfig:
    """Without a preset the task follows the corpus (a classifier gets Adam's settings); with one, the corpus must
    be for the preset's task.  Returns the training config to use."""
    if not preset_name:
        model_cfg.task = corpus_task
        if corpus_task == "sentiment":
            return dataclasses.replace(train_cfg, optimizer="adam", lr=1e-3, lr_decay=1.0, epochs=5)
    elif corpus_task != model_cfg.task:
        what = {"lm": "a language model", "sentiment": "a sentiment classifier"}
        errors["corpus"] = (f"this corpus is for {what[corpus_task]} but preset {preset_name!r} is "
                            f"{what[model_cfg.task]}; pick a matching corpus or preset")
    return train_cfg


def _validate_configs(model_cfg: ModelConfig, train_cfg: TrainConfig, errors: dict[str, str]) -> None:
    """Each config's first problem, under the field it names (or "form")."""
    for cfg in (model_cfg, train_cfg):
        try:
            cfg.validate()
        except ConfigError as e:
            msg = str(e)
            key = msg.split(" ", 1)[0].split("/", 1)[0]
            errors.setdefault(key if key in FORM_FIELDS or key in CHOICES else "form", msg)


def _check_id_and_analysis(root: str | os.PathLike, model_id: str, request: Mapping[str, Any],
                           errors: dict[str, str]) -> dict[str, Any]:
    """The request's analysis options; raises JobValidationError with ``errors`` and whatever the model id
    and the options add to them, if any."""
    try:
        _check_model_id(root, model_id, _active_model_ids(root))
    except JobValidationError as e:
        errors.update(e.errors)
    try:
        analysis = _analysis_params(request.get("analysis"))
    except JobValidationError as e:
        errors.update(e.errors)
        analysis = {}
    if errors:
        raise JobValidationError(errors)
    return analysis


def plan_import_job(root: str | os.PathLike, request: Mapping[str, Any], *, submitted_by: str = "",
                    admin: bool = False) -> JobRecord:
    """Validate a bring-your-own-model request.

    Fields: ``model_upload`` (upload id), ``corpus``, ``model_id``, ``name``, ``analysis``.
    """
    check_text_fields(request)
    errors: dict[str, str] = {}
    info = None
    up = request.get("model_upload")
    if not up:
        errors["weights"] = "upload a checkpoint or a PyTorch state dict"
    else:
        try:
            info, _ = read_upload(root, str(up), user=submitted_by or None, admin=admin, field_name="weights")
            if info.kind != "model":
                errors["weights"] = f"upload {up} is a corpus, not a model"
        except JobValidationError as e:
            errors.update(e.errors)
    corpus_params = None
    try:
        corpus_params, task = corpus_choice(root, request.get("corpus"), user=submitted_by or None, admin=admin)
        if info is not None and info.kind == "model" and info.task != task:
            errors["corpus"] = f"the model is a {info.task} model but this corpus is for {task}"
    except JobValidationError as e:
        errors.update(e.errors)
    job_id = new_job_id(root)
    model_id = (request.get("model_id") or "").strip() or f"import-{job_id[1:7]}"
    analysis = _check_id_and_analysis(root, model_id, request, errors)
    params = {"import": {"upload_id": info.upload_id, "file": info.name, "vocab": info.extra.get("vocab"),
                         "summary": info.summary},
              "corpus": corpus_params, "analysis": analysis,
              "name": (request.get("name") or "").strip() or model_id}
    return JobRecord(job_id, "import", model_id, submitted_by=submitted_by or "anonymous", params=params,
                     detail={"latest": {}, "curve": [], "warnings": info.extra.get("warnings", [])})


def plan_analyze_job(root: str | os.PathLike, model_id: str, analysis: Mapping[str, Any] | None = None, *,
                     corpus: Any = None, submitted_by: str = "", admin: bool = False) -> JobRecord:
    """Validate re-analysing a stored checkpoint (e.g. with other options)."""
    errors: dict[str, str] = {}
    try:
        check_model_id(model_id)
        if not checkpoint_file(root, model_id).exists():
            errors["model_id"] = f"no checkpoint for model {model_id!r} in the store"
    except ValueError as e:
        errors["model_id"] = str(e)
    corpus_params = None
    if corpus:
        try:
            corpus_params, _ = corpus_choice(root, corpus, user=submitted_by or None, admin=admin)
        except JobValidationError as e:
            errors.update(e.errors)
    try:
        analysis_p = _analysis_params(analysis)
    except JobValidationError as e:
        errors.update(e.errors)
        analysis_p = {}
    if errors:
        raise JobValidationError(errors)
    return JobRecord(new_job_id(root), "analyze", model_id, submitted_by=submitted_by or "anonymous",
                     params={"corpus": corpus_params, "analysis": analysis_p}, detail={"latest": {}, "curve": []})


def next_stage(rec: JobRecord) -> str:
    """The stage a queued job runs next: what its kind starts with, or where it stopped."""
    if rec.stage in ("train", "import", "analyze", "ablate"):
        return rec.stage
    return {"train": "train", "import": "import", "analyze": "analyze", "ablate": "ablate"}[rec.kind]
