"""The views about what a model predicts: losses by word and token, class outcomes, ablations."""
from __future__ import annotations

from .base import MODEL_ID, View, cols

__all__ = ["OUTCOME_VIEWS"]

OUTCOME_VIEWS: tuple[View, ...] = (
    View(
        name="word_loss",
        kind="models",
        grain="language model × predicted word",
        description=(
            "Loss per word on the analysed split read as one stream (as `word_responses`): token t's loss is "
            "-log p(x_t | x_<t) in nats, predicted after reading x_(t-1); a row is keyed on the predicted word x_t."
        ),
        columns=cols(
            MODEL_ID,
            ("word_id", "INTEGER", "The predicted word's index in the model's vocabulary."),
            ("word", "VARCHAR", "The predicted word."),
            ("n", "BIGINT", "Times the word was predicted (its occurrences after the first token)."),
            ("nll_mean", "DOUBLE", "Mean loss of those predictions, nats."),
            ("nll_std", "DOUBLE", "Sample standard deviation of the loss (0 when n = 1)."),
        ),
        sort_by=("word_id",),
    ),
    View(
        name="token_loss",
        kind="models",
        grain="language model × position of the analysed split",
        description="Every token's loss (what `word_loss` sums), by position in the split read as one stream.",
        columns=cols(
            MODEL_ID,
            ("position", "INTEGER", "Position t of the predicted token, 1-based (token 0 has no prediction)."),
            ("word_id", "INTEGER", "The word at t in the model's vocabulary."),
            ("nll", "FLOAT", "-log p(x_t | x_<t), nats."),
        ),
        sort_by=("position",),
        delta=("position",),
    ),
    View(
        name="class_metrics",
        kind="models",
        grain="classifier × true label",
        description="How a classifier does on each class of the analysed split (documents as in training).",
        columns=cols(
            MODEL_ID,
            ("label", "VARCHAR", "The true label."),
            ("n", "BIGINT", "Documents with that label."),
            ("accuracy", "DOUBLE", "Share of them classified correctly."),
            ("mean_p_true", "DOUBLE", "Mean probability the model gives their true label."),
        ),
    ),
    View(
        name="class_confusion",
        kind="models",
        grain="classifier × true label × predicted label",
        description="The confusion matrix of a classifier on the analysed split.",
        columns=cols(
            MODEL_ID,
            ("label", "VARCHAR", "The true label."),
            ("predicted", "VARCHAR", "The predicted label."),
            ("n", "BIGINT", "Documents with that pair."),
        ),
    ),
    View(
        name="ablations",
        kind="models",
        grain="model × layer × state × unit set × mode × target × measure",
        description=(
            "What replacing a set of units at every step does (ablation), against R random sets of the same size "
            "from the same layer and state; see docs/ablation.md. Effects are ablated minus unablated, on the "
            "same tokens (language models: the first `n` tokens of the split read as one stream from zero state; "
            "classifiers: each document from zero state)."
        ),
        columns=cols(
            MODEL_ID,
            ("layer", "INTEGER", "Recurrent layer of the ablated units, 0 = closest to the input."),
            ("state", "VARCHAR", "The replaced state: 'h' or 'c' (LSTM cell)."),
            ("k", "INTEGER", "k of the co-clustering whose word clusters are targets (and whose unit cluster the "
                             "set is, if `cluster` is set); NULL when none was given."),
            ("cluster", "INTEGER", "Unit cluster (0..k-1) of that co-clustering; NULL for a hand-picked set."),
            ("units", "VARCHAR", "The ablated units, ascending, comma-separated (e.g. '3,17,42'); as a list: "
                                 "string_split(units, ',')::INTEGER[]."),
            ("mode", "VARCHAR", "'zero' (replaced by 0) or 'mean' (by the unit's mean over the measured tokens)."),
            ("target_kind", "VARCHAR", "'all', 'pos' (POS tag of the predicted word), 'word_cluster' (its word "
                                       "cluster at k) or 'label' (a classifier's true class)."),
            ("target", "VARCHAR", "The tag, word cluster index or label; 'all' for target_kind 'all'."),
            ("n", "BIGINT", "Tokens measured (a language model's prefix of the split) or documents (classifier)."),
            ("delta_mean", "DOUBLE", "Effect, ablated minus unablated, on the target's mean `measure` (loss in "
                                     "nats; accuracy, p(true class) or share of flipped predictions)."),
            ("baseline_mean", "DOUBLE", "Mean of the same effect over the random sets."),
            ("baseline_std", "DOUBLE", "Sample standard deviation (ddof 1) of the random sets' effects."),
            ("z", "DOUBLE", "(delta_mean − baseline_mean) / baseline_std; NULL when the random effects are equal."),
            ("p", "DOUBLE", "Two-sided empirical p: (1 + random sets at least as far from baseline_mean) / "
                            "(baseline_sets + 1)."),
            ("measure", "VARCHAR", "'loss' (language models), 'accuracy', 'p_true' or 'flips' (classifiers)."),
            ("tokens", "BIGINT", "Tokens (documents for classifiers) of the target among the measured ones."),
            ("base_mean", "DOUBLE", "The unablated mean `measure` over the target."),
            ("baseline_sets", "INTEGER", "R, the number of random sets."),
            ("seed", "INTEGER", "Seed of the random sets (the same seed and set size give the same sets)."),
            ("requested_by", "VARCHAR", "Who asked for it (an on-demand ablation job's submitter: Explore's "
                                        "\"Test these units\", `rnnvis jobs ablate`); NULL for the analysis's "
                                        "precomputed set."),
        ),
        sort_by=("layer", "state", "k", "cluster", "mode", "target_kind", "target"),
    ),
)
