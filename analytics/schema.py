"""The public schema of the store, as data.

Every view that :func:`analytics.store.connect` creates is described here:
its name, what one row is, which partition kind holds its files, and its
columns as ``(name, DuckDB type, description)``. The names, order and types
are a contract (users write SQL against them; the SQL console shows them);
new columns may only be appended at the end of a view.

This module imports nothing heavy, so the app can render the schema without
loading pyarrow or DuckDB.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "Column",
    "View",
    "Kind",
    "VIEWS",
    "KINDS",
    "view",
    "kind_of",
    "as_markdown",
]


@dataclass(frozen=True)
class Column:
    """One column of a view: its name, DuckDB type and a one-line description."""

    name: str
    type: str
    description: str


@dataclass(frozen=True)
class View:
    """One public view.

    ``kind`` is the partition kind whose directories hold the view's Parquet
    files (``models``, ``sentences`` or ``jobs``); ``sort_by`` is the order
    rows are written in (it makes files smaller and filters faster).
    """

    name: str
    kind: str
    grain: str  # "one row per ..."
    description: str
    columns: tuple[Column, ...]
    sort_by: tuple[str, ...] = ()
    # Parquet storage hints (the SQL types above stay the contract): FLOAT columns stored as float16
    # (DuckDB reads them back as FLOAT), integer columns delta-encoded, and rows per row group (0 = the writer's).
    half: tuple[str, ...] = ()
    delta: tuple[str, ...] = ()
    row_group_rows: int = 0

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def types(self) -> dict[str, str]:
        return {c.name: c.type for c in self.columns}


@dataclass(frozen=True)
class Kind:
    """A partition kind: ``<root>/<name>/<key>=<id>/<view>.parquet``.

    ``key`` is the id column every view of the kind carries (the partition's
    id); ``primary`` is the view every partition must contain.
    """

    name: str
    key: str
    primary: str
    views: tuple[str, ...] = field(default=())


def _cols(*specs: tuple[str, str, str]) -> tuple[Column, ...]:
    return tuple(Column(*s) for s in specs)


_MODEL_ID = ("model_id", "VARCHAR", "Model id (also the name of its store partition).")
_LAYER = ("layer", "INTEGER", "Recurrent layer, 0 = closest to the input.")
_STATE = ("state", "VARCHAR", "State kind: 'h', 'c' (LSTM cell) or a gate name (e.g. 'i', 'f', 'o', 'z', 'r').")

_VIEW_LIST: tuple[View, ...] = (
    View(
        name="models",
        kind="models",
        grain="model",
        description="Trained models: architecture, training setup and final scores.",
        columns=_cols(
            _MODEL_ID,
            ("name", "VARCHAR", "Human-readable model name."),
            ("task", "VARCHAR", "'lm' (language model) or 'sentiment' (classifier)."),
            ("cell", "VARCHAR", "'rnn', 'gru' or 'lstm'."),
            ("layers", "INTEGER", "Number of recurrent layers."),
            ("hidden_size", "INTEGER", "Units per layer."),
            ("embed_size", "INTEGER", "Word embedding size."),
            ("vocab_size", "INTEGER", "Vocabulary size, special tokens included."),
            ("corpus", "VARCHAR", "Corpus the model was trained on."),
            ("params", "VARCHAR", "Full training configuration as JSON text."),
            ("created_at", "TIMESTAMP", "When the model was created (UTC)."),
            ("created_by", "VARCHAR", "User who created the model."),
            ("valid_loss", "DOUBLE", "Final validation loss (nats per token / per document)."),
            ("valid_perplexity", "DOUBLE", "Final validation perplexity (language models)."),
            ("valid_accuracy", "DOUBLE", "Final validation accuracy (classifiers)."),
            ("test_loss", "DOUBLE", "Test loss."),
            ("test_perplexity", "DOUBLE", "Test perplexity (language models)."),
            ("test_accuracy", "DOUBLE", "Test accuracy (classifiers)."),
            ("analyzed_tokens", "BIGINT", "Tokens traced to compute the word responses."),
            ("analysis_split", "VARCHAR", "Corpus split traced for the word responses."),
            ("states", "VARCHAR", "Comma-separated list of the analysed states (e.g. 'h,c')."),
        ),
    ),
    View(
        name="training_metrics",
        kind="models",
        grain="model × epoch × split",
        description="Learning curves: loss, perplexity and accuracy per epoch and split.",
        columns=_cols(
            _MODEL_ID,
            ("epoch", "INTEGER", "Epoch, 1-based."),
            ("split", "VARCHAR", "'train', 'valid' or 'test'."),
            ("loss", "DOUBLE", "Mean loss over the split."),
            ("perplexity", "DOUBLE", "exp(loss) for language models, else NULL."),
            ("accuracy", "DOUBLE", "Accuracy for classifiers, else NULL."),
            ("tokens_per_s", "DOUBLE", "Throughput during the epoch."),
            ("wall_s", "DOUBLE", "Wall-clock seconds of the epoch on this split."),
        ),
        sort_by=("epoch", "split"),
    ),
    View(
        name="vocab",
        kind="models",
        grain="model × word",
        description="A model's vocabulary with corpus frequency and part of speech.",
        columns=_cols(
            _MODEL_ID,
            ("word_id", "INTEGER", "Index of the word in the model's vocabulary."),
            ("word", "VARCHAR", "The word."),
            ("freq", "BIGINT", "Occurrences in the training split."),
            ("pos", "VARCHAR", "Most frequent universal POS tag, or NULL if unknown."),
        ),
        sort_by=("word_id",),
    ),
    View(
        name="word_responses",
        kind="models",
        grain="model × layer × state × word × unit",
        description=(
            "Expected response of each unit to each word: statistics of the update "
            "Δh_t = h_t − h_{t−1} over every occurrence of the word."
        ),
        columns=_cols(
            _MODEL_ID,
            _LAYER,
            _STATE,
            ("word_id", "INTEGER", "Word index in the model's vocabulary."),
            ("word", "VARCHAR", "The word."),
            ("unit", "INTEGER", "Unit index within the layer."),
            ("n", "INTEGER", "Occurrences of the word in the traced split."),
            ("mean", "FLOAT", "Mean update (the expected response s(w)_u)."),
            ("std", "FLOAT", "Standard deviation of the update."),
            ("q10", "FLOAT", "10th percentile of the update."),
            ("q25", "FLOAT", "25th percentile of the update."),
            ("q50", "FLOAT", "Median update."),
            ("q75", "FLOAT", "75th percentile of the update."),
            ("q90", "FLOAT", "90th percentile of the update."),
        ),
        sort_by=("layer", "state", "word_id", "unit"),
    ),
    View(
        name="coclusters",
        kind="models",
        grain="model × layer × state × k × item",
        description="Spectral co-clustering of the words × units response matrix, for each k.",
        columns=_cols(
            _MODEL_ID,
            _LAYER,
            _STATE,
            ("k", "INTEGER", "Number of clusters on each axis."),
            ("axis", "VARCHAR", "'word' or 'unit'."),
            ("item", "INTEGER", "word_id (axis 'word') or unit (axis 'unit')."),
            ("cluster", "INTEGER", "Cluster index, 0..k-1."),
        ),
        sort_by=("layer", "state", "k", "axis", "item"),
    ),
    View(
        name="projections",
        kind="models",
        grain="model × layer × state × axis × method × item",
        description=(
            "2-D maps of the co-clustered words (by their responses s(w) over the units) and of the units (by "
            "their profiles over those words), by PCA and t-SNE (scikit-learn, fixed seed), for h and c."
        ),
        columns=_cols(
            _MODEL_ID,
            _LAYER,
            _STATE,
            ("axis", "VARCHAR", "'word' or 'unit'."),
            ("method", "VARCHAR", "'pca' or 'tsne'."),
            ("item", "INTEGER", "word_id (axis 'word') or unit (axis 'unit')."),
            ("x", "FLOAT", "First map coordinate."),
            ("y", "FLOAT", "Second map coordinate."),
            ("seed", "INTEGER", "Random seed of the fit."),
            ("params", "VARCHAR", "The fit's parameters as JSON text (perplexity, init, PCA dims, points, ...)."),
        ),
        sort_by=("layer", "state", "axis", "method", "item"),
    ),
    View(
        name="gradient_flow",
        kind="models",
        grain="model × layer × distance",
        description="Norm of ∂h_t/∂h_{t−k} averaged over positions (vanishing gradients).",
        columns=_cols(
            _MODEL_ID,
            _LAYER,
            ("distance", "INTEGER", "k, the number of steps back."),
            ("grad_norm", "DOUBLE", "Mean gradient norm over positions."),
            ("grad_norm_std", "DOUBLE", "Standard deviation of the gradient norm."),
        ),
        sort_by=("layer", "distance"),
    ),
    View(
        name="sentences",
        kind="sentences",
        grain="evaluated sentence",
        description="Sentences run through a model on request, with the model's prediction.",
        columns=_cols(
            ("sentence_id", "VARCHAR", "Sentence id (also the name of its store partition)."),
            _MODEL_ID,
            ("text", "VARCHAR", "The sentence as entered."),
            ("created_at", "TIMESTAMP", "When it was evaluated (UTC)."),
            ("created_by", "VARCHAR", "User who entered it."),
            ("prediction", "VARCHAR", "Predicted class (classifiers) or next word (language models)."),
            ("probability", "DOUBLE", "Probability of the prediction."),
        ),
    ),
    View(
        name="sentence_states",
        kind="sentences",
        grain="evaluated sentence × step × layer × state × unit",
        description="Hidden states of every unit at every step of an evaluated sentence.",
        columns=_cols(
            ("sentence_id", "VARCHAR", "Sentence id."),
            _MODEL_ID,
            ("position", "INTEGER", "Step, 0-based."),
            ("token", "VARCHAR", "Token read at this step."),
            _LAYER,
            _STATE,
            ("unit", "INTEGER", "Unit index within the layer."),
            ("value", "FLOAT", "State value after reading the token."),
        ),
        sort_by=("layer", "state", "position", "unit"),
    ),
    View(
        name="corpus_tokens",
        kind="models",
        grain="model × position of the analysed split",
        description=(
            "The analysed split in text order (a language model's split as one stream; a classifier's "
            "documents in order), for the passages of `token_states`."
        ),
        columns=_cols(
            _MODEL_ID,
            ("position", "INTEGER", "Token position in the analysed split, 0-based."),
            ("document", "INTEGER", "Document index (classifiers; 0 for a language model's stream)."),
            ("word_id", "INTEGER", "Word index in the model's vocabulary (what the model read)."),
            ("word", "VARCHAR", "The word (`<unk>` for a word outside the vocabulary)."),
        ),
        sort_by=("position",),
    ),
    View(
        name="token_states",
        kind="models",
        grain="model × layer × state × unit × position",
        description=(
            "Per-token states of the chosen (layer, state)s over the analysed split (analysis option "
            "`token_states`, default the last layer's h), one row per unit and position, stored as float16; "
            "join `corpus_tokens` on (model_id, position) for the words."
        ),
        columns=_cols(
            _MODEL_ID,
            _LAYER,
            _STATE,
            ("unit", "INTEGER", "Unit index within the layer."),
            ("position", "INTEGER", "Token position in the analysed split (see `corpus_tokens`)."),
            ("value", "FLOAT", "State value after reading the token (h_t, c_t or the gate), float16 precision."),
        ),
        sort_by=("layer", "state", "unit", "position"),
        half=("value",),
        delta=("position",),
        row_group_rows=1 << 16,
    ),
    View(
        name="word_loss",
        kind="models",
        grain="language model × predicted word",
        description=(
            "Loss per word on the analysed split read as one stream (as `word_responses`): token t's loss is "
            "-log p(x_t | x_<t) in nats, predicted after reading x_(t-1); a row is keyed on the predicted word x_t."
        ),
        columns=_cols(
            _MODEL_ID,
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
        columns=_cols(
            _MODEL_ID,
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
        columns=_cols(
            _MODEL_ID,
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
        columns=_cols(
            _MODEL_ID,
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
        columns=_cols(
            _MODEL_ID,
            ("layer", "INTEGER", "Recurrent layer of the ablated units, 0 = closest to the input."),
            ("state", "VARCHAR", "The replaced state: 'h' or 'c' (LSTM cell)."),
            ("k", "INTEGER", "k of the co-clustering the set is a unit cluster of; NULL for a hand-picked set."),
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
            ("requested_by", "VARCHAR", "Who asked for it; NULL for the analysis's precomputed set."),
        ),
        sort_by=("layer", "state", "k", "cluster", "mode", "target_kind", "target"),
    ),
    View(
        name="jobs",
        kind="jobs",
        grain="job",
        description="Background jobs (training, analysis, ...) and their status, as of each job's last change "
                    "of status or stage (live progress: `rnnvis jobs list`, the Jobs page).",
        columns=_cols(
            ("job_id", "VARCHAR", "Job id (also the name of its store partition)."),
            ("kind", "VARCHAR", "What the job does (e.g. 'train', 'analyze')."),
            ("model_id", "VARCHAR", "Model the job is about, if any."),
            ("status", "VARCHAR", "'queued', 'running', 'done', 'failed' or 'cancelled'."),
            ("progress", "DOUBLE", "Fraction done, 0..1."),
            ("submitted_by", "VARCHAR", "User who submitted the job."),
            ("submitted_at", "TIMESTAMP", "When it was submitted (UTC)."),
            ("finished_at", "TIMESTAMP", "When it finished (UTC), or NULL."),
            ("error", "VARCHAR", "Error message if it failed, else NULL."),
            ("params", "VARCHAR", "What was submitted (preset, configs, corpus, analysis options) as JSON text."),
            ("detail", "VARCHAR", "Latest progress (epoch, step, loss, tokens/s), the per-epoch training curve "
                                  "and the result, as JSON text."),
            ("started_at", "TIMESTAMP", "When a worker first started it (UTC), or NULL while it waits."),
            ("heartbeat_at", "TIMESTAMP", "Last sign of life from the worker running it (UTC); a running job "
                                          "whose heartbeat is old is shown as 'lost'."),
            ("worker", "VARCHAR", "Worker running (or that ran) it: celery node name and process id."),
            ("attempts", "INTEGER", "Attempts so far (more than 1 after a worker was lost and another took over)."),
            ("stage", "VARCHAR", "Current stage: 'queued', 'train', 'import', 'analyze', 'publish' (the model is "
                                 "being made visible; it is there once the job is 'done') or 'done'."),
        ),
    ),
)

#: Every public view, by name, in documentation order.
VIEWS: dict[str, View] = {v.name: v for v in _VIEW_LIST}

#: Partition kinds, by name.
KINDS: dict[str, Kind] = {
    name: Kind(name, key, primary, tuple(v.name for v in _VIEW_LIST if v.kind == name))
    for name, key, primary in (
        ("models", "model_id", "models"),
        ("sentences", "sentence_id", "sentences"),
        ("jobs", "job_id", "jobs"),
    )
}


def view(name: str) -> View:
    """The view called ``name``; KeyError listing the known views otherwise."""
    try:
        return VIEWS[name]
    except KeyError:
        raise KeyError(f"unknown view {name!r}; known views: {', '.join(VIEWS)}") from None


def kind_of(name: str) -> Kind:
    """The partition kind that holds view ``name``."""
    return KINDS[view(name).kind]


def as_markdown() -> str:
    """The schema as Markdown (one section per view); docs/store-schema.md is rendered by analytics.schema_doc."""
    out: list[str] = []
    for v in VIEWS.values():
        out.append(f"### `{v.name}`\n\n{v.description} One row per {v.grain}.\n")
        out.append("| column | type | description |\n|---|---|---|")
        out.extend(f"| `{c.name}` | {c.type} | {c.description} |" for c in v.columns)
        out.append("")
    return "\n".join(out)
