"""The ``rnnvis jobs ...`` and ``rnnvis worker`` commands: submit, import, analyse, ablate, list, show, cancel
and retry background jobs, and run a worker.  The parser of the other commands is in :mod:`app.cli`."""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

from app.cli.common import OVERRIDES, add_override_flags, analysis_options, print_frame, settings


def _job_context(args):
    """(Settings with --store applied, JobSettings)."""
    from workers.settings import JobSettings
    s = settings()
    if getattr(args, "store", None):
        s = dataclasses.replace(s, store=Path(args.store))
    return s, JobSettings.from_env()


def _user() -> str:
    """Who submits from the command line.  Its jobs may use every upload (``admin=True`` below): whoever runs
    the CLI reads the store's files directly anyway."""
    import getpass
    try:
        return os.environ.get("RNNVIS_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def _corpus_request(spec: str | None, fmt: str | None, s, js) -> str | None:
    """A built-in corpus name as is; a local file or folder is validated and copied into the store's uploads."""
    from models.corpora import BUILTIN
    from workers.errors import JobValidationError
    from workers.uploads import save_corpus_upload
    if not spec or (spec in BUILTIN and fmt is None):
        return spec
    path = Path(spec)
    if not path.exists():
        raise JobValidationError({"corpus": f"no built-in corpus or file {spec!r}"})
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix == ".txt") if path.is_dir() else [path]
    if path.is_dir() and not files:
        raise JobValidationError({"corpus": f"{spec} has no .txt files (a PTB folder holds ptb.train.txt, ...)"})
    info = save_corpus_upload(s.store, [(p.name, p.read_bytes()) for p in files],
                                   fmt or ("ptb" if path.is_dir() else None), max_bytes=js.max_upload_bytes,
                                   owner=_user())
    print(f"corpus {info.summary} saved as upload {info.upload_id}", file=sys.stderr)
    return f"upload:{info.upload_id}"


def _run_job_command(fn) -> int:
    """Run ``fn()``; print job errors (refused requests field by field, broker down) as a user can act on them."""
    from workers.errors import JobError, JobValidationError
    try:
        return fn()
    except JobValidationError as e:
        for key, msg in e.errors.items():
            print(f"error: {key}: {msg}", file=sys.stderr)
        return 2
    except JobError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3


def _wait_for_job(s, js, job_id: str, poll_s: float = 1.0) -> int:
    from workers import records
    last = None
    while True:
        rec = records.read_job(s.store, job_id)
        cancelling = records.cancel_requested(s.store, job_id)
        status = records.display_status(rec.status, rec.heartbeat_at, cancelling, stale_after_s=js.stale_after_s)
        latest = rec.detail.get("latest") or {}
        line = f"{job_id} {status} {rec.stage} {rec.progress:.0%}"
        if latest.get("epoch"):
            line += f" epoch {latest['epoch']}/{latest.get('epochs')} loss {latest.get('loss', float('nan')):.3f}"
        if line != last:
            print(line, file=sys.stderr)
            last = line
        if rec.status in records.TERMINAL:
            if rec.error:
                print(f"error: {rec.error}", file=sys.stderr)
            return 0 if rec.status == "done" else 1
        time.sleep(poll_s)


def cmd_jobs_submit(args) -> int:
    def run() -> int:
        from workers import client
        s, js = _job_context(args)
        request = {k: getattr(args, k) for k in OVERRIDES if getattr(args, k) is not None}
        request.update(preset=args.preset, model_id=args.model_id, name=args.name)
        corpus = _corpus_request(args.corpus, args.format, s, js)
        if corpus:
            request["corpus"] = corpus
        request["analysis"] = dataclasses.asdict(analysis_options(args))
        rec = client.submit_train(s, request, submitted_by=_user(), admin=True, job_settings=js)
        print(rec.job_id)
        return _wait_for_job(s, js, rec.job_id) if args.wait else 0
    return _run_job_command(run)


def cmd_jobs_import(args) -> int:
    def run() -> int:
        from workers import client
        from workers.errors import JobValidationError
        from workers.uploads import save_model_upload
        s, js = _job_context(args)
        weights = Path(args.weights)
        vocab = Path(args.vocab) if args.vocab else None
        for p in (weights, vocab):
            if p is not None and not p.is_file():
                raise JobValidationError({"weights" if p is weights else "vocab": f"no file {p}"})
        info = save_model_upload(s.store, (weights.name, weights.read_bytes()),
                                      (vocab.name, vocab.read_bytes()) if vocab else None,
                                      max_bytes=js.max_upload_bytes, max_params=js.max_model_params,
                                      owner=_user())
        print(f"model: {info.summary}", file=sys.stderr)
        request = {"model_upload": info.upload_id, "corpus": _corpus_request(args.corpus, args.format, s, js),
                   "model_id": args.model_id, "name": args.name,
                   "analysis": dataclasses.asdict(analysis_options(args))}
        rec = client.submit_import(s, request, submitted_by=_user(), admin=True, job_settings=js)
        print(rec.job_id)
        return _wait_for_job(s, js, rec.job_id) if args.wait else 0
    return _run_job_command(run)


def cmd_jobs_analyze(args) -> int:
    def run() -> int:
        from workers import client
        s, js = _job_context(args)
        rec = client.submit_analyze(s, args.model_id, dataclasses.asdict(analysis_options(args)),
                                    submitted_by=_user(), admin=True, job_settings=js)
        print(rec.job_id)
        return _wait_for_job(s, js, rec.job_id) if args.wait else 0
    return _run_job_command(run)


def _unit_list(text: str) -> list[int]:
    import argparse
    try:
        return [int(u) for u in text.split(",") if u.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"units are comma-separated whole numbers, got {text!r}") from None


def cmd_jobs_ablate(args) -> int:
    def run() -> int:
        from workers import client
        s, js = _job_context(args)
        request = {"model_id": args.model_id, "layer": args.layer, "state": args.state, "units": args.units,
                   "k": args.k, "cluster": args.cluster, "prefix": args.prefix, "baseline_sets": args.baseline_sets,
                   "seed": args.seed, "modes": args.modes.split(",")}
        rec = client.submit_ablate(s, {k: v for k, v in request.items() if v is not None}, submitted_by=_user(),
                                   job_settings=js)
        print(rec.job_id)
        return _wait_for_job(s, js, rec.job_id) if args.wait else 0
    return _run_job_command(run)


def cmd_jobs_list(args) -> int:
    from workers import records
    s, js = _job_context(args)
    df = records.list_jobs(s.store, limit=args.limit, stale_after_s=js.stale_after_s)
    out = df[["job_id", "kind", "model_id", "display_status", "stage", "progress", "submitted_by", "submitted_at",
              "duration_s", "error"]].rename(columns={"display_status": "status"})
    if args.format == "table":
        out = out.assign(progress=[f"{p:.0%}" for p in out["progress"]],
                         duration_s=[None if d is None or d != d else round(d, 1) for d in out["duration_s"]],
                         submitted_at=[str(t)[:19] for t in out["submitted_at"]],
                         error=[(e[:60] + "...") if isinstance(e, str) and len(e) > 60 else e for e in out["error"]])
    print_frame(out, args.format)
    return 0


def cmd_jobs_show(args) -> int:
    import json

    from workers import records
    from workers.errors import UnknownJobError
    s, js = _job_context(args)
    try:
        rec = records.read_job(s.store, args.job_id)
    except UnknownJobError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    status = records.display_status(rec.status, rec.heartbeat_at, records.cancel_requested(s.store, rec.job_id),
                                 stale_after_s=js.stale_after_s)
    if args.format == "json":
        row = {**rec.row(), "params": rec.params, "detail": rec.detail, "display_status": status}
        print(json.dumps(row, default=str, indent=1))
        return 0
    submitted = f"{rec.submitted_at:%Y-%m-%d %H:%M:%S}"
    print(f"job        {rec.job_id} ({rec.kind})\nmodel      {rec.model_id}\n"
          f"status     {status} (stage {rec.stage}, attempt {rec.attempts}, {rec.progress:.0%})\n"
          f"submitted  {submitted} by {rec.submitted_by}\nstarted    {rec.started_at or '-'}\n"
          f"finished   {rec.finished_at or '-'}\nworker     {rec.worker or '-'}\n"
          f"heartbeat  {rec.heartbeat_at or '-'}")
    if rec.error:
        print(f"error      {rec.error}")
    latest = rec.detail.get("latest") or {}
    if latest:
        print("latest     " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                        for k, v in latest.items() if v is not None))
    for key in ("resumed_from_epoch", "train_result", "import_result", "result", "warnings", "takeovers"):
        if rec.detail.get(key):
            print(f"{key:10s} {rec.detail[key]}")
    curve = rec.detail.get("curve") or []
    if curve:
        import pandas as pd
        print("\ntraining curve:")
        print_frame(pd.DataFrame(curve), "table")
    return 0


def cmd_jobs_cancel(args) -> int:
    def run() -> int:
        from workers import client
        s, js = _job_context(args)
        # Open mode: whoever runs the CLI is the implicit local admin; with sign-in on, --admin says so.
        admin = bool(getattr(args, "admin", False)) or not getattr(s, "auth", False)
        print(f"{args.job_id}: {client.cancel(s, args.job_id, by=_user(), admin=admin, job_settings=js)}")
        return 0
    return _run_job_command(run)


def cmd_jobs_retry(args) -> int:
    def run() -> int:
        from workers import client
        s, js = _job_context(args)
        rec = client.resubmit(s, args.job_id, job_settings=js)
        print(f"{rec.job_id}: queued again at stage {rec.stage if rec.stage != 'queued' else rec.kind}")
        return _wait_for_job(s, js, rec.job_id) if args.wait else 0
    return _run_job_command(run)


def cmd_worker(args) -> int:
    from workers.embedded import worker_argv, worker_env
    s, _ = _job_context(args)
    queues = [q.strip() for q in args.queues.split(",") if q.strip()]
    argv = worker_argv(queues=queues, concurrency=args.concurrency, pool=args.pool, loglevel=args.loglevel,
                       hostname=args.hostname)
    if not s.broker_url:
        print(f"no RNNVIS_BROKER_URL: processing the embedded queue of store {Path(s.store).absolute()}",
              file=sys.stderr)
    sys.stdout.flush()
    os.execvpe(argv[0], argv, worker_env(s))
    return 0  # not reached


def add_job_commands(sub, analysis_flags) -> None:
    p = sub.add_parser("jobs", help="submit, list, show and cancel background jobs")
    jsub = p.add_subparsers(dest="jobs_command", required=True)

    q = jsub.add_parser("submit", help="queue a training job (trained, then analysed); prints the job id")
    q.add_argument("--preset", help="training preset (`rnnvis presets`); default: a plain LSTM language model")
    q.add_argument("--model-id", help="id of the new model (default: <preset>-<random>)")
    q.add_argument("--name", help="display name")
    q.add_argument("--corpus", help="brown, fine_foods, austen, or a file/folder to upload (PTB folder, text, "
                                    "review CSV, Yelp JSON lines)")
    q.add_argument("--format", choices=("ptb", "text", "csv", "yelp"), help="format of an uploaded corpus")
    q.add_argument("--wait", action="store_true", help="follow the job until it ends")
    add_override_flags(q)
    analysis_flags(q)
    q.set_defaults(fn=cmd_jobs_submit)

    q = jsub.add_parser("import", help="bring your own model: import a checkpoint or state dict, then analyse it")
    q.add_argument("--weights", required=True, help="RNNVis checkpoint or torch.save(model.state_dict()) file")
    q.add_argument("--vocab", help="vocabulary of a state dict: one word per line in embedding-row order")
    q.add_argument("--corpus", required=True, help="corpus to analyse it on (built-in name or a file/folder)")
    q.add_argument("--format", choices=("ptb", "text", "csv", "yelp"), help="format of an uploaded corpus")
    q.add_argument("--model-id")
    q.add_argument("--name")
    q.add_argument("--wait", action="store_true")
    analysis_flags(q)
    q.set_defaults(fn=cmd_jobs_import)

    q = jsub.add_parser("analyze", help="queue a (re-)analysis of a stored model")
    q.add_argument("model_id")
    q.add_argument("--wait", action="store_true")
    analysis_flags(q)
    q.set_defaults(fn=cmd_jobs_analyze)

    q = jsub.add_parser("ablate", help="queue an ablation of a stored model's units (Explore's \"Test these "
                                       "units\"); its rows go to the ablations table, marked with your name")
    q.add_argument("model_id")
    q.add_argument("--layer", type=int, required=True)
    q.add_argument("--state", default="h", help="h, or c for an LSTM")
    q.add_argument("--units", type=_unit_list, required=True, help="comma-separated unit indices, e.g. 3,17,42")
    q.add_argument("--k", type=int, help="the co-clustering whose word clusters are targets")
    q.add_argument("--cluster", type=int, help="the unit cluster of k that the units are (labels the rows)")
    q.add_argument("--prefix", type=int, help="tokens measured (default 20000; 0 = the whole split)")
    q.add_argument("--baseline-sets", type=int, help="random unit sets of the same size (default 20)")
    q.add_argument("--seed", type=int)
    q.add_argument("--modes", default="zero", help="zero, mean or zero,mean")
    q.add_argument("--wait", action="store_true")
    q.set_defaults(fn=cmd_jobs_ablate)

    q = jsub.add_parser("list", help="list jobs, newest first")
    q.add_argument("--limit", type=int, default=50)
    q.add_argument("--format", choices=("table", "csv", "json"), default="table")
    q.set_defaults(fn=cmd_jobs_list)

    q = jsub.add_parser("show", help="one job: status, progress, training curve, error")
    q.add_argument("job_id")
    q.add_argument("--format", choices=("table", "json"), default="table")
    q.set_defaults(fn=cmd_jobs_show)

    q = jsub.add_parser("cancel", help="cancel a queued or running job (yours, or any with --admin)")
    q.add_argument("job_id")
    q.add_argument("--admin", action="store_true",
                   help="cancel another user's job (with sign-in on; in open mode the CLI user is the admin)")
    q.set_defaults(fn=cmd_jobs_cancel)

    q = jsub.add_parser("retry", help="queue a failed, cancelled or lost job again (training resumes)")
    q.add_argument("job_id")
    q.add_argument("--wait", action="store_true")
    q.set_defaults(fn=cmd_jobs_retry)

    p = sub.add_parser("worker", help="run a job worker (Celery) for the train and/or analyze queues")
    p.add_argument("--queues", default="train,analyze", help="comma list of queues (default train,analyze)")
    p.add_argument("--concurrency", type=int, default=1, help="tasks at once (default 1: one training per GPU)")
    p.add_argument("--pool", default="prefork", choices=("prefork", "solo", "threads"),
                   help="prefork (default) requeues a task whose process dies; solo runs tasks in the worker itself")
    p.add_argument("--loglevel", default="info")
    p.add_argument("--hostname", help="Celery node name (default <queues>-<index>@<host>)")
    p.set_defaults(fn=cmd_worker)
