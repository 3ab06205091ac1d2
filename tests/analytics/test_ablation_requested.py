"""On-demand ablation rows added to a model's partition: all of them or none, never over someone else's write."""
from __future__ import annotations

import pandas as pd
import pytest

from analytics import ablation, store
from tests.analytics.store_frames import models_df


def _rows(who: str | None, units: str = "1,2", delta: float = 0.5) -> pd.DataFrame:
    row = dict(model_id="m", layer=0, state="h", k=3, cluster=None, units=units, mode="zero", target_kind="all",
               target="all", n=100, delta_mean=delta, baseline_mean=0.1, baseline_std=0.2, z=2.0, p=0.05,
               measure="loss", tokens=99, base_mean=4.0, baseline_sets=20, seed=0, requested_by=who)
    return pd.DataFrame([row])[ablation.ABLATION_COLUMNS].astype({"k": "Int32", "cluster": "Int32",
                                                                  "requested_by": "object"})


def _ablations(root) -> pd.DataFrame:
    with store.connect(root) as con:
        return store.query(con, "SELECT coalesce(requested_by, '(analysis)') AS who, units, delta_mean FROM ablations "
                                "ORDER BY requested_by NULLS FIRST, units")


def test_a_write_based_on_a_replaced_version_writes_nothing(tmp_path):
    with store.write_partition(tmp_path, "models", "m") as w:
        w.write("models", models_df("m", name="first"))
    first = store.partition_version(tmp_path, "models", "m")
    with store.write_partition(tmp_path, "models", "m") as w:          # e.g. a re-analysis, meanwhile
        w.write("models", models_df("m", name="second"))
    second = store.partition_version(tmp_path, "models", "m")
    with pytest.raises(store.StoreError, match="was replaced while it was being updated"), \
            store.write_partition(tmp_path, "models", "m", replaces=first) as w:
        w.keep("models")
        w.write("ablations", _rows("ann"))
    assert store.partition_version(tmp_path, "models", "m") == second
    assert store.table_file(tmp_path, "models", "m", "ablations") is None
    assert not list((tmp_path / ".staging").glob("*.tmp"))                # the staged copy is gone too


def test_requested_rows_join_the_analysis_rows_and_replace_only_the_same_request(tmp_path):
    with store.write_partition(tmp_path, "models", "m") as w:
        w.write("models", models_df("m"))
        w.write("ablations", _rows(None, delta=0.9))
    assert ablation.add_requested(tmp_path, "m", _rows("ann", delta=0.5)) == 2
    assert ablation.add_requested(tmp_path, "m", _rows("ann", delta=0.6)) == 2           # asked again: replaced
    assert ablation.add_requested(tmp_path, "m", _rows("ann", units="3", delta=0.7)) == 3
    assert ablation.add_requested(tmp_path, "m", _rows("bob", delta=0.8)) == 4
    got = _ablations(tmp_path)
    assert got.values.tolist() == [["(analysis)", "1,2", 0.9], ["ann", "1,2", 0.6], ["ann", "3", 0.7],
                                   ["bob", "1,2", 0.8]]
    with pytest.raises(ValueError, match="requested_by"):
        ablation.add_requested(tmp_path, "m", _rows(None))
    with pytest.raises(store.UnknownModelError):
        ablation.add_requested(tmp_path, "other", _rows("ann"))
