"""Ablation: does this chip matter?  Replace a unit set's values at every step and measure what changes.

For (model, layer, state h or c, unit set), the analysed split is run with those units replaced after every
step, by 0 (mode ``zero``) or by the unit's mean over the measured tokens of the unablated run (``mean``); the
replaced value is what the next step and the layer above read.  Effects are measured against the unablated
run on the same tokens (a language model's split read as one stream from zero state, as
:mod:`analytics.losses`; a classifier's documents each from zero state), and against R random unit sets of
the same size from the same layer and state (a chance baseline: z-score and empirical p).

- :mod:`.engine`: the runs, the unablated one, the tested sets and the random sets as columns of one batch;
- :mod:`.effects`: targets (all tokens, POS tags, word clusters; classifier labels), z and p;
- :mod:`.run`: checked requests -> rows of the ``ablations`` table;
- :mod:`.precompute`: the set the analysis stores (every unit cluster of the last layer's h and c);
- :mod:`.stored`: an analysed model of a store, and the unit cluster linked to a word class;
- :mod:`.requested`: an on-demand ablation of a stored model, added to its ``ablations`` rows (the job of
  :mod:`workers.stages`);
- ``python -m analytics.ablation``: the command line (reads a store, writes nothing).

See docs/ablation.md.
"""
from .effects import baseline, random_sets
from .engine import Columns, classifier_column_probs, lm_column_losses, state_means
from .precompute import DEFAULT_K, PRECOMPUTE_WORK, precompute_tokens, unit_clusters, word_clusters, write_ablations
from .requested import DEFAULT_PREFIX, REQUEST_KEY, ablate_stored, add_requested
from .run import ABLATION_COLUMNS, BASELINE_SETS, MODES, Documents, LMText, Tested, ablate
from .stored import Link, StoredModel, linked_unit_cluster, load_stored

__all__ = ["ablate", "LMText", "Documents", "Tested", "ABLATION_COLUMNS", "BASELINE_SETS", "MODES", "baseline",
           "random_sets", "Columns", "lm_column_losses", "classifier_column_probs", "state_means", "DEFAULT_K",
           "PRECOMPUTE_WORK", "precompute_tokens", "unit_clusters", "word_clusters", "write_ablations", "Link",
           "StoredModel", "linked_unit_cluster", "load_stored", "ablate_stored", "add_requested", "DEFAULT_PREFIX",
           "REQUEST_KEY"]
