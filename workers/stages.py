"""The stages a worker runs: train, import (bring your own model), analyze and ablate, one Celery task each.

No Celery here: :mod:`workers.tasks` calls :func:`run_train_stage`,
:func:`run_import_stage` and :func:`run_analyze_stage` with a
:class:`~workers.tracker.StageContext`. Each claims the job, runs, records
what happened and hands the job to the next stage (a finished training is
analysed without anyone asking).
"""
from __future__ import annotations

import logging
import time
from typing import Any

from models.checkpoint import CheckpointError, checkpoint_file, read_checkpoint
from models.config import ModelConfig, TrainConfig
from workers.tracker import CANCELLED, DONE, StageContext, StageOutcome, claim, fail
from workers.uploads import resolve_corpus

log = logging.getLogger(__name__)

__all__ = ["TRAIN_SHARE", "IMPORT_SHARE", "run_train_stage", "run_import_stage", "run_analyze_stage",
           "run_ablate_stage"]

TRAIN_SHARE = 0.9        # part of a train job's progress bar that is training (the rest is analysis)
IMPORT_SHARE = 0.1


def run_train_stage(ctx: StageContext) -> StageOutcome:
    """Train the job's model (resuming from its last epoch checkpoint on a later attempt)."""
    from models.train import TrainingCancelled, train_model

    tracker, outcome = claim(ctx, "train")
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
    model_cfg, train_cfg = ModelConfig(**p["model"]), TrainConfig.from_dict(p["train"])
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
            fail(tracker, e, ctx)
        test = next((m for m in reversed(result.metrics) if m["split"] == "test"), {})
        tracker.update_detail(train_result={"epochs_run": result.epochs_run, "wall_s": round(result.wall_s, 2),
                                            "test_loss": test.get("loss"), "test_perplexity": test.get("perplexity"),
                                            "test_accuracy": test.get("accuracy")})
        return _hand_over_to_analysis(tracker, TRAIN_SHARE)


def _hand_over_to_analysis(tracker, share: float) -> StageOutcome:
    """After a train or import stage: cancelled if asked to stop, else queue the job's analysis."""
    if tracker.should_stop():
        tracker.finish("cancelled")
        return CANCELLED
    tracker.hand_over("analyze", share)
    return DONE


def run_import_stage(ctx: StageContext) -> StageOutcome:
    """Turn an uploaded model into an RNNVis checkpoint (evaluated on the job's corpus), in a child process
    under RNNVIS_IMPORT_MEMORY_MB of address space (:mod:`workers.import_child`)."""
    from workers.import_child import import_in_child, request_for
    from workers.settings import JobSettings

    tracker, outcome = claim(ctx, "import")
    if tracker is None:
        return outcome  # type: ignore[return-value]
    rec = tracker.rec
    tracker.begin("import", ctx.worker)
    js = JobSettings.from_env()
    with tracker:
        try:
            request = request_for(ctx.root, rec.params["import"]["upload_id"], rec.params["corpus"],
                                  model_id=rec.model_id, name=rec.params.get("name"), created_by=rec.submitted_by,
                                  max_params=js.max_model_params, memory_mb=js.import_memory_bytes >> 20)
            res = import_in_child(request, memory_bytes=js.import_memory_bytes, timeout_s=ctx.time_limit_s)
        except Exception as e:  # noqa: BLE001
            fail(tracker, e, ctx)
        known = tracker.rec.detail.get("warnings", [])
        tracker.update_detail(import_result=res["summary"],
                              warnings=known + [w for w in res["warnings"] if w not in known])
        return _hand_over_to_analysis(tracker, IMPORT_SHARE)


def _recorded_upload(root, model_id: str) -> dict[str, Any] | None:
    """The uploaded corpus a checkpoint records (``train_config.corpus`` = ``upload:<id>``) as a job's corpus
    choice; None for a built-in name (the pipeline loads it)."""
    ref = str(read_checkpoint(checkpoint_file(root, model_id)).get("train_config", {}).get("corpus") or "")
    return {"source": "upload", "upload_id": ref.split(":", 1)[1]} if ref.startswith("upload:") else None


def run_analyze_stage(ctx: StageContext) -> StageOutcome:
    """Analyse the job's model and publish its partition (atomically: all tables or none).

    The record goes to stage ``publish`` before the partition appears and to ``done`` after: readers
    may rely on that order (:mod:`workers.records`)."""
    from analytics.pipeline import AnalysisCancelled, AnalysisOptions, analyze_model

    tracker, outcome = claim(ctx, "analyze")
    if tracker is None:
        return outcome  # type: ignore[return-value]
    rec = tracker.rec
    base = {"train": TRAIN_SHARE, "import": IMPORT_SHARE}.get(rec.kind, 0.0)
    tracker.begin("analyze", ctx.worker)

    def on_progress(d: dict[str, Any]) -> None:
        latest = dict(tracker.rec.detail.get("latest") or {})
        latest.update(stage="analyze", analysis_stage=d.get("stage"), analysis_progress=d.get("progress"))
        tracker.progress(base + (1 - base) * float(d.get("progress") or 0.0), latest)
        # The pipeline reports "publish" just before its partition appears; the record says so first
        # (unless a cancel is pending: the pipeline stops right after this call and publishes nothing).
        if d.get("stage") == "publish" and not tracker.should_stop():
            tracker.publishing()

    with tracker:
        try:
            choice = rec.params.get("corpus") or _recorded_upload(ctx.root, rec.model_id)
            corpus = resolve_corpus(ctx.root, choice)[0] if choice else None
            opts = AnalysisOptions(**rec.params.get("analysis", {}))
            res = analyze_model(rec.model_id, ctx.root, opts, corpus=corpus, device=ctx.device or "cpu",
                                show_progress=False, on_progress=on_progress, should_stop=tracker.should_stop)
        except AnalysisCancelled:
            tracker.finish("cancelled")
            return CANCELLED
        except Exception as e:  # noqa: BLE001
            fail(tracker, e, ctx)
        tracker.finish("done", result={"tokens": res.tokens, "words": res.words, "states": len(res.states),
                                       "analysis_wall_s": round(res.wall_s, 2)})
    return DONE


def run_ablate_stage(ctx: StageContext) -> StageOutcome:
    """An on-demand ablation (:mod:`workers.ablate_planning`): run it on the stored model and add its rows to the
    model's ``ablations``, marked with who asked (all rows or none: :func:`analytics.ablation.add_requested`)."""
    from analytics.ablation import ablate_stored, add_requested, load_stored

    tracker, outcome = claim(ctx, "ablate")
    if tracker is None:
        return outcome  # type: ignore[return-value]
    rec = tracker.rec
    p = rec.params["ablate"]
    tracker.begin("ablate", ctx.worker)

    def on_progress(fraction: float) -> None:
        tracker.progress(0.05 + 0.9 * fraction, {"stage": "ablate", "units": len(p["units"])})
        if tracker.should_stop():
            raise AblationCancelled

    with tracker:
        try:
            tracker.progress(0.0, {"stage": "load"}, force=True)
            stored = load_stored(ctx.root, rec.model_id, device=str(ctx.device or "cpu"))
            rows = ablate_stored(rec.model_id, stored, p["layer"], p["state"], p["units"], k=p["k"],
                                 cluster=p["cluster"], modes=p["modes"], baseline_sets=p["baseline_sets"],
                                 seed=p["seed"], prefix=p["prefix"], requested_by=rec.submitted_by,
                                 on_progress=on_progress)
            if tracker.should_stop():
                raise AblationCancelled
            total = add_requested(ctx.root, rec.model_id, rows)
        except AblationCancelled:
            tracker.finish("cancelled")
            return CANCELLED
        except Exception as e:  # noqa: BLE001
            fail(tracker, e, ctx)
        tracker.finish("done", result={"rows": len(rows), "ablation_rows": total, "tokens": int(rows["n"].iloc[0])})
    return DONE


class AblationCancelled(Exception):
    """The ablation's cancel flag was seen: stop before anything is written."""
