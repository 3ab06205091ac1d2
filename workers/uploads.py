"""Uploaded corpora and models: checked once, kept under ``<store>/uploads/<upload_id>/``; and the corpus of a
job (built-in or uploaded), checked when it is submitted and loaded on the worker that runs it."""
from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analytics import store
from models.corpora import BUILTIN, DEMO_DATA, Corpus, CorpusError, load_corpus, shared_data_dir
from workers.errors import JobValidationError

__all__ = ["UPLOAD_DIR", "META_FILE", "CORPUS_FORMATS", "UploadInfo", "save_corpus_upload", "save_model_upload",
           "read_upload", "list_uploads", "corpus_choice", "corpus_source", "resolve_corpus"]

UPLOAD_DIR = "uploads"
#: The upload's description, next to its files; a dot name, which no uploaded file can take (_safe_name).
META_FILE = ".upload.json"
_LEGACY_META = "upload.json"     # uploads made before: read, never written
CORPUS_FORMATS = ("ptb", "text", "csv", "yelp")


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
    owner: str = ""           # who uploaded it: only they may use it in a job ("" for uploads made before owners)


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
    (tmp / META_FILE).write_text(json.dumps(dataclasses.asdict(info), indent=1))
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
                       max_bytes: int = 50 * 2**20, owner: str = "") -> UploadInfo:
    """Check an uploaded corpus and keep it under ``<store>/uploads/<upload_id>/``.

    ``files``: (file name, content) pairs; one file, or three for PTB format.
    ``fmt``: ``ptb``, ``text``, ``csv``, ``yelp`` or None (from the names).
    The corpus is loaded once (in a staging folder) so that an empty, binary
    or malformed file, a CSV without a text column, ... is refused here with
    the loader's message (``JobValidationError`` on field ``corpus``).
    ``owner``: the uploader; only they may use the upload in a job.
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
            raise JobValidationError({"corpus": str(e).replace(str(tmp) + os.sep, "").replace(str(tmp),
                                                                                              names[0])}) from None
        except (ValueError, UnicodeError, OSError) as e:
            raise JobValidationError({"corpus": f"{names[0]}: cannot be read as {fmt}: {e}"}) from None
        display = names[0] if len(names) == 1 else os.path.commonprefix(names).rstrip("._") or "ptb"
        info = UploadInfo(upload_id, "corpus", display, fmt, corpus.task, corpus.summary().replace(corpus.name,
                                                                                                   display),
                          names, total, rel, owner=owner)
        return _commit_upload(root, tmp, info)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_model_upload(root: str | os.PathLike, weights: tuple[str, bytes], vocab: tuple[str, bytes] | None = None,
                      *, max_bytes: int = 50 * 2**20, max_params: int | None = None, owner: str = "") -> UploadInfo:
    """Check an uploaded model (RNNVis checkpoint, or a PyTorch state dict plus its vocabulary) and keep it.

    Only the bounded checks run here, in the web process (:func:`models.import_plan.inspect_model`: the zip's
    directory, declared shapes against the weights and ``max_params``, nothing inflated or built); the
    model is built and evaluated by the import job, on a worker, under a memory limit. Errors name the
    field: ``weights`` or ``vocab``.
    """
    from models.import_plan import ModelImportError, inspect_model
    from models.safe_load import DEFAULT_MAX_PARAMS

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
            plan = inspect_model(tmp / wname, tmp / vname if vname else None,
                                 max_params=max_params or DEFAULT_MAX_PARAMS)
        except ModelImportError as e:
            raise JobValidationError({e.field: str(e)}) from None
        info = UploadInfo(upload_id, "model", wname, task=plan.config.task, summary=plan.summary(),
                          files=[wname] + ([vname] if vname else []), size=len(weights[1]), path=wname,
                          extra={"vocab": vname, "format": plan.source, "warnings": plan.warnings}, owner=owner)
        return _commit_upload(root, tmp, info)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_upload(root: str | os.PathLike, upload_id: str, *, user: str | None = None, admin: bool = False,
                field_name: str = "corpus") -> tuple[UploadInfo, Path]:
    """The upload's description and folder; JobValidationError (on ``field_name``) if it is not there, or if
    ``user`` is given and may not use it: only its owner and admins (``admin``) may; an upload made before
    uploads had owners, admins only."""
    try:
        store.validate_id(upload_id, "upload id")
    except ValueError as e:
        raise JobValidationError({field_name: str(e)}) from None
    folder = _upload_root(root) / upload_id
    meta = None
    for name in (META_FILE, _LEGACY_META):
        try:
            meta = json.loads((folder / name).read_text())
            break
        except (OSError, ValueError):
            continue
    if not isinstance(meta, dict) or meta.get("upload_id") != upload_id:
        raise JobValidationError({field_name: f"upload {upload_id!r} is not in the store; upload the file again"})
    info = UploadInfo(**{k: v for k, v in meta.items() if k in _INFO_FIELDS})
    if user is not None and not admin and info.owner != user:
        whose = "belongs to another user" if info.owner else "predates upload owners (only admins may use it)"
        raise JobValidationError({field_name: f"upload {upload_id} {whose}; upload the file yourself to use it"})
    return info, folder


_INFO_FIELDS = {f.name for f in dataclasses.fields(UploadInfo)}


def list_uploads(root: str | os.PathLike, user: str, *, admin: bool = False) -> list[UploadInfo]:
    """The uploads ``user`` may see (their own; every one for an admin), newest first."""
    up = _upload_root(root)
    found = []
    for folder in up.iterdir() if up.is_dir() else []:
        if folder.name.startswith("."):
            continue
        try:
            info, _ = read_upload(root, folder.name, user=user, admin=admin)
            when = folder.stat().st_mtime
        except (JobValidationError, OSError):  # not an upload, or removed meanwhile
            continue
        found.append((when, info))
    return [info for _, info in sorted(found, key=lambda x: x[0], reverse=True)]


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


def corpus_choice(root: str | os.PathLike, spec: Any, *, user: str | None = None,
                  admin: bool = False) -> tuple[dict[str, Any], str]:
    """Normalise a corpus choice to a params dict and its task; JobValidationError on field ``corpus``
    (also when ``user`` is given and may not use the chosen upload, see :func:`read_upload`)."""
    if isinstance(spec, Mapping):
        spec = spec.get("upload_id") and f"upload:{spec['upload_id']}" or spec.get("name")
    if not spec:
        raise JobValidationError({"corpus": "choose a built-in corpus or upload one"})
    spec = str(spec)
    if spec.startswith("upload:"):
        info, _ = read_upload(root, spec.split(":", 1)[1], user=user, admin=admin)
        if info.kind != "corpus":
            raise JobValidationError({"corpus": f"upload {info.upload_id} is a model, not a corpus"})
        return {"source": "upload", "upload_id": info.upload_id, "name": info.name, "fmt": info.fmt}, info.task or "lm"
    if spec in BUILTIN:
        why = _builtin_available(spec)
        if why:
            raise JobValidationError({"corpus": why})
        return {"source": "builtin", "name": spec}, _BUILTIN_TASK[spec]
    raise JobValidationError({"corpus": f"unknown corpus {spec!r}: pick one of {', '.join(BUILTIN)} or upload a file"})


def corpus_source(root: str | os.PathLike, choice: Mapping[str, Any]) -> dict[str, Any]:
    """What loads the corpus of a job: ``{"spec", "fmt", "name"}`` for :func:`models.corpora.load_corpus`, and
    ``ref``: what a checkpoint records (a built-in name or ``upload:<id>``, never a path of the store)."""
    if choice.get("source") == "upload":
        info, folder = read_upload(root, choice["upload_id"])
        return {"spec": str(folder / info.path), "fmt": info.fmt, "name": info.name, "ref": f"upload:{info.upload_id}"}
    return {"spec": choice["name"], "fmt": None, "name": None, "ref": choice["name"]}


def resolve_corpus(root: str | os.PathLike, choice: Mapping[str, Any]) -> tuple[Corpus, str]:
    """Load the corpus of a job (on the machine running it): (corpus, its store-relative ``ref``, see
    :func:`corpus_source`)."""
    src = corpus_source(root, choice)
    corpus = load_corpus(src["spec"], src["fmt"])
    corpus.name = src["name"] or corpus.name
    return corpus, src["ref"]
