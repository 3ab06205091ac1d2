"""The views an analysis writes about a model's states: responses, clusters, maps, sentences, token states."""
from __future__ import annotations

from .base import LAYER, MODEL_ID, STATE, View, cols

__all__ = ["ANALYSIS_VIEWS"]

ANALYSIS_VIEWS: tuple[View, ...] = (
    View(
        name="models",
        kind="models",
        grain="model",
        description="Trained models: architecture, training setup and final scores.",
        columns=cols(
            MODEL_ID,
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
        columns=cols(
            MODEL_ID,
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
        columns=cols(
            MODEL_ID,
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
        columns=cols(
            MODEL_ID,
            LAYER,
            STATE,
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
        columns=cols(
            MODEL_ID,
            LAYER,
            STATE,
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
        columns=cols(
            MODEL_ID,
            LAYER,
            STATE,
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
        columns=cols(
            MODEL_ID,
            LAYER,
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
        columns=cols(
            ("sentence_id", "VARCHAR", "Sentence id (also the name of its store partition)."),
            MODEL_ID,
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
        columns=cols(
            ("sentence_id", "VARCHAR", "Sentence id."),
            MODEL_ID,
            ("position", "INTEGER", "Step, 0-based."),
            ("token", "VARCHAR", "Token read at this step."),
            LAYER,
            STATE,
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
            "documents in order), for every analysed model: the passages of `token_states` and `unit_contexts`."
        ),
        columns=cols(
            MODEL_ID,
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
        columns=cols(
            MODEL_ID,
            LAYER,
            STATE,
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
        name="unit_contexts",
        kind="models",
        grain="model × layer × state × unit × kind × rank",
        description=(
            "Each unit's top contexts: the 20 positions of the analysed split where its value is highest "
            "(`h_top`) and lowest (`h_bottom`), and where its change from the previous token is largest "
            "(`dh_top`) and smallest (`dh_bottom`), for every traced (layer, state), whatever token states are "
            "stored. Computed during the trace (a streaming top-k per unit); join `corpus_tokens` on "
            "(model_id, position) for the words around it."
        ),
        columns=cols(
            MODEL_ID,
            LAYER,
            STATE,
            ("unit", "INTEGER", "Unit index within the layer."),
            ("kind", "VARCHAR", "'h_top', 'h_bottom' (the value: h_t, c_t or the gate) or 'dh_top', 'dh_bottom' "
                                "(its change from the previous token)."),
            ("rank", "INTEGER", "1 = the highest (top) or lowest (bottom) value."),
            ("position", "INTEGER", "Token position in the analysed split read as one stream (see "
                                    "`corpus_tokens`)."),
            ("value", "FLOAT", "The unit's value (or change) after reading that token."),
        ),
        sort_by=("layer", "state", "unit", "kind", "rank"),
    ),
    View(
        name="unit_summaries",
        kind="models",
        grain="model × layer × state × unit",
        description=(
            "What each unit responds to, from the per-word statistics of `word_responses` (see "
            "docs/architecture.md, \"Unit summaries\"): its response over the whole split, its top and bottom "
            "words by s(w) and its most and least selective gold POS tag (tagged corpora), with a one-line "
            "description made only from these numbers. The Find units box ranks units by it."
        ),
        columns=cols(
            MODEL_ID,
            LAYER,
            STATE,
            ("unit", "INTEGER", "Unit index within the layer."),
            ("n", "BIGINT", "Tokens analysed."),
            ("mean", "DOUBLE", "Mean response (the update for h and c, the activation for a gate) over all tokens."),
            ("std", "DOUBLE", "Its sample standard deviation."),
            ("top_words", "VARCHAR", "The 5 words with the highest s(w), among words seen >= 5 times, "
                                     "comma-separated, highest first."),
            ("bottom_words", "VARCHAR", "The 5 words with the lowest s(w), lowest first."),
            ("top_tag", "VARCHAR", "The gold POS tag with the largest selectivity z (NULL without tags)."),
            ("top_tag_z", "DOUBLE", "Its z (see `unit_tags`)."),
            ("bottom_tag", "VARCHAR", "The tag with the smallest z."),
            ("bottom_tag_z", "DOUBLE", "Its z."),
            ("description", "VARCHAR", "One line from the numbers above: '+ on TAG (z Z)' when the top tag's "
                                      "z >= 3, '− on TAG (z Z)' when the bottom tag's z <= −3, then the top and "
                                      "bottom three words."),
        ),
        sort_by=("layer", "state", "unit"),
    ),
    View(
        name="unit_tags",
        kind="models",
        grain="model × layer × state × unit × gold POS tag",
        description=(
            "A unit's response per gold universal POS tag (tagged corpora such as Brown): tokens grouped by "
            "their word's most frequent tag (`vocab.pos`), pooled from `word_responses`."
        ),
        columns=cols(
            MODEL_ID,
            LAYER,
            STATE,
            ("unit", "INTEGER", "Unit index within the layer."),
            ("tag", "VARCHAR", "Universal POS tag ('.' is punctuation)."),
            ("n", "BIGINT", "Tokens with this tag."),
            ("mean", "DOUBLE", "Mean response over them."),
            ("std", "DOUBLE", "Its sample standard deviation (95% interval of the mean: ± 1.96·std/√n)."),
            ("z", "DOUBLE", "Selectivity: (mean − mean of all other tokens) / √(var/n + var_rest/n_rest), "
                            "Welch's statistic."),
        ),
        sort_by=("layer", "state", "unit", "tag"),
    ),
)
