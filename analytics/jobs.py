"""Background jobs: their records in the store, submission checks, uploads, and the stages workers run.

No Celery here: :mod:`workers` enqueues and calls :func:`run_train_stage`,
:func:`run_import_stage` and :func:`run_analyze_stage`; the app and the CLI
validate requests with :func:`plan_train_job` / :func:`plan_import_job`,
save uploads with :func:`save_corpus_upload` / :func:`save_model_upload`, and
read records with :func:`list_jobs` / :func:`read_job`.

A job is one store partition of kind ``jobs`` (one row of the ``jobs`` view),
rewritten atomically at every status change, at most once a second for
progress, and at every heartbeat. ``params`` holds what was submitted and
``detail`` (JSON) the latest progress, the per-epoch training curve and the
result. Job kinds and their stages::

    train    train (queue 'train')  -> analyze (queue 'analyze')
    import   import (queue 'analyze') -> analyze
    analyze  analyze

Status: ``queued`` -> ``running`` -> ``done`` | ``failed`` | ``cancelled``
(``queued`` again between stages and before a retry). Readers also show
``cancelling`` (cancel asked, the worker has not stopped yet) and ``lost``
(running, but no heartbeat for ``stale_after_s``: its worker died; the
broker hands the task to another worker, which resumes it).

Cancel is a flag file ``<store>/.cancel/<job_id>`` that the worker polls
between training steps, so it works with any broker and across machines
that share the store.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import json
import logging
import math
import os
import secrets
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from analytics import store
from models.checkpoint import CheckpointError, check_model_id, checkpoint_file, read_checkpoint
from models.config import ConfigError, ModelConfig, TrainConfig, apply_overrides, get_preset
from models.corpora import BUILTIN, DEMO_DATA, Corpus, CorpusError, load_corpus, shared_data_dir

log = logging.getLogger(__name__)

__all__ = [
    "JobRecord", "JobError", "JobValidationError", "UnknownJobError", "JobFailed", "TransientJobError",
    "StageOutcome", "JobTracker", "ACTIVE", "TERMINAL", "FORM_FIELDS",
    "new_job_id", "write_job", "read_job", "delete_job", "list_jobs", "display_status",
    "request_cancel", "cancel_requested", "plan_train_job", "plan_import_job", "plan_analyze_job",
    "save_corpus_upload", "save_model_upload", "read_upload", "resolve_corpus",
    "run_train_stage", "run_import_stage", "run_analyze_stage", "next_stage",
]

ACTIVE = ("queued", "running")
TERMINAL = ("done", "failed", "cancelled")
TRAIN_SHARE = 0.9        # part of a train job's progress bar that is training (the rest is analysis)
IMPORT_SHARE = 0.1
MIN_WRITE_INTERVAL_S = 1.0
CANCEL_DIR = ".cancel"
UPLOAD_DIR = "uploads"
CORPUS_FORMATS = ("ptb", "text", "csv", "yelp")
_HOST = socket.gethostname()

#: Form fields of a training request (UI and CLI): name -> (type, lower, upper, inclusive upper).
FORM_FIELDS: dict[str, tuple[type, float, float]] = {
    "layers": (int, 1, 16),
    "hidden_size": (int, 1, 8192),
    "embed_size": (int, 1, 8192),
    "epochs": (int, 1, 1000),
    "lr": (float, 1e-8, 100.0),
    "batch_size": (int, 1, 4096),
    "bptt": (int, 1, 10_000),
    "dropout": (float, 0.0, 0.99),
    "vocab_size": (int, 4, 1_000_000),
    "max_train_tokens": (int, 0, 10**10),
    "patience": (int, 0, 1000),
    "clip": (float, 0.0, 1e6),
    "lr_decay": (float, 1e-6, 1.0),
    "decay_after": (int, 0, 1000),
    "seed": (int, 0, 2**31 - 1),
    "max_len": (int, 1, 100_000),
    "weight_decay": (float, 0.0, 1.0),
}
_CHOICES = {"cell": ("rnn", "gru", "lstm"), "optimizer": ("sgd", "adam")}


# --------------------------------------------------------------------------- errors


class JobError(Exception):
    """Anything wrong with a job."""


class JobValidationError(JobError, ValueError):
    """A request refused before anything was queued; ``errors`` maps form fields to messages."""

    def __init__(self, errors: Mapping[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))


class UnknownJobError(JobError, KeyError):
    def __init__(self, job_id: str):
        super().__init__(f"no job {job_id!r} in the store (`rnnvis jobs list` shows them)")

    def __str__(self) -> str:
        return str(self.args[0])


class JobFailed(JobError):
    """A stage failed for good; the record says why."""


class TransientJobError(JobError):
    """A stage failed for a reason that may go away (I/O hiccup on a shared store); retry it."""


# --------------------------------------------------------------------------- records


def _now() -> dt.datetime:
    """Naive UTC, as the store keeps timestamps."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _ts(value: Any) -> dt.datetime | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.to_pydatetime()
    return value


@dataclass
class JobRecord:
    """One row of the ``jobs`` view; ``params`` and ``detail`` are dicts here, JSON in the store."""

    job_id: str
    kind: str
    model_id: str | None
    status: str = "queued"
    progress: float = 0.0
    submitted_by: str = ""
    submitted_at: dt.datetime = field(default_factory=_now)
    finished_at: dt.datetime | None = None
    error: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)
    started_at: dt.datetime | None = None
    heartbeat_at: dt.datetime | None = None
    worker: str | None = None
    attempts: int = 0
    stage: str = "queued"

    def row(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["params"] = json.dumps(self.params, default=str)
        d["detail"] = json.dumps(self.detail, default=str)
        return d

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "JobRecord":
        def js(v: Any) -> dict:
            if not v or (isinstance(v, float) and math.isnan(v)):
                return {}
            try:
                return json.loads(v)
            except (TypeError, ValueError):
                return {}

        def opt(v: Any) -> Any:
            return None if v is None or (isinstance(v, float) and math.isnan(v)) else v

        return cls(job_id=row["job_id"], kind=row["kind"], model_id=opt(row.get("model_id")),
                   status=row["status"], progress=float(opt(row.get("progress")) or 0.0),
                   submitted_by=opt(row.get("submitted_by")) or "", submitted_at=_ts(row.get("submitted_at")) or _now(),
                   finished_at=_ts(row.get("finished_at")), error=opt(row.get("error")),
                   params=js(row.get("params")), detail=js(row.get("detail")),
                   started_at=_ts(row.get("started_at")), heartbeat_at=_ts(row.get("heartbeat_at")),
                   worker=opt(row.get("worker")), attempts=int(opt(row.get("attempts")) or 0),
                   stage=opt(row.get("stage")) or "queued")


def new_job_id(root: str | os.PathLike) -> str:
    """A short unique id, valid as a store id: ``j`` + 8 hex digits."""
    for _ in range(100):
        job_id = "j" + secrets.token_hex(4)
        if not store.partition_path(root, "jobs", job_id).exists():
            return job_id
    raise JobError("could not find a free job id")  # pragma: no cover


def write_job(root: str | os.PathLike, rec: JobRecord) -> None:
    """Replace the job's partition with ``rec`` (atomic)."""
    with store.write_partition(root, "jobs", rec.job_id) as w:
        w.write("jobs", pd.DataFrame([rec.row()]))


def read_job(root: str | os.PathLike, job_id: str) -> JobRecord:
    """The current record of ``job_id`` (reads its one Parquet file; no DuckDB)."""
    store.validate_id(job_id, "job_id")
    for attempt in range(5):
        path = store.table_file(root, "jobs", job_id, "jobs")
        if path is None:
            if attempt < 4 and store.partition_path(root, "jobs", job_id).parent.exists():
                time.sleep(0.02)  # caught between the two renames of a replacement
                continue
            raise UnknownJobError(job_id)
        try:
            rows = pq.read_table(path).to_pylist()
        except (FileNotFoundError, OSError):  # replaced while we read it
            time.sleep(0.02)
            continue
        if rows:
            return JobRecord.from_row(rows[0])
    raise UnknownJobError(job_id)


def delete_job(root: str | os.PathLike, job_id: str) -> None:
    store.delete_partition(root, "jobs", job_id, missing_ok=True)


def _cancel_path(root: str | os.PathLike, job_id: str) -> Path:
    store.validate_id(job_id, "job_id")
    return Path(root) / CANCEL_DIR / job_id


def request_cancel(root: str | os.PathLike, job_id: str, by: str = "") -> None:
    """Raise the cancel flag that the worker polls (works for any broker, across machines)."""
    path = _cancel_path(root, job_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{job_id}.{uuid.uuid4().hex[:6]}.tmp")
    tmp.write_text(json.dumps({"by": by, "at": _now().isoformat()}))
    os.replace(tmp, path)


def cancel_requested(root: str | os.PathLike, job_id: str) -> bool:
    return _cancel_path(root, job_id).exists()


def display_status(status: str, heartbeat_at: Any, cancelling: bool, *, now: dt.datetime | None = None,
                   stale_after_s: float = 60.0) -> str:
    """What a reader shows: the stored status, or ``cancelling`` / ``lost``."""
    if status in ACTIVE and cancelling:
        return "cancelling"
    hb = _ts(heartbeat_at)
    if status == "running" and hb is not None and ((now or _now()) - hb).total_seconds() > stale_after_s:
        return "lost"
    return status


def list_jobs(root: str | os.PathLike, *, limit: int = 200, stale_after_s: float = 60.0,
              job_id: str | None = None) -> pd.DataFrame:
    """Jobs, newest first, from the ``jobs`` view, with ``display_status`` and ``duration_s`` added."""
    con = store.connect(root)
    try:
        if job_id is None:
            df = store.query(con, "SELECT * FROM jobs ORDER BY submitted_at DESC, job_id LIMIT ?", [int(limit)])
        else:
            df = store.query(con, "SELECT * FROM jobs WHERE job_id = ?", [job_id])
    finally:
        con.close()
    now = _now()
    cancel_dir = Path(root) / CANCEL_DIR
    flags = set(os.listdir(cancel_dir)) if cancel_dir.is_dir() else set()
    df["display_status"] = [display_status(s, hb, j in flags, now=now, stale_after_s=stale_after_s)
                            for s, hb, j in zip(df["status"], df["heartbeat_at"], df["job_id"])]
    durations = []
    for start, end in zip(df["started_at"], df["finished_at"]):
        start, end = _ts(start), _ts(end)
        durations.append(None if start is None else ((end or now) - start).total_seconds())
    df["duration_s"] = durations
    return df


# --------------------------------------------------------------------------- uploads


@dataclass
class UploadInfo:
    upload_id: str
    kind: str                 # "corpus" or "model"
    name: str                 # display name (the uploaded file's name)
    fmt: str | None = None    # corpus format
    task: str | None = None   # corpus task ("lm" / "sentiment")
    summary: str = ""
    files: list[str] = field(default_factory=list)
    size: int = 0
    path: str = ""            # relative to the upload folder: what load_corpus / the importer reads
    extra: dict[str, Any] = field(default_factory=dict)


def _upload_root(root: str | os.PathLike) -> Path:
    return Path(root).expanduser().absolute() / UPLOAD_DIR


def _safe_name(name: str) -> str:
    base = os.path.basename(str(name).replace("\\", "/")).strip() or "upload"
    keep = "".join(c if c.isalnum() or c in "._-" else "_" for c in base)[:100].lstrip(".")
    return keep or "upload"


def _check_text(name: str, data: bytes, what: str) -> None:
    if not data.strip():
        raise JobValidationError({what: f"{name} is empty"})
    head = data[:65536]
    if b"\x00" in head:
        raise JobValidationError({what: f"{name} looks like a binary file, not text"})
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # not just a character cut at the end of the sample
            raise JobValidationError({what: f"{name} is not UTF-8 text (byte {e.start}); "
                                            "upload a text, CSV or JSON-lines file"}) from None


def _check_sizes(files: Sequence[tuple[str, bytes]], max_bytes: int, what: str) -> int:
    if not files:
        raise JobValidationError({what: "no file uploaded"})
    total = sum(len(d) for _, d in files)
    if total > max_bytes:
        raise JobValidationError({what: f"the upload is {total / 2**20:.1f} MB; the limit is "
                                        f"{max_bytes / 2**20:.0f} MB (RNNVIS_MAX_UPLOAD_MB)"})
    return total


def _detect_upload_format(names: Sequence[str]) -> str:
    lowered = [n.lower() for n in names]
    if len(names) > 1 and all(n.endswith(".txt") for n in lowered):
        return "ptb"
    n = lowered[0]
    if n.endswith(".csv"):
        return "csv"
    if n.endswith(".json") or n.endswith(".jsonl"):
        return "yelp"
    return "text"


def _write_ptb(folder: Path, files: Sequence[tuple[str, bytes]]) -> None:
    """PTB format: three files (``*train.txt``, ``*valid.txt``, ``*test.txt``) or one file split 80/10/10 by line."""
    if len(files) == 1:
        lines = files[0][1].decode("utf-8", errors="replace").splitlines(keepends=True)
        lines = [ln for ln in lines if ln.strip()]
        a, b = int(len(lines) * 0.8), int(len(lines) * 0.9)
        parts = {"train": lines[:a], "valid": lines[a:b], "test": lines[b:]}
        for split, chunk in parts.items():
            (folder / f"ptb.{split}.txt").write_text("".join(chunk), encoding="utf-8")
        return
    by_split: dict[str, bytes] = {}
    for name, data in files:
        low = name.lower()
        split = next((s for s in ("train", "valid", "test") if low.endswith(f"{s}.txt")), None)
        if split is None or split in by_split:
            raise JobValidationError({"corpus": "PTB format needs ptb.train.txt, ptb.valid.txt and ptb.test.txt "
                                                f"(or one file to split); got {', '.join(n for n, _ in files)}"})
        by_split[split] = data
    missing = [s for s in ("train", "valid", "test") if s not in by_split]
    if missing:
        raise JobValidationError({"corpus": f"PTB format: missing the {', '.join(missing)} file(s)"})
    for split, data in by_split.items():
        (folder / f"ptb.{split}.txt").write_bytes(data)


def _commit_upload(root: str | os.PathLike, tmp: Path, info: UploadInfo) -> UploadInfo:
    (tmp / "upload.json").write_text(json.dumps(dataclasses.asdict(info), indent=1))
    final = _upload_root(root) / info.upload_id
    os.replace(tmp, final)
    return info


def _new_upload(root: str | os.PathLike) -> tuple[str, Path]:
    up = _upload_root(root)
    up.mkdir(parents=True, exist_ok=True)
    upload_id = "u" + secrets.token_hex(6)
    tmp = up / f".{upload_id}.tmp"
    tmp.mkdir()
    return upload_id, tmp


def save_corpus_upload(root: str | os.PathLike, files: Sequence[tuple[str, bytes]], fmt: str | None = None, *,
                       max_bytes: int = 50 * 2**20) -> UploadInfo:
    """Check an uploaded corpus and keep it under ``<store>/uploads/<upload_id>/``.

    ``files``: (file name, content) pairs; one file, or three for PTB format.
    ``fmt``: ``ptb``, ``text``, ``csv``, ``yelp`` or None (from the names).
    The corpus is loaded once (in a staging folder) so that an empty, binary
    or malformed file, a CSV without a text column, ... is refused here with
    the loader's message (``JobValidationError`` on field ``corpus``).
    """
    total = _check_sizes(files, max_bytes, "corpus")
    names = [_safe_name(n) for n, _ in files]
    for name, (_, data) in zip(names, files):
        _check_text(name, data, "corpus")
    fmt = fmt or _detect_upload_format(names)
    if fmt not in CORPUS_FORMATS:
        raise JobValidationError({"corpus_format": f"unknown format {fmt!r}; use one of {', '.join(CORPUS_FORMATS)}"})
    if fmt != "ptb" and len(files) != 1:
        raise JobValidationError({"corpus": f"upload one file for format {fmt!r} (three only for PTB)"})
    upload_id, tmp = _new_upload(root)
    try:
        if fmt == "ptb":
            _write_ptb(tmp, [(n, d) for n, (_, d) in zip(names, files)])
            rel = "."
        else:
            (tmp / names[0]).write_bytes(files[0][1])
            rel = names[0]
        try:
            corpus = load_corpus(str(tmp / rel), fmt)
        except CorpusError as e:
            raise JobValidationError({"corpus": str(e).replace(str(tmp) + os.sep, "").replace(str(tmp), names[0])})
        except (ValueError, UnicodeError, OSError) as e:
            raise JobValidationError({"corpus": f"{names[0]}: cannot be read as {fmt}: {e}"}) from None
        display = names[0] if len(names) == 1 else os.path.commonprefix(names).rstrip("._") or "ptb"
        info = UploadInfo(upload_id, "corpus", display, fmt, corpus.task, corpus.summary().replace(corpus.name, display),
                          names, total, rel)
        return _commit_upload(root, tmp, info)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_model_upload(root: str | os.PathLike, weights: tuple[str, bytes], vocab: tuple[str, bytes] | None = None,
                      *, max_bytes: int = 50 * 2**20) -> UploadInfo:
    """Check an uploaded model (RNNVis checkpoint, or a PyTorch state dict plus its vocabulary) and keep it.

    Errors name the field: ``weights`` or ``vocab``.
    """
    from models.importer import ModelImportError, inspect_model

    _check_sizes([weights] + ([vocab] if vocab else []), max_bytes, "weights")
    if not weights[1]:
        raise JobValidationError({"weights": f"{_safe_name(weights[0])} is empty"})
    if vocab is not None:
        _check_text(_safe_name(vocab[0]), vocab[1], "vocab")
    upload_id, tmp = _new_upload(root)
    try:
        wname = _safe_name(weights[0])
        (tmp / wname).write_bytes(weights[1])
        vname = None
        if vocab is not None:
            vname = _safe_name(vocab[0])
            if vname == wname:
                vname = "vocab-" + vname
            (tmp / vname).write_bytes(vocab[1])
        try:
            plan = inspect_model(tmp / wname, tmp / vname if vname else None)
        except ModelImportError as e:
            raise JobValidationError({e.field: str(e)}) from None
        info = UploadInfo(upload_id, "model", wname, task=plan.config.task, summary=plan.summary(),
                          files=[wname] + ([vname] if vname else []), size=len(weights[1]), path=wname,
                          extra={"vocab": vname, "format": plan.source, "warnings": plan.warnings})
        return _commit_upload(root, tmp, info)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_upload(root: str | os.PathLike, upload_id: str) -> tuple[UploadInfo, Path]:
    """The upload's description and folder; JobValidationError if it is not there."""
    try:
        store.validate_id(upload_id, "upload id")
    except ValueError as e:
        raise JobValidationError({"corpus": str(e)}) from None
    folder = _upload_root(root) / upload_id
    try:
        meta = json.loads((folder / "upload.json").read_text())
    except (OSError, ValueError):
        raise JobValidationError({"corpus": f"upload {upload_id!r} is not in the store; upload the file again"}) from None
    return UploadInfo(**meta), folder


def _builtin_available(name: str) -> str | None:
    """None if built-in corpus ``name`` can be loaded here, else why not."""
    if name == "brown" and (DEMO_DATA / "brown.tsv.xz").exists():
        return None
    if name == "fine_foods" and (DEMO_DATA / "fine_foods").exists():
        return None
    shared = shared_data_dir()
    if shared is not None and (shared / name).exists():
        return None
    return f"built-in corpus {name!r} is not installed here (it needs ../shared/data/{name} or RNNVIS_DATA)"


_BUILTIN_TASK = {"brown": "lm", "austen": "lm", "fine_foods": "sentiment"}


def _corpus_choice(root: str | os.PathLike, spec: Any) -> tuple[dict[str, Any], str]:
    """Normalise a corpus choice to a params dict and its task; JobValidationError on field ``corpus``."""
    if isinstance(spec, Mapping):
        spec = spec.get("upload_id") and f"upload:{spec['upload_id']}" or spec.get("name")
    if not spec:
        raise JobValidationError({"corpus": "choose a built-in corpus or upload one"})
    spec = str(spec)
    if spec.startswith("upload:"):
        info, _ = read_upload(root, spec.split(":", 1)[1])
        if info.kind != "corpus":
            raise JobValidationError({"corpus": f"upload {info.upload_id} is a model, not a corpus"})
        return {"source": "upload", "upload_id": info.upload_id, "name": info.name, "fmt": info.fmt}, info.task or "lm"
    if spec in BUILTIN:
        why = _builtin_available(spec)
        if why:
            raise JobValidationError({"corpus": why})
        return {"source": "builtin", "name": spec}, _BUILTIN_TASK[spec]
    raise JobValidationError({"corpus": f"unknown corpus {spec!r}: pick one of {', '.join(BUILTIN)} or upload a file"})


def resolve_corpus(root: str | os.PathLike, choice: Mapping[str, Any]) -> tuple[Corpus, str]:
    """Load the corpus of a job (on the machine running it): (corpus, the spec that loads it again)."""
    if choice.get("source") == "upload":
        info, folder = read_upload(root, choice["upload_id"])
        path = folder / info.path
        corpus = load_corpus(str(path), info.fmt)
        corpus.name = info.name
        return corpus, str(path)
    return load_corpus(choice["name"]), choice["name"]


# --------------------------------------------------------------------------- planning (validation)


def _coerce(name: str, value: Any) -> Any:
    """A form value as the field's type; JobValidationError naming the field otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if name in _CHOICES:
        v = str(value).strip().lower()
        if v not in _CHOICES[name]:
            raise JobValidationError({name: f"must be one of {', '.join(_CHOICES[name])}"})
        return v
    spec = FORM_FIELDS.get(name)
    if spec is None:
        return value
    kind, lo, hi = spec
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
        raise JobValidationError({"model_id": f"another queued or running job already builds {model_id!r}"})


def _active_model_ids(root: str | os.PathLike) -> set[str]:
    """Models that a queued or running job is building."""
    con = store.connect(root)
    try:
        df = store.query(con, "SELECT DISTINCT model_id FROM jobs WHERE status IN ('queued', 'running') "
                              "AND model_id IS NOT NULL")
    finally:
        con.close()
    return set(df["model_id"])


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


def plan_train_job(root: str | os.PathLike, request: Mapping[str, Any], *, submitted_by: str = "") -> JobRecord:
    """Validate a training request and return its (not yet written) ``queued`` record.

    ``request``: ``preset`` (optional: without one the defaults of a language
    model, or a classifier for a review corpus, apply), any field of
    :data:`FORM_FIELDS` plus ``cell``/``optimizer``, ``corpus`` (a built-in
    name or ``upload:<id>``; default: the preset's), ``model_id``, ``name``,
    ``analysis`` (AnalysisOptions fields). Every problem found is reported at
    once in :class:`JobValidationError`.errors, keyed by field.
    """
    errors: dict[str, str] = {}
    preset_name = (request.get("preset") or "").strip() or None
    try:
        if preset_name:
            preset = get_preset(preset_name)
            model_cfg, train_cfg = preset.model, preset.train
        else:
            model_cfg, train_cfg = ModelConfig(), TrainConfig()
    except ConfigError as e:
        raise JobValidationError({"preset": str(e)}) from None

    overrides: dict[str, Any] = {}
    for name in list(FORM_FIELDS) + list(_CHOICES):
        if name in request:
            try:
                v = _coerce(name, request[name])
            except JobValidationError as e:
                errors.update(e.errors)
                continue
            if v is not None:
                overrides[name] = v
    unknown = sorted(set(request) - set(FORM_FIELDS) - set(_CHOICES)
                     - {"preset", "corpus", "model_id", "name", "analysis", "corpus_format"})
    if unknown:
        errors["form"] = f"unknown field(s) {', '.join(unknown)}"

    corpus_spec = request["corpus"] if request.get("corpus") is not None else train_cfg.corpus  # "": none chosen
    corpus_params, corpus_task = None, None
    try:
        corpus_params, corpus_task = _corpus_choice(root, corpus_spec)
    except JobValidationError as e:
        errors.update(e.errors)
    if corpus_task is not None:
        if not preset_name:
            model_cfg.task = corpus_task
            if corpus_task == "sentiment":
                train_cfg = dataclasses.replace(train_cfg, optimizer="adam", lr=1e-3, lr_decay=1.0, epochs=5)
        elif corpus_task != model_cfg.task:
            what = {"lm": "a language model", "sentiment": "a sentiment classifier"}
            errors["corpus"] = (f"this corpus is for {what[corpus_task]} but preset {preset_name!r} is "
                                f"{what[model_cfg.task]}; pick a matching corpus or preset")
    try:
        apply_overrides(model_cfg, train_cfg, overrides)
    except ConfigError as e:
        errors.setdefault("form", str(e))
    if corpus_params is not None:
        train_cfg.corpus = corpus_params.get("name") if corpus_params["source"] == "builtin" else \
            f"upload:{corpus_params['upload_id']}"
    for cfg in (model_cfg, train_cfg):
        try:
            cfg.validate()
        except ConfigError as e:
            msg = str(e)
            key = msg.split(" ", 1)[0].split("/", 1)[0]
            errors.setdefault(key if key in FORM_FIELDS or key in _CHOICES else "form", msg)

    model_id = (request.get("model_id") or "").strip() or None
    job_id = new_job_id(root)
    if model_id is None:
        model_id = f"{preset_name or model_cfg.cell}-{job_id[1:7]}"
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
    params = {"preset": preset_name, "overrides": overrides, "corpus": corpus_params,
              "model": dataclasses.asdict(model_cfg), "train": dataclasses.asdict(train_cfg),
              "analysis": analysis, "name": (request.get("name") or "").strip() or model_id}
    return JobRecord(job_id, "train", model_id, submitted_by=submitted_by or "anonymous", params=params,
                     detail={"latest": {}, "curve": []})


def plan_import_job(root: str | os.PathLike, request: Mapping[str, Any], *, submitted_by: str = "") -> JobRecord:
    """Validate a bring-your-own-model request: ``model_upload`` (upload id), ``corpus``, ``model_id``, ``name``, ``analysis``."""
    errors: dict[str, str] = {}
    info = None
    up = request.get("model_upload")
    if not up:
        errors["weights"] = "upload a checkpoint or a PyTorch state dict"
    else:
        try:
            info, _ = read_upload(root, str(up))
            if info.kind != "model":
                errors["weights"] = f"upload {up} is a corpus, not a model"
        except JobValidationError as e:
            errors["weights"] = e.errors.get("corpus", str(e))
    corpus_params = None
    try:
        corpus_params, task = _corpus_choice(root, request.get("corpus"))
        if info is not None and info.kind == "model" and info.task != task:
            errors["corpus"] = f"the model is a {info.task} model but this corpus is for {task}"
    except JobValidationError as e:
        errors.update(e.errors)
    job_id = new_job_id(root)
    model_id = (request.get("model_id") or "").strip() or f"import-{job_id[1:7]}"
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
    params = {"import": {"upload_id": info.upload_id, "file": info.name, "vocab": info.extra.get("vocab"),
                         "summary": info.summary},
              "corpus": corpus_params, "analysis": analysis,
              "name": (request.get("name") or "").strip() or model_id}
    return JobRecord(job_id, "import", model_id, submitted_by=submitted_by or "anonymous", params=params,
                     detail={"latest": {}, "curve": [], "warnings": info.extra.get("warnings", [])})


def plan_analyze_job(root: str | os.PathLike, model_id: str, analysis: Mapping[str, Any] | None = None, *,
                     corpus: Any = None, submitted_by: str = "") -> JobRecord:
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
            corpus_params, _ = _corpus_choice(root, corpus)
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
    if rec.stage in ("train", "import", "analyze"):
        return rec.stage
    return {"train": "train", "import": "import", "analyze": "analyze"}[rec.kind]


# --------------------------------------------------------------------------- running (worker side)


def _error_text(exc: BaseException, time_limit_s: float | None = None) -> str:
    name = type(exc).__name__
    if name == "SoftTimeLimitExceeded":
        return f"time limit exceeded ({time_limit_s:.0f} s); raise RNNVIS_TRAIN_TIME_LIMIT or train less" \
            if time_limit_s else "time limit exceeded"
    msg = str(exc).strip()
    if "out of memory" in msg.lower():
        msg += " (try a smaller batch size, hidden size or vocabulary)"
    text = f"{name}: {msg}" if msg else name
    return text if len(text) <= 2000 else text[:1997] + "..."


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError) and exc.errno in (
        errno.EIO, errno.ESTALE, errno.ETIMEDOUT, errno.EAGAIN, errno.EBUSY, errno.ECONNRESET)


def worker_name(node: str | None = None) -> str:
    """``<node or host>/<pid>``: who runs a job (the pid tells a dead process from a live one)."""
    return f"{node or _HOST}/{os.getpid()}"


def _owner_alive(worker: str | None) -> bool | None:
    """True/False when ``worker`` ran on this host (by its pid), None when it ran elsewhere."""
    if not worker or "/" not in worker:
        return None
    node, _, pid = worker.rpartition("/")
    host = node.rpartition("@")[2]
    if host != _HOST or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StageOutcome(str):
    """What a stage did: ``done`` (continue with the next stage), ``cancelled``, ``skipped`` or ``failed``."""


DONE, CANCELLED, SKIPPED = StageOutcome("done"), StageOutcome("cancelled"), StageOutcome("skipped")


class JobTracker:
    """The record of a job being run, kept in memory and written to the store.

    Status changes are written at once, progress at most every
    ``min_interval_s``, and a heartbeat thread rewrites the record every
    ``heartbeat_s`` (and calls ``on_heartbeat``, e.g. to renew the broker's
    claim on the task) so that readers can tell a live job from a lost one.
    """

    def __init__(self, root: str | os.PathLike, job_id: str, *, heartbeat_s: float = 10.0,
                 min_interval_s: float = MIN_WRITE_INTERVAL_S, on_heartbeat: Callable[[], None] | None = None):
        self.root = root
        self.rec = read_job(root, job_id)
        self.heartbeat_s = heartbeat_s
        self.min_interval_s = min_interval_s
        self.on_heartbeat = on_heartbeat
        self._lock = threading.RLock()
        self._last_write = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_cancel_check = 0.0
        self._cancelled = False

    # -- writing
    def save(self, force: bool = True) -> None:
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last_write < self.min_interval_s:
                return
            if self.rec.status == "running":
                self.rec.heartbeat_at = _now()
            write_job(self.root, self.rec)
            self._last_write = now

    def begin(self, stage: str, worker: str) -> None:
        with self._lock:
            r = self.rec
            if r.stage != stage:
                r.attempts = 0
            r.status, r.stage, r.worker, r.error = "running", stage, worker, None
            r.attempts += 1
            r.started_at = r.started_at or _now()
            r.detail.setdefault("stages", {})[stage] = {"started_at": _now().isoformat(), "attempt": r.attempts,
                                                        "worker": worker}
            self.save()

    def progress(self, fraction: float | None = None, latest: Mapping[str, Any] | None = None,
                 force: bool = False) -> None:
        with self._lock:
            if fraction is not None:
                self.rec.progress = max(0.0, min(1.0, float(fraction)))
            if latest is not None:
                self.rec.detail["latest"] = dict(latest)
            self.save(force)

    def update_detail(self, **items: Any) -> None:
        """Set keys of ``detail`` (under the lock the heartbeat thread writes with); written at the next save."""
        with self._lock:
            self.rec.detail.update(items)

    def add_curve_point(self, point: Mapping[str, Any], fraction: float | None = None,
                        latest: Mapping[str, Any] | None = None) -> None:
        """End of an epoch: a point of the training curve (and the progress), written at once."""
        with self._lock:
            if fraction is not None:
                self.rec.progress = max(0.0, min(1.0, float(fraction)))
            if latest is not None:
                self.rec.detail["latest"] = dict(latest)
            curve = [p for p in self.rec.detail.setdefault("curve", []) if p.get("epoch") != point.get("epoch")]
            curve.append(dict(point))
            self.rec.detail["curve"] = curve
            self.save()

    def finish(self, status: str, *, error: str | None = None, result: Mapping[str, Any] | None = None) -> None:
        with self._lock:
            r = self.rec
            r.status, r.error, r.finished_at = status, error, _now()
            if status == "done":
                r.progress, r.stage = 1.0, "done"
            if result is not None:
                r.detail["result"] = dict(result)
            self.save()
        try:
            _cancel_path(self.root, r.job_id).unlink(missing_ok=True)  # the flag has done its work
        except OSError:
            pass

    def hand_over(self, stage: str, progress: float) -> None:
        """This stage is done; the job waits in the queue of the next one."""
        with self._lock:
            r = self.rec
            r.status, r.stage, r.attempts, r.progress = "queued", stage, 0, progress
            r.detail.setdefault("stages", {}).setdefault(r.stage, {})
            self.save()

    def requeue(self, reason: str) -> None:
        with self._lock:
            self.rec.status = "queued"
            self.rec.detail["retry"] = {"reason": reason, "at": _now().isoformat()}
            self.save()

    # -- cancel
    def should_stop(self) -> bool:
        """Polled by the training / analysis loops; checks the cancel flag at most every 0.2 s."""
        if self._cancelled:
            return True
        now = time.monotonic()
        if now - self._last_cancel_check >= 0.2:
            self._last_cancel_check = now
            self._cancelled = cancel_requested(self.root, self.rec.job_id)
        return self._cancelled

    # -- heartbeat
    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                self.save()
            except Exception:  # noqa: BLE001 - a missed heartbeat must not kill the job
                log.warning("job %s: heartbeat write failed", self.rec.job_id, exc_info=True)
            if self.on_heartbeat is not None:
                try:
                    self.on_heartbeat()
                except Exception:  # noqa: BLE001
                    log.warning("job %s: heartbeat hook failed", self.rec.job_id, exc_info=True)

    def __enter__(self) -> "JobTracker":
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{self.rec.job_id}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


@dataclass
class StageContext:
    """What a worker passes to a stage."""

    root: str | os.PathLike
    job_id: str
    worker: str
    device: Any = None                       # torch device or None (automatic)
    heartbeat_s: float = 10.0
    stale_after_s: float = 60.0
    max_attempts: int = 3
    time_limit_s: float | None = None
    on_heartbeat: Callable[[], None] | None = None
    wait_for_owner_s: float | None = None    # default: stale_after_s + heartbeat_s


def _claim(ctx: StageContext, stage: str) -> tuple[JobTracker | None, StageOutcome | None]:
    """Decide whether this delivery runs ``stage``; returns (tracker, None) to run or (None, outcome)."""
    try:
        tracker = JobTracker(ctx.root, ctx.job_id, heartbeat_s=ctx.heartbeat_s, on_heartbeat=ctx.on_heartbeat)
    except UnknownJobError:
        log.warning("job %s is not in the store at %s (deleted, or this worker uses another store); "
                    "dropping its message", ctx.job_id, ctx.root)
        return None, SKIPPED
    rec = tracker.rec
    if rec.status in TERMINAL:
        log.info("job %s is already %s; nothing to do", rec.job_id, rec.status)
        return None, SKIPPED
    if cancel_requested(ctx.root, ctx.job_id):
        tracker.finish("cancelled")
        return None, CANCELLED
    if rec.stage not in (stage, "queued"):
        log.warning("job %s is at stage %s, not %s; ignoring this delivery", rec.job_id, rec.stage, stage)
        return None, SKIPPED
    # A delivery of a job that another worker is (maybe) still running: a redelivery after
    # that worker was lost, or a duplicate. Wait until its owner is provably dead or silent.
    if rec.status == "running" and rec.worker and rec.worker != ctx.worker:
        deadline = time.monotonic() + (ctx.wait_for_owner_s if ctx.wait_for_owner_s is not None
                                       else ctx.stale_after_s + ctx.heartbeat_s)
        while True:
            alive = _owner_alive(rec.worker)
            if alive is False:
                break
            hb = rec.heartbeat_at
            if hb is None or (_now() - hb).total_seconds() > ctx.stale_after_s:
                break
            if time.monotonic() > deadline:
                log.warning("job %s is still running on %s; dropping this duplicate delivery", rec.job_id, rec.worker)
                return None, SKIPPED
            time.sleep(min(1.0, ctx.heartbeat_s / 2))
            tracker = JobTracker(ctx.root, ctx.job_id, heartbeat_s=ctx.heartbeat_s, on_heartbeat=ctx.on_heartbeat)
            rec = tracker.rec
            if rec.status != "running" or rec.stage != stage:
                return None, SKIPPED
        log.warning("job %s: taking over from lost worker %s", rec.job_id, rec.worker)
        rec.detail.setdefault("takeovers", []).append({"from": rec.worker, "to": ctx.worker, "at": _now().isoformat()})
    if rec.attempts >= ctx.max_attempts and rec.stage == stage:
        tracker.finish("failed", error=f"gave up after {rec.attempts} attempts of the {stage} stage: the worker "
                                       "running it was lost each time (killed, out of memory, or its machine went away)")
        return None, StageOutcome("failed")
    return tracker, None


def _fail(tracker: JobTracker, exc: BaseException, ctx: StageContext) -> None:
    """Record a failure; raise TransientJobError if it is worth another attempt, else JobFailed."""
    text = _error_text(exc, ctx.time_limit_s)
    if _is_transient(exc) and tracker.rec.attempts < ctx.max_attempts:
        tracker.requeue(text)
        raise TransientJobError(text) from exc
    tracker.finish("failed", error=text)
    raise JobFailed(text) from exc


def run_train_stage(ctx: StageContext) -> StageOutcome:
    """Train the job's model (resuming from its last epoch checkpoint on a later attempt)."""
    from models.train import TrainingCancelled, train_model

    tracker, outcome = _claim(ctx, "train")
    if tracker is None:
        return outcome  # type: ignore[return-value]
    rec = tracker.rec
    model_id = rec.model_id
    ckpt_path = checkpoint_file(ctx.root, model_id)
    resume, resumed_from = False, None
    if rec.detail.get("train_started") and ckpt_path.exists():
        try:
            resumed_from = int(read_checkpoint(ckpt_path).get("resume", {}).get("epoch", 0)) or None
            resume = resumed_from is not None
        except CheckpointError:
            log.warning("job %s: unreadable checkpoint %s; training from scratch", rec.job_id, ckpt_path)
    elif ckpt_path.exists():
        tracker.finish("failed", error=f"model {model_id!r} already has a checkpoint; submit with another model id")
        return StageOutcome("failed")
    rec.detail["train_started"] = True
    if resume:
        rec.detail["resumed_from_epoch"] = resumed_from
    tracker.begin("train", ctx.worker)
    p = rec.params
    model_cfg, train_cfg = ModelConfig(**p["model"]), TrainConfig(**p["train"])
    state = {"t0": time.perf_counter()}  # start of the current epoch (steps are counted from it)
    tokens_per_step = train_cfg.batch_size * train_cfg.bptt if model_cfg.task == "lm" else None

    def on_progress(d: dict[str, Any]) -> None:
        epochs, steps = d["epochs"], max(1, d["steps"])
        elapsed = max(time.perf_counter() - state["t0"], 1e-9)
        latest = {"stage": "train", "epoch": d["epoch"], "epochs": epochs, "step": d["step"], "steps": steps,
                  "loss": float(d["loss"]), "lr": d.get("lr")}
        latest["tokens_per_s"] = d.get("tokens_per_s") or (tokens_per_step * d["step"] / elapsed
                                                           if tokens_per_step else None)
        fraction = TRAIN_SHARE * ((d["epoch"] - 1) + d["step"] / steps) / max(epochs, 1)
        if "valid" in d:  # end of an epoch
            state["t0"] = time.perf_counter()
            v = d["valid"]
            tracker.add_curve_point({"epoch": d["epoch"], "train_loss": float(d["loss"]), "valid_loss": v.get("loss"),
                                     "valid_perplexity": v.get("perplexity"), "valid_accuracy": v.get("accuracy"),
                                     "tokens_per_s": d.get("tokens_per_s"), "lr": d.get("lr")}, fraction, latest)
        else:
            tracker.progress(fraction, latest)

    with tracker:
        try:
            corpus, spec = resolve_corpus(ctx.root, p["corpus"])
            train_cfg.corpus = spec
            result = train_model(model_id, model_cfg, train_cfg, ctx.root, corpus=corpus, name=p.get("name"),
                                 created_by=rec.submitted_by, resume=resume, device=ctx.device,
                                 show_progress=False, on_progress=on_progress, should_stop=tracker.should_stop)
        except TrainingCancelled:
            tracker.finish("cancelled")
            return CANCELLED
        except Exception as e:  # noqa: BLE001 - every failure is recorded, then re-raised
            _fail(tracker, e, ctx)
        test = next((m for m in reversed(result.metrics) if m["split"] == "test"), {})
        tracker.update_detail(train_result={"epochs_run": result.epochs_run, "wall_s": round(result.wall_s, 2),
                                            "test_loss": test.get("loss"), "test_perplexity": test.get("perplexity"),
                                            "test_accuracy": test.get("accuracy")})
        if tracker.should_stop():
            tracker.finish("cancelled")
            return CANCELLED
        tracker.hand_over("analyze", TRAIN_SHARE)
    return DONE


def run_import_stage(ctx: StageContext) -> StageOutcome:
    """Turn an uploaded model into an RNNVis checkpoint (evaluated on the job's corpus)."""
    from models.importer import import_model

    tracker, outcome = _claim(ctx, "import")
    if tracker is None:
        return outcome  # type: ignore[return-value]
    rec = tracker.rec
    tracker.begin("import", ctx.worker)
    with tracker:
        try:
            info, folder = read_upload(ctx.root, rec.params["import"]["upload_id"])
            corpus, spec = resolve_corpus(ctx.root, rec.params["corpus"])
            vocab = info.extra.get("vocab")
            res = import_model(rec.model_id, folder / info.path, folder / vocab if vocab else None, ctx.root,
                               corpus=corpus, corpus_spec=spec, name=rec.params.get("name"),
                               created_by=rec.submitted_by, device=ctx.device)
        except Exception as e:  # noqa: BLE001
            _fail(tracker, e, ctx)
        known = tracker.rec.detail.get("warnings", [])
        tracker.update_detail(import_result=res.summary, warnings=known + [w for w in res.warnings if w not in known])
        if tracker.should_stop():
            tracker.finish("cancelled")
            return CANCELLED
        tracker.hand_over("analyze", IMPORT_SHARE)
    return DONE


def run_analyze_stage(ctx: StageContext) -> StageOutcome:
    """Analyse the job's model and publish its partition (atomically: all tables or none)."""
    from analytics.pipeline import AnalysisCancelled, AnalysisOptions, analyze_model

    tracker, outcome = _claim(ctx, "analyze")
    if tracker is None:
        return outcome  # type: ignore[return-value]
    rec = tracker.rec
    base = {"train": TRAIN_SHARE, "import": IMPORT_SHARE}.get(rec.kind, 0.0)
    tracker.begin("analyze", ctx.worker)

    def on_progress(d: dict[str, Any]) -> None:
        latest = dict(tracker.rec.detail.get("latest") or {})
        latest.update(stage="analyze", analysis_stage=d.get("stage"), analysis_progress=d.get("progress"))
        tracker.progress(base + (1 - base) * float(d.get("progress") or 0.0), latest)

    with tracker:
        try:
            corpus = resolve_corpus(ctx.root, rec.params["corpus"])[0] if rec.params.get("corpus") else None
            opts = AnalysisOptions(**rec.params.get("analysis", {}))
            res = analyze_model(rec.model_id, ctx.root, opts, corpus=corpus, device=ctx.device or "cpu",
                                show_progress=False, on_progress=on_progress, should_stop=tracker.should_stop)
        except AnalysisCancelled:
            tracker.finish("cancelled")
            return CANCELLED
        except Exception as e:  # noqa: BLE001
            _fail(tracker, e, ctx)
        tracker.finish("done", result={"tokens": res.tokens, "words": res.words, "states": len(res.states),
                                       "analysis_wall_s": round(res.wall_s, 2)})
    return DONE
