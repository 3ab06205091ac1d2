"""The ``rnnvis`` command line: presets, train, analyze, sql, models, demo, serve, jobs, worker."""
from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
import time
from pathlib import Path

from app.cli.common import OVERRIDES, add_analysis_flags, add_override_flags, analysis_options, print_frame, settings

log = logging.getLogger("rnnvis")

DEMO_MODELS = ("demo-lstm", "demo-gru", "demo-rnn", "demo-sentiment")


def cmd_presets(args) -> int:
    from models.config import PRESETS
    for name, p in PRESETS.items():
        m, t = p.model, p.train
        print(f"{name:16s} {m.task:9s} {m.cell:4s} {m.layers}x{m.hidden_size:<5d} corpus={t.corpus:10s} "
              f"epochs={t.epochs:<3d} {t.optimizer} lr={t.lr:g}  {p.description}")
    return 0


def _train(model_id: str, preset: str, overrides: dict, store: Path, *, name=None, resume=False,
           show_progress=True):
    from models.config import apply_overrides, get_preset
    from models.train import train_model
    p = get_preset(preset)
    apply_overrides(p.model, p.train, overrides)
    p.model.validate()
    p.train.validate()
    return train_model(model_id, p.model, p.train, store, name=name or model_id, resume=resume,
                       show_progress=show_progress, threads=settings().torch_threads)


def cmd_train(args) -> int:
    store = Path(args.store or settings().store)
    overrides = {k: getattr(args, k) for k in OVERRIDES}
    overrides["corpus"] = args.corpus
    model_id = args.model_id or args.preset
    res = _train(model_id, args.preset, overrides, store, name=args.name, resume=args.resume)
    last = {m["split"]: m for m in res.metrics}
    print(f"trained {model_id} in {res.wall_s:.1f}s ({res.epochs_run} epochs) -> {res.checkpoint}")
    for split in ("valid", "test"):
        m = last.get(split)
        if m:
            print(f"  {split}: loss {m['loss']:.4f}" + (f", perplexity {m['perplexity']:.2f}" if m["perplexity"]
                                                         else f", accuracy {m['accuracy']:.4f}"))
    if args.analyze:
        return _analyze(model_id, store, args)
    return 0


def _analyze(model_id: str, store: Path, args) -> int:
    from analytics.pipeline import analyze_model
    res = analyze_model(model_id, store, analysis_options(args), threads=settings().torch_threads)
    print(f"analysed {model_id}: {res.tokens:,} tokens, {len(res.states)} layer-states in {res.wall_s:.1f}s "
          f"-> {res.partition}")
    return 0


def cmd_analyze(args) -> int:
    return _analyze(args.model_id, Path(args.store or settings().store), args)


def cmd_sql(args) -> int:
    if getattr(args, "sandbox", False):
        from app.cli.hosted import sql_sandboxed
        return sql_sandboxed(args, print_frame)
    import duckdb

    from analytics import store
    con = store.connect(Path(args.store or settings().store))
    try:
        df = store.query(con, args.query)
    except duckdb.Error as e:  # show DuckDB's message, not a trace
        print(f"error: {e}", file=sys.stderr)
        return 2
    print_frame(df, args.format)
    return 0


def cmd_models(args) -> int:
    from analytics import store
    con = store.connect(Path(args.store or settings().store))
    df = store.query(con, "SELECT model_id, task, cell, layers, hidden_size, vocab_size, corpus, "
                          "round(valid_perplexity, 1) AS valid_ppl, round(test_perplexity, 1) AS test_ppl, "
                          "round(valid_accuracy, 3) AS valid_acc, round(test_accuracy, 3) AS test_acc "
                          "FROM models ORDER BY model_id")
    print_frame(df, args.format)
    return 0


def cmd_demo(args) -> int:
    from analytics import store as st
    from models import demo_weights
    from models.checkpoint import CheckpointError, checkpoint_file, read_checkpoint
    store = Path(args.store or settings().store)
    t0 = time.perf_counter()
    built = []
    for model_id in DEMO_MODELS:
        done = False
        if not args.rebuild and model_id in st.list_partitions(store, "models"):
            try:
                done = read_checkpoint(checkpoint_file(store, model_id)).get("complete", False)
            except CheckpointError:
                done = False
        if done:
            print(f"{model_id}: already built (use --rebuild to train again)")
            continue
        if not args.rebuild and demo_weights.shipped(model_id):
            print(f"{model_id}: installing the shipped checkpoint (`rnnvis demo --rebuild` trains it from scratch)")
            demo_weights.install(store, model_id)
        else:
            print(f"{model_id}: training")
            _train(model_id, model_id, {}, store)
        print(f"{model_id}: analysing")
        _analyze(model_id, store, argparse.Namespace(states="all"))   # small models: gates too
        built.append(model_id)
    summary = st.query(st.connect(store),
                       "SELECT m.model_id, m.cell, m.layers || 'x' || m.hidden_size AS size, m.corpus, "
                       "coalesce('ppl ' || round(m.test_perplexity, 1), 'acc ' || round(m.test_accuracy, 3)) "
                       "AS test, (SELECT count(*) FROM word_responses r WHERE r.model_id = m.model_id) "
                       "AS response_rows FROM models m ORDER BY 1")
    print(f"\nstore {store.resolve()} ready in {time.perf_counter() - t0:.0f}s; "
          f"built: {', '.join(built) or 'nothing new'}")
    print_frame(summary, "table")
    print('\nquery it:  rnnvis sql "SELECT * FROM models"')
    if args.no_serve:
        return 0
    return cmd_serve(args)


def cmd_serve(args) -> int:
    try:
        from app.server import serve
    except ImportError:
        print("the dashboard is not part of this build yet", file=sys.stderr)
        return 2
    s = settings()
    return serve(store=Path(args.store or s.store), host=args.host or s.host, port=args.port or s.port)


def cmd_delete(args) -> int:
    from analytics import store
    from models.checkpoint import checkpoint_file
    root = Path(args.store or settings().store)
    ckpt = checkpoint_file(root, args.model_id)
    # A checkpoint without a published model (a failed or cancelled job's) is deleted too, not "unknown model".
    store.delete_partition(root, "models", args.model_id, missing_ok=ckpt.exists())
    ckpt.unlink(missing_ok=True)
    from workers.claims import release_model_id
    release_model_id(root, args.model_id)
    from analytics.metadb import audit, notes
    gone = notes.remove_model(root, args.model_id)   # its notes go with it
    audit.record(root, os.environ.get("RNNVIS_USER") or getpass.getuser(), "model deleted", args.model_id,
                 f"rnnvis delete; {gone} notes removed" if gone else "rnnvis delete")
    print(f"deleted {args.model_id}")
    return 0


def cmd_pack_demo_weights(args) -> int:
    from models import demo_weights
    for model_id in args.model_ids or DEMO_MODELS:
        p = demo_weights.pack_from_store(Path(args.store or settings().store), model_id)
        print(f"wrote {p} ({p.stat().st_size / 1e6:.2f} MB)")
    return 0


def cmd_prepare_demo_data(args) -> int:
    from models.demo_data.prepare import prepare
    for p in prepare(Path(args.shared)):
        print(f"wrote {p} ({p.stat().st_size / 1e6:.1f} MB)")
    return 0


# --------------------------------------------------------------------------- jobs and workers


# Registering `sql`'s sandbox flags and the `users` commands imports DuckDB, pandas, pyarrow and Flask
# (their defaults and choices live there): ~1 s.  So those two subcommands get their full parsers only
# when their name is on the command line; otherwise a stub with the same one-line help keeps
# `rnnvis --help` unchanged.
_HOSTED_HELP = {"sql": "run SQL on the store's views",
                "users": "manage the users of hosted mode (RNNVIS_AUTH=on)"}


#: The subcommands with analysis flags: AnalysisOptions lives with the pipeline, which imports torch, so the
#: flags are built only when one of these words is on the command line that main() parses (like the hosted
#: commands above); build_parser() without an argv builds them all.
_ANALYSIS_WORDS = frozenset({"train", "analyze", "submit", "import"})


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser; ``argv`` (default: sys.argv) only decides which subcommands are built in full."""
    words = set(sys.argv[1:] if argv is None else argv)
    with_analysis = argv is None or bool(words & _ANALYSIS_WORDS)
    ap = argparse.ArgumentParser(prog="rnnvis", description="Visual analytics of RNN hidden memories.")
    ap.add_argument("--store", help="store root (default $RNNVIS_STORE or var/store)")
    ap.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("presets", help="list training presets").set_defaults(fn=cmd_presets)

    def analysis_flags(p):
        if with_analysis:
            add_analysis_flags(p)

    _add_model_commands(sub, analysis_flags)
    _add_store_commands(sub, words)
    from app.cli.jobs import add_job_commands
    add_job_commands(sub, analysis_flags)
    if "users" in words:
        from app.cli.hosted import add_user_commands
        add_user_commands(sub)
    else:
        sub.add_parser("users", help=_HOSTED_HELP["users"])
    return ap


def _add_model_commands(sub, analysis_flags) -> None:
    """train and analyze."""
    p = sub.add_parser("train", help="train a model from a preset, with overrides")
    p.add_argument("--preset", required=True)
    p.add_argument("--model-id", help="id in the store (default: the preset name)")
    p.add_argument("--name", help="display name")
    p.add_argument("--corpus", help="brown, fine_foods, austen, or a path (PTB folder, text, CSV, Yelp JSON)")
    p.add_argument("--resume", action="store_true", help="continue from the model's checkpoint")
    p.add_argument("--analyze", action=argparse.BooleanOptionalAction, default=True,
                   help="analyse into the store after training (default on)")
    add_override_flags(p)
    analysis_flags(p)
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("analyze", help="trace a trained model and write its tables into the store")
    p.add_argument("model_id")
    analysis_flags(p)
    p.set_defaults(fn=cmd_analyze)


def _add_store_commands(sub, words: set[str]) -> None:
    """sql, models, demo, serve, delete and the maintainers' packing commands."""
    p = sub.add_parser("sql", help=_HOSTED_HELP["sql"])
    p.add_argument("query")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    if "sql" in words:
        from app.cli.hosted import add_sandbox_flags
        add_sandbox_flags(p)
    p.set_defaults(fn=cmd_sql)

    p = sub.add_parser("models", help="list analysed models")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.set_defaults(fn=cmd_models)

    for name, fn, hlp in (("demo", cmd_demo, "build the demo store and serve the dashboard"),
                          ("serve", cmd_serve, "serve the dashboard on an existing store")):
        p = sub.add_parser(name, help=hlp)
        p.add_argument("--host")
        p.add_argument("--port", type=int)
        if name == "demo":
            p.add_argument("--no-serve", action="store_true", help="stop once the store is built")
            p.add_argument("--rebuild", action="store_true",
                           help="train from scratch (instead of the shipped checkpoints) and analyse again")
        p.set_defaults(fn=fn)

    p = sub.add_parser("delete", help="delete a model's tables and checkpoint")
    p.add_argument("model_id")
    p.set_defaults(fn=cmd_delete)

    p = sub.add_parser("prepare-demo-data", help="pack the demo corpora from ../shared/data (maintainers)")
    p.add_argument("--shared", default="../shared/data")
    p.set_defaults(fn=cmd_prepare_demo_data)
    p = sub.add_parser("pack-demo-weights", help="ship a store's trained demo models in models/demo_data/weights "
                                                  "(maintainers)")
    p.add_argument("model_ids", nargs="*", help=f"default: {' '.join(DEMO_MODELS)}")
    p.set_defaults(fn=cmd_pack_demo_weights)


def _user_errors() -> tuple[type[BaseException], ...]:
    """The errors that are the user's to fix (a message, exit status 2), from the modules the command
    imported: a module never imported raised none of its errors, and importing it here would cost
    the quick commands their start-up time (models.checkpoint imports torch)."""
    found: list[type[BaseException]] = [ValueError, FileNotFoundError]
    for module, name in (("models.corpora", "CorpusError"), ("models.config", "ConfigError"),
                         ("models.checkpoint", "CheckpointError"), ("analytics.store.core", "StoreError")):
        if module in sys.modules:
            found.append(getattr(sys.modules[module], name))
    return tuple(found)


def main(argv: list[str] | None = None) -> int:
    # OpenMP threads that wait at a barrier sleep instead of spinning.  Read once, when torch loads
    # its OpenMP runtime (after this point: no command imports torch before it runs).  On a shared
    # machine a spinning thread holds a core that the thread it waits for needs: a 2x650 LSTM's
    # trace at 2 threads measured 30x slower than at one under load (11.9 s vs 0.4 s for 64 steps),
    # and 0.9 s with passive waiting.  A value the user set wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.fn(args)
    except _user_errors() as e:                      # evaluated only when an exception arrives here
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

