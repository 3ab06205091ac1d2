"""Per-cluster POS make-up and purity against shuffled tags (analytics.purity.cluster_purity)."""
from __future__ import annotations

import numpy as np
import pytest

from analytics.purity import cluster_purity, pos_purity


def test_pure_clusters_are_far_above_their_chance_level():
    tags = np.array(["NOUN"] * 30 + ["VERB"] * 20 + ["ADJ"] * 10, dtype=object)
    clusters = np.array([0] * 30 + [1] * 20 + [2] * 10)
    df = cluster_purity(clusters, tags, shuffles=100, seed=0)
    assert list(df["cluster"]) == [0, 1, 2]
    assert list(df["majority"]) == ["NOUN", "VERB", "ADJ"] and (df["purity"] == 1.0).all()
    assert list(df["words"]) == [30, 20, 10]
    assert df.loc[0, "makeup"] == {"NOUN": 30}
    assert (df["shuffled"] < 0.8).all() and (df["shuffled_std"] > 0).all()
    # the smallest cluster is the purest by chance
    assert df.loc[2, "shuffled"] > df.loc[0, "shuffled"]
    assert pos_purity(clusters, tags).purity == 1.0


def test_mixed_cluster_makeup_skips_untagged_words_and_keeps_labels():
    tags = np.array(["NOUN", "NOUN", "VERB", None, "", "ADJ", "ADJ"], dtype=object)
    clusters = np.array([7, 7, 7, 7, 3, 3, 3])
    df = cluster_purity(clusters, tags, shuffles=20).set_index("cluster")
    assert df.loc[7, "makeup"] == {"NOUN": 2, "VERB": 1} and df.loc[7, "words"] == 3
    assert df.loc[7, "purity"] == pytest.approx(2 / 3)
    assert df.loc[3, "majority"] == "ADJ" and df.loc[3, "purity"] == 1.0
    with pytest.raises(ValueError, match="no clustered word has a POS tag"):
        cluster_purity(np.array([0, 1]), np.array([None, ""], dtype=object))
