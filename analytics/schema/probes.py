"""The views of the POS probes (analytics/probes; docs/probes.md): per (layer, state) and per unit."""
from __future__ import annotations

from .base import LAYER, MODEL_ID, STATE, View, cols

__all__ = ["PROBE_VIEWS"]

PROBE_VIEWS: tuple[View, ...] = (
    View(
        name="probes",
        kind="models",
        grain="language model × layer × state (h, c) × task",
        description=(
            "A linear probe (multinomial logistic regression, scikit-learn) predicting each token's gold "
            "universal POS tag from the state after reading it, on the analysed split read as one stream; "
            "trained and tested on a seeded sample of whole sentences split by sentence. Only for a corpus with "
            "gold tags (Brown). Selectivity = `accuracy` - `control_accuracy`. See docs/probes.md."
        ),
        columns=cols(
            MODEL_ID, LAYER, STATE,
            ("task", "VARCHAR", "What is predicted: 'upos' (the 12 universal POS tags of Petrov et al. 2012)."),
            ("n_train", "INTEGER", "Tokens the probe was trained on (training sentences)."),
            ("n_test", "INTEGER", "Tokens it was tested on (the other sentences)."),
            ("accuracy", "DOUBLE", "Share of test tokens whose tag the probe predicts."),
            ("majority", "DOUBLE", "Test accuracy of always answering the training set's most frequent tag."),
            ("control_accuracy", "DOUBLE", "Test accuracy of the same probe on the control task (Hewitt & Liang "
             "2019): each word type gets one fixed random tag drawn from the tag distribution."),
            ("untrained_accuracy", "DOUBLE", "Test accuracy of the same probe on the states of the same "
             "architecture with its initial (untrained, seeded) weights."),
            ("seed", "INTEGER", "Seed of the sample, the train/test split and the control tags."),
            ("params", "VARCHAR", "The probe's settings and sample as JSON text (regularisation, iterations, "
             "tokens sampled out of those tagged, whether subsampled, the tags)."),
        ),
        sort_by=("layer", "state"),
    ),
    View(
        name="probe_units",
        kind="models",
        grain="language model × layer × state × unit × rank",
        description=(
            "The tags a unit's probe weight favours most: for each unit, the tags of `probes` whose weight on it "
            "(on standardised units) is highest, rank 1 first."
        ),
        columns=cols(
            MODEL_ID, LAYER, STATE,
            ("unit", "INTEGER", "Unit index within the layer."),
            ("tag", "VARCHAR", "Universal POS tag."),
            ("weight", "FLOAT", "The probe's weight of this tag on the unit (standardised unit)."),
            ("rank", "INTEGER", "1 = the tag with the highest weight on this unit."),
        ),
        sort_by=("layer", "state", "unit", "rank"),
    ),
)
