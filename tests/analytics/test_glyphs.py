import numpy as np

from analytics.glyphs import class_contributions, glyph_measures


def test_glyph_measures_by_hand():
    states = np.array([[0.5, -0.2, 0.1],
                       [0.25, -0.4, -0.1]])
    labels = np.array([0, 0, 1])
    df = glyph_measures(states, labels).set_index(["position", "cluster"])
    # step 0, cluster 0: α+ = 0.5, α− = −0.2 over 2 units; previous state is zero
    assert np.isclose(df.loc[(0, 0), "alpha_pos"], 0.25) and np.isclose(df.loc[(0, 0), "alpha_neg"], -0.1)
    assert np.isnan(df.loc[(0, 0), "preserved"])
    # step 1, cluster 0: kept = |0.5|·min(1, 0.5) + |−0.2|·min(1, 2) = 0.25 + 0.2; α+(0) − α−(0) = 0.7
    assert np.isclose(df.loc[(1, 0), "preserved"], 0.45 / 0.7)
    assert np.isclose(df.loc[(1, 0), "d_alpha_pos"], (0.25 - 0.5) / 2)
    assert np.isclose(df.loc[(1, 0), "d_alpha_neg"], (-0.4 + 0.2) / 2)
    # cluster 1 flipped sign: nothing preserved
    assert np.isclose(df.loc[(1, 1), "preserved"], 0.0)
    assert set(df["size"]) == {2, 1}


def test_contributions_telescope_to_the_logit():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(7, 5))
    w = rng.normal(size=(2, 5))
    contrib = class_contributions(h, w)
    assert contrib.shape == (7, 2)
    assert np.allclose(contrib.sum(0), w @ h[-1])
