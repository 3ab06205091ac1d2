"""Ablate a unit set of an analysed model from the command line (reads the store, writes nothing to it).

    python -m analytics.ablation --store var/store --model demo-lstm --layer 1 --state h --linked-to NOUN \\
        --prefix 20000 [--modes zero,mean] [--sets 20] [--seed 0] [--csv out.csv]

The set is a unit cluster (``--cluster C`` at ``--k``), the cluster linked to the word cluster with most words
of a POS tag (``--linked-to TAG``), or a list (``--units 3,17,42``).  Prints the rows of ``ablations``
(see docs/ablation.md), all targets or those of ``--show`` (e.g. ``pos``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")      # waiting OpenMP threads sleep (see models/runtime.py)
import torch  # noqa: E402

from models.checkpoint import CheckpointError  # noqa: E402
from models.runtime import torch_threads  # noqa: E402

from .precompute import DEFAULT_K, unit_clusters, word_clusters  # noqa: E402
from .run import BASELINE_SETS, MAX_SETS, LMText, Tested, ablate  # noqa: E402
from .stored import linked_unit_cluster, load_stored  # noqa: E402


def _units(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(u) for u in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--units must be comma-separated unit indices, got {text!r}") from None


def _bounded(lo: int, hi: int):
    def parse(text: str) -> int:
        v = int(text)
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"must be {lo} .. {hi}, got {v}")
        return v
    return parse


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m analytics.ablation", description=__doc__.split("\n")[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--corpus", default=None, help="corpus name or path (default: the model's own)")
    ap.add_argument("--layer", type=_bounded(-1, 63), default=-1, help="-1 = the last layer")
    ap.add_argument("--state", choices=("h", "c"), default="h")
    ap.add_argument("--k", type=_bounded(2, 50), default=DEFAULT_K)
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--cluster", type=_bounded(0, 49))
    which.add_argument("--linked-to", metavar="TAG")
    which.add_argument("--units", type=_units)
    ap.add_argument("--modes", default="zero,mean")
    ap.add_argument("--sets", type=_bounded(2, MAX_SETS), default=BASELINE_SETS)
    ap.add_argument("--seed", type=_bounded(0, 2**31 - 1), default=0)
    ap.add_argument("--prefix", type=_bounded(0, 10**9), default=0, help="tokens measured (0 = the whole split)")
    ap.add_argument("--threads", type=_bounded(1, 256), default=2)
    ap.add_argument("--show", choices=("all", "pos", "word_cluster", "label"), default=None)
    ap.add_argument("--csv", default=None, help="also write every row to this CSV file")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = _args(argv)
    t0 = time.perf_counter()
    try:
        loaded = load_stored(a.store, a.model, corpus=a.corpus)
        layer = a.layer if a.layer >= 0 else loaded.model.cfg.layers - 1
        tested, note = _tested(a, loaded, layer)
        data = loaded.data
        if isinstance(data, LMText):
            data = LMText(data.stream, data.tags, word_clusters(loaded.coclusters, layer, a.state, a.k))
        print(note, file=sys.stderr)
        with torch_threads(loaded.model.cfg.hidden_size, a.threads):
            rows = ablate(a.model, loaded.model, data, layer, a.state, [tested], modes=a.modes.split(","),
                          baseline_sets=a.sets, seed=a.seed, prefix=a.prefix)
    except (ValueError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{len(rows)} rows in {time.perf_counter() - t0:.1f} s ({torch.get_num_threads()} threads)", file=sys.stderr)
    if a.csv:
        rows.to_csv(a.csv, index=False)
    shown = rows if a.show is None else rows[rows["target_kind"] == a.show]
    cols = ["mode", "target_kind", "target", "measure", "n", "tokens", "base_mean", "delta_mean", "baseline_mean",
            "baseline_std", "z", "p"]
    print(shown[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return 0


def _tested(a: argparse.Namespace, loaded, layer: int) -> tuple[Tested, str]:
    if a.units is not None:
        return Tested(a.units), f"{len(a.units)} hand-picked units of layer {layer} {a.state}"
    if a.linked_to is not None:
        link = linked_unit_cluster(a.store, a.model, layer, a.state, a.k, a.linked_to, loaded.tags)
        return Tested(link.units, a.k, link.unit_cluster), (
            f"word cluster {link.word_cluster} has the most {a.linked_to} words ({link.tag_words}); its strongest "
            f"link is unit cluster {link.unit_cluster} (edge {link.edge:+.4g}, {len(link.units)} units)")
    found = unit_clusters(loaded.coclusters, layer, a.state, a.k)
    if a.cluster not in found:
        raise ValueError(f"layer {layer} {a.state} at k = {a.k} has unit clusters {sorted(found)}: pick one of them")
    return Tested(found[a.cluster], a.k, a.cluster), f"unit cluster {a.cluster} ({len(found[a.cluster])} units)"


if __name__ == "__main__":
    sys.exit(main())
