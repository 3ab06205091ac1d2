"""The precomputed 2-D maps: shapes, determinism under the seed, and their rows in the store's views."""
import json

import numpy as np
import pytest

from analytics import store
from analytics.projections import METHODS, PERPLEXITY, project, projection_frame


def _planted(seed: int = 0, words: int = 60, units: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Responses with two planted word groups: the first half drives units 0..5 up, the second units 6..11."""
    rng = np.random.default_rng(seed)
    mean = rng.normal(0, 0.05, (words, units))
    mean[: words // 2, : units // 2] += 1.0
    mean[words // 2:, units // 2:] += 1.0
    return mean.astype(np.float32), np.arange(100, 100 + words)


def test_shapes_items_and_parameters():
    mean, ids = _planted()
    df = projection_frame(mean, ids, seed=3)
    assert list(df.columns) == ["axis", "method", "item", "x", "y", "seed", "params"]
    sizes = df.groupby(["axis", "method"]).size().to_dict()
    assert sizes == {("unit", "pca"): 12, ("unit", "tsne"): 12, ("word", "pca"): 60, ("word", "tsne"): 60}
    words = df[(df["axis"] == "word") & (df["method"] == "tsne")]
    assert words["item"].tolist() == ids.tolist()
    assert df[df["axis"] == "unit"]["item"].unique().tolist() == list(range(12))
    assert (df["seed"] == 3).all() and np.isfinite(df[["x", "y"]].to_numpy()).all()
    p = json.loads(words["params"].iloc[0])
    assert p["perplexity"] == pytest.approx(min(PERPLEXITY, 59 / 3))        # below the 60 points' (n − 1) / 3
    assert p["init"] == "pca" and p["points"] == 60 and p["features"] == 12
    assert p["pca_dims"] is None                                       # 12 features: t-SNE on the responses
    units = json.loads(df[(df["axis"] == "unit") & (df["method"] == "tsne")]["params"].iloc[0])
    assert units["perplexity"] == pytest.approx(11 / 3)           # lowered below the 12 points
    assert units["pca_dims"] == 12                                 # 60 features reduced to (at most) the points
    pca = json.loads(df[(df["axis"] == "word") & (df["method"] == "pca")]["params"].iloc[0])
    assert len(pca["explained_variance_ratio"]) == 2 and pca["explained_variance_ratio"][0] > 0.5


def test_the_seed_fixes_the_map():
    mean, ids = _planted()
    a = projection_frame(mean, ids, seed=0)
    b = projection_frame(mean, ids, seed=0)
    assert a.equals(b)
    c = projection_frame(mean[::-1].copy(), ids[::-1].copy(), seed=1)   # other order, other seed: the map holds
    assert (c["seed"] == 1).all()
    for (axis, method), g in a.groupby(["axis", "method"]):
        h = c[(c["axis"] == axis) & (c["method"] == method)].set_index("item").loc[g["item"]]
        da = np.linalg.norm(g[["x", "y"]].to_numpy()[:, None] - g[["x", "y"]].to_numpy()[None], axis=-1)
        dc = np.linalg.norm(h[["x", "y"]].to_numpy()[:, None] - h[["x", "y"]].to_numpy()[None], axis=-1)
        assert np.corrcoef(da.ravel(), dc.ravel())[0, 1] > 0.8, (axis, method)   # the same layout, up to a turn


@pytest.mark.parametrize("method", METHODS)
def test_planted_groups_fall_apart_on_the_map(method):
    mean, _ = _planted()
    xy, _ = project(mean, method, seed=0)
    a, b = xy[:30], xy[30:]
    gap = np.linalg.norm(a.mean(0) - b.mean(0))
    spread = max(np.linalg.norm(a - a.mean(0), axis=1).mean(), np.linalg.norm(b - b.mean(0), axis=1).mean())
    assert gap > 2 * spread


def test_small_sets_get_pca_only_and_bad_input_is_refused():
    mean = np.ones((5, 3), np.float32)
    mean[:, 1] = np.arange(5)
    df = projection_frame(mean, np.arange(5))
    assert set(map(tuple, df[["axis", "method"]].drop_duplicates().to_numpy())) == {
        ("word", "pca"), ("word", "tsne"), ("unit", "pca")}          # 3 units: too few for t-SNE
    with pytest.raises(ValueError, match="at least 4"):
        project(np.zeros((3, 2)), "tsne")
    with pytest.raises(ValueError, match="method"):
        project(np.zeros((5, 2)), "umap")
    with pytest.raises(ValueError, match="one row per word"):
        projection_frame(np.zeros((5, 2)), np.arange(4))


def test_the_analysis_writes_a_map_of_every_cocluster_view(tiny_store):
    con = store.connect(tiny_store)
    proj = store.query(con, "SELECT * FROM projections ORDER BY model_id, layer, state, axis, method, item")
    cl = store.query(con, "SELECT model_id, layer, state, axis, item FROM coclusters "
                          "WHERE k = 2 ORDER BY model_id, layer, state, axis, item")
    assert list(proj.columns)[:8] == ["model_id", "layer", "state", "axis", "method", "item", "x", "y"]
    assert set(proj["state"]) == {"h", "c"} and set(proj["method"]) == {"pca", "tsne"}
    for key, g in cl.groupby(["model_id", "layer", "state", "axis"]):
        for method in METHODS:
            p = proj[(proj[["model_id", "layer", "state", "axis"]] == list(key)).all(axis=1)
                     & (proj["method"] == method)]
            assert p["item"].tolist() == g["item"].tolist(), (key, method)
    words = store.query(con, "SELECT p.x, p.y, v.word, v.pos FROM projections p JOIN vocab v "
                             "ON v.model_id = p.model_id AND v.word_id = p.item "
                             "WHERE p.model_id = 'tiny-lstm' AND p.axis = 'word' AND p.method = 'tsne'")
    assert len(words) > 0 and words["word"].notna().all()


def test_rnnvis_sql_reaches_the_projections(capsys, tiny_store):
    from app.cli import main

    code = main(["--store", str(tiny_store), "sql", "SELECT axis, method, count(*) AS n FROM projections "
                 "WHERE model_id = 'tiny-lstm' GROUP BY ALL ORDER BY ALL", "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and [(r["axis"], r["method"]) for r in out] == [
        ("unit", "pca"), ("unit", "tsne"), ("word", "pca"), ("word", "tsne")]
    assert {r["n"] for r in out if r["axis"] == "unit"} == {8 * 2 * 2}      # 8 units × 2 layers × h, c
