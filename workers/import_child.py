"""The import stage's heavy part (build the uploaded model, load its weights, evaluate it, write its
checkpoint) in a child process under an address-space limit, so that no upload can take the worker
(or, in embedded mode, the machine) down with it.

The parent (:func:`import_in_child`, called by :func:`workers.stages.run_import_stage`) sends a JSON
request on the child's stdin; the child (``python -m workers.import_child``) answers one JSON line on
stdout: ``{"ok": {summary, warnings}}`` or ``{"error": message, "field": ...}``. The child evaluates on the
CPU: a GPU's driver reserves far more address space than any limit that would be useful here.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_MEMORY_BYTES", "request_for", "import_in_child"]

DEFAULT_MEMORY_BYTES = 4 << 30
_REPO = str(Path(__file__).resolve().parents[1])


def import_in_child(request: dict[str, Any], *, memory_bytes: int = DEFAULT_MEMORY_BYTES,
                    timeout_s: float | None = None) -> dict[str, Any]:
    """Run :func:`child_main` on ``request`` in a process limited to ``memory_bytes`` of address space.

    Returns ``{"summary", "warnings"}``; raises ModelImportError with a one-line message otherwise. The child
    sets its own limit before it imports anything heavy (a ``preexec_fn`` is unsafe in a threaded worker)."""
    from models.importer import ModelImportError

    env = dict(os.environ, PYTHONPATH=_REPO + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH")
                                               else ""))
    try:
        out = subprocess.run([sys.executable, "-m", "workers.import_child", str(int(memory_bytes))],
                             input=json.dumps(request), text=True, capture_output=True, env=env, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ModelImportError(f"the import ran past {timeout_s:.0f} s and was stopped "
                               "(RNNVIS_ANALYZE_TIME_LIMIT)") from None
    lines = out.stdout.strip().splitlines()
    answer = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None
    if answer and "ok" in answer:
        return answer["ok"]
    if answer and "error" in answer:
        raise ModelImportError(answer["error"], answer.get("field") or "weights")
    tail = (out.stderr.strip().splitlines() or ["no output"])[-1][:300]
    if out.returncode < 0 or "memory" in out.stderr.lower():
        raise ModelImportError(f"the import needed more than {memory_bytes >> 20} MB of memory and was stopped "
                               f"({tail}); raise RNNVIS_IMPORT_MEMORY_MB or import a smaller model")
    raise ModelImportError(f"the import process failed (exit {out.returncode}): {tail}")


def request_for(root: str | os.PathLike, upload_id: str, corpus_choice: dict[str, Any], **job: Any) -> dict[str, Any]:
    """The child's request: the files and corpus resolved here (the child imports no store code)."""
    from workers.uploads import corpus_source, read_upload

    info, folder = read_upload(root, upload_id)
    vocab = info.extra.get("vocab")
    return {"root": str(root), "weights": str(folder / info.path), "vocab": str(folder / vocab) if vocab else None,
            "corpus": corpus_source(root, corpus_choice), **job}


def child_main() -> int:
    """In the child: import the model the request on stdin describes; one JSON line on stdout."""
    import torch

    from models.corpora import load_corpus
    from models.importer import ModelImportError, import_model

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    req = json.loads(sys.stdin.read())
    try:
        src = req["corpus"]
        corpus = load_corpus(src["spec"], src["fmt"])
        corpus.name = src["name"] or corpus.name
        res = import_model(req["model_id"], req["weights"], req["vocab"], req["root"], corpus=corpus,
                           corpus_spec=src["ref"], name=req.get("name"), created_by=req.get("created_by", ""),
                           max_params=int(req["max_params"]))
    except ModelImportError as e:
        answer: dict[str, Any] = {"error": str(e), "field": e.field}
    except MemoryError:
        answer = {"error": f"the import ran out of memory (limit {req.get('memory_mb', '?')} MB, "
                           "RNNVIS_IMPORT_MEMORY_MB); import a smaller model or raise the limit"}
    except Exception as e:  # noqa: BLE001 - reported to the parent as one line
        text = str(e).strip().splitlines()[0][:500] if str(e).strip() else ""
        if "alloc" in text.lower() and "memory" in text.lower():
            text += f" (limit {req.get('memory_mb', '?')} MB, RNNVIS_IMPORT_MEMORY_MB)"
        answer = {"error": f"{type(e).__name__}: {text}" if text else type(e).__name__}
    else:
        answer = {"ok": {"summary": res.summary, "warnings": res.warnings}}
    sys.stdout.write(json.dumps(answer, default=str) + "\n")
    return 0


if __name__ == "__main__":
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    sys.exit(child_main())
