"""Component ids, namespaced by page (``<page>-<name>``), in one place.

Graphs use pattern-matching ids (:func:`graph`) so that one callback in
:mod:`app.server` can set the export format (PNG/SVG) of every figure.
"""
from __future__ import annotations

GRAPH_TYPE = "rnnvis-graph"


def graph(name: str) -> dict[str, str]:
    """Pattern-matching id of a figure: ``{"type": GRAPH_TYPE, "name": name}``."""
    return {"type": GRAPH_TYPE, "name": name}


# -- app shell
NAV = "app-nav"
EXPORT_FORMAT = "app-export-format"
USER_BADGE = "app-user"
SIGN_OUT = "app-sign-out"

# -- models page
MODELS_TABLE = "models-table"
MODELS_ALERT = "models-alert"
MODELS_CURVES = graph("models-curves")
MODELS_CURVE_PICK = "models-curve-pick"
MODELS_PROBES = "models-probes"              # a POS probe table per language model

# -- explore page
EX_URL = "explore-url"
EX_ALERT = "explore-alert"
EX_MODEL = "explore-model"
EX_LAYER = "explore-layer"
EX_STATE = "explore-state"
EX_K = "explore-k"
EX_NWORDS = "explore-nwords"
EX_STROKE = "explore-stroke"
EX_LINKS = "explore-links"
EX_CLIP = "explore-clip"
EX_OPTIONS = "explore-options"          # checklist: "pos", "align", "glyphs" (glyphs beside the chips)
EX_SENTENCE_TEXT = "explore-sentence-text"
EX_SENTENCE_ADD = "explore-sentence-add"
EX_SENTENCE_MSG = "explore-sentence-msg"
EX_SENTENCES = "explore-sentences"      # dcc.Store: list of sentence ids
EX_SENTENCE_LIST = "explore-sentence-list"
EX_SENTENCE_CLEAR = "explore-sentence-clear"
EX_SELECTION = "explore-selection"      # dcc.Store: {"chip": j, "cloud": i, "unit": u}
EX_WORDS = "explore-words"              # dropdown (multi, <= 3): selected words
EX_DETAIL_MODE = "explore-detail-mode"  # "word" | "unit"
EX_DETAIL_MSG = "explore-detail-msg"
EX_WORDS_MSG = "explore-words-msg"      # what the word picker refused or replaced (at most three words)
EX_SUMMARY = "explore-summary"
EX_COCLUSTER = graph("explore-cocluster")
EX_GLYPHS = graph("explore-glyphs")
EX_DETAIL = graph("explore-detail")
EX_ABLATION = graph("explore-ablation")   # the selected chip's stored ablation, or the one just tested
EX_ABLATE = "explore-ablate"              # "Test these units": submits an ablation job
EX_ABLATE_MSG = "explore-ablate-msg"      # what the job is doing, or why it was refused
EX_ABLATE_JOB = "explore-ablate-job"      # dcc.Store: {"job_id": id, "done": bool} of the last submitted test
EX_ABLATE_POLL = "explore-ablate-poll"    # dcc.Interval: polls that job while it runs
EX_CSV_CLUSTERS = "explore-csv-clusters"
EX_CSV_DETAIL = "explore-csv-detail"
EX_DOWNLOAD = "explore-download"
EX_UNIT_LINK = "explore-unit-link"      # link to the selected unit's page
EX_FIND_TEXT = "explore-find-text"      # the Find units box on Explore
EX_FIND_MODE = "explore-find-mode"
EX_FIND_GO = "explore-find-go"
EX_FIND_RESULTS = "explore-find-results"

# -- unit page
UNIT_MODEL = "unit-model"               # dcc.Store: the page's model id (for the Find units box)
UNIT_FIND_TEXT = "unit-find-text"
UNIT_FIND_MODE = "unit-find-mode"       # "word" | "tag" | "text"
UNIT_FIND_GO = "unit-find-go"
UNIT_FIND_RESULTS = "unit-find-results"
UNIT_HISTOGRAM = graph("unit-histogram")
UNIT_TAGS = graph("unit-tags")
UNIT_WORDS = graph("unit-words")

# -- compare page
CMP_URL = "compare-url"
CMP_ALERT = "compare-alert"
CMP_MODEL_A = "compare-model-a"
CMP_MODEL_B = "compare-model-b"
CMP_LAYER_A = "compare-layer-a"
CMP_LAYER_B = "compare-layer-b"
CMP_STATE = "compare-state"
CMP_K = "compare-k"
CMP_NWORDS = "compare-nwords"
CMP_WORD = "compare-word"
CMP_PAIR = "compare-pair"               # dcc.Store: selected matched pair index
CMP_CLUSTER_A = graph("compare-cluster-a")
CMP_CLUSTER_B = graph("compare-cluster-b")
CMP_DETAIL_A = graph("compare-detail-a")
CMP_DETAIL_B = graph("compare-detail-b")
CMP_MATCHES = "compare-matches"
CMP_MATCH_FIG = graph("compare-match-fig")   # matched |r| by rank over the shuffled-words chance band
CMP_OVERLAP = "compare-overlap"
CMP_OVERLAP_FIG = graph("compare-overlap-fig")
CMP_GRADIENT = graph("compare-gradient")
CMP_LOSS_SUMMARY = "compare-loss-summary"     # where A beats B: the totals in words
CMP_LOSS_TAGS = graph("compare-loss-tags")    # Δ loss by POS tag (classifiers: A's confusion matrix)
CMP_LOSS_WORDS = graph("compare-loss-words")  # per-word loss A vs B (classifiers: B's confusion matrix)
CMP_LOSS_TABLES = "compare-loss-tables"       # the words each model gains most on (classifiers: per class)
CMP_PROBES = "compare-probes"                 # both models' POS probes with their controls
CMP_CSV = "compare-csv"
CMP_DOWNLOAD = "compare-download"

# -- SQL console
SQL_EDITOR = "sql-editor"
SQL_RUN = "sql-run"
SQL_EXAMPLES = "sql-examples"
SQL_MSG = "sql-msg"
SQL_TABLE = "sql-table"
SQL_LAST = "sql-last"                   # dcc.Store: the SQL text of the last successful run (for downloads)
SQL_CSV = "sql-csv"
SQL_PARQUET = "sql-parquet"
SQL_DOWNLOAD = "sql-download"
SQL_SAVED = "sql-saved"                 # dropdown of the user's saved queries
SQL_SAVE_NAME = "sql-save-name"
SQL_SAVE = "sql-save"
SQL_DELETE = "sql-delete"
SQL_SAVE_MSG = "sql-save-msg"
SQL_SCHEMA = "sql-schema"

# -- jobs page
JOBS_INTERVAL = "jobs-interval"
JOBS_REFRESH = "jobs-refresh"            # dcc.Store: bumped by a submit or a cancel, re-reads the job list
JOBS_TABLE = "jobs-table"
JOBS_BANNER = "jobs-banner"
JOBS_CANCEL_MSG = "jobs-cancel-msg"
JOBS_CANCEL = "jobs-cancel"              # pattern type of a job's Cancel button: {"type": JOBS_CANCEL, "index": job_id}
JOBS_PRESET = "jobs-preset"
JOBS_CORPUS_SOURCE = "jobs-corpus-source"
JOBS_CORPUS_BUILTIN = "jobs-corpus-builtin"
JOBS_CORPUS_FORMAT = "jobs-corpus-format"
JOBS_CORPUS_UPLOAD = "jobs-corpus-upload"
JOBS_CORPUS_UPLOADED = "jobs-corpus-upload-id"   # dcc.Store: {"upload_id", "task", "name"} of the uploaded corpus
JOBS_CORPUS_UPLOAD_STATUS = "jobs-corpus-upload-status"
JOBS_CORPUS_MINE = "jobs-corpus-mine"             # dropdown: the signed-in user's earlier corpus uploads
JOBS_MODEL_ID = "jobs-model-id"
JOBS_NAME = "jobs-name"
JOBS_SUBMIT = "jobs-submit"
JOBS_CURVE_JOB = "jobs-curve-job"
JOBS_CURVE = graph("jobs-curve")
JOBS_CURVE_BOX = "jobs-curve-box"
JOBS_BYOM_WEIGHTS = "jobs-byom-weights"
JOBS_BYOM_VOCAB = "jobs-byom-vocab"
JOBS_BYOM_WEIGHTS_STATUS = "jobs-byom-weights-status"
JOBS_BYOM_VOCAB_STATUS = "jobs-byom-vocab-status"
JOBS_BYOM_MODEL_ID = "jobs-byom-model-id"
JOBS_BYOM_SUBMIT = "jobs-byom-submit"
JOBS_BYOM_MSG = "jobs-byom-msg"


def jobs_field(name: str) -> str:
    """Input of training setting ``name`` on the Jobs form (``hidden_size`` -> ``jobs-field-hidden-size``)."""
    return f"jobs-field-{name.replace('_', '-')}"


def jobs_error(name: str) -> str:
    """The message line under form field ``name`` (a setting, ``preset``, ``corpus``, ``model_id``, ...)."""
    return f"jobs-error-{name.replace('_', '-')}"


# -- projection page (2-D maps of words and units)
PJ_URL = "projection-url"
PJ_ALERT = "projection-alert"
PJ_MODEL = "projection-model"
PJ_LAYER = "projection-layer"
PJ_STATE = "projection-state"
PJ_K = "projection-k"
PJ_METHOD = "projection-method"          # "tsne" | "pca"
PJ_COLOR = "projection-color"            # "pos" | "cluster"
PJ_DRAG = "projection-drag"              # plotly dragmode: "lasso" | "select" | "zoom"
PJ_MODEL_B = "projection-model-b"        # compare: a second model (None = no comparison)
PJ_LAYER_B = "projection-layer-b"
PJ_SELECTION = "projection-selection"    # dcc.Store: {"words": [...], "units": [...]}
PJ_CLEAR = "projection-clear"
PJ_EXPLORE_LINK = "projection-explore-link"
PJ_SUMMARY = "projection-summary"
PJ_WORDS = graph("projection-words")
PJ_UNITS = graph("projection-units")
EX_MAP_LINK = "explore-map-link"         # Explore: the same view (and selection) on the projection page

# -- patterns page (LSTMVis-style pattern search over the token states)
PT_URL = "patterns-url"
PT_ALERT = "patterns-alert"
PT_MODEL = "patterns-model"
PT_KEY = "patterns-key"                  # "layer:state" of the stored token states
PT_SOURCE = "patterns-source"            # "corpus" | "sentence"
PT_AT = "patterns-at"                    # first position of the corpus passage
PT_TEXT = "patterns-text"
PT_TRACE = "patterns-trace"
PT_SENTENCE = "patterns-sentence"        # dcc.Store: the typed sentence's id
PT_TOKENS = "patterns-tokens"            # the passage's token buttons
PT_TOKEN = "patterns-token"              # pattern type of a token button: {"type": PT_TOKEN, "index": i}
PT_SPAN = "patterns-span"                # dcc.Store: {"start": i, "stop": j, "pending": bool}, passage indices
PT_SPAN_TEXT = "patterns-span-text"
PT_THETA = "patterns-theta"
PT_UNITS = "patterns-units"
PT_UNIT_LINKS = "patterns-unit-links"    # the pattern's units, linked to their pages
PT_OPTIONS = "patterns-options"          # checklist: "off" (off just before the span)
PT_MIN = "patterns-min"                  # least units matched (empty = all)
PT_SEARCH = "patterns-search"
PT_PASSAGE = graph("patterns-passage")
PT_MATCHES = graph("patterns-matches")
PT_MATCH_LIST = "patterns-match-list"
PT_SUMMARY = "patterns-summary"
PT_COUNT = "patterns-count"

# -- admin page
ADMIN_MSG = "admin-msg"
ADMIN_USERS = "admin-users"
ADMIN_NEW_NAME = "admin-new-name"
ADMIN_NEW_ROLE = "admin-new-role"
ADMIN_NEW_PASSWORD = "admin-new-password"
ADMIN_ADD = "admin-add"
ADMIN_USER = "admin-user"
ADMIN_ROLE = "admin-role"
ADMIN_SET_ROLE = "admin-set-role"
ADMIN_REMOVE = "admin-remove"
ADMIN_MODEL = "admin-model"
ADMIN_DELETE_MODEL = "admin-delete-model"
ADMIN_PANEL = "admin-panel"
ADMIN_AUDIT = "admin-audit"
ADMIN_AUDIT_ACTION = "admin-audit-action"
ADMIN_AUDIT_WHO = "admin-audit-who"
ADMIN_AUDIT_TEXT = "admin-audit-text"
ADMIN_AUDIT_REFRESH = "admin-audit-refresh"

# -- team notes (one panel: the Unit page's and the Models page's)
NOTES_TARGET = "notes-target"            # dcc.Store: {model_id, layer, state, k, cluster, unit} the panel notes
NOTES_KIND = "notes-kind"                # what a new note is on: "model" | "cluster" | "unit"
NOTES_BODY = "notes-body"
NOTES_SAVE = "notes-save"
NOTES_EDITING = "notes-editing"          # dcc.Store: the id of the note being edited, or None
NOTES_MSG = "notes-msg"
NOTES_LIST = "notes-list"
NOTES_SEARCH = "notes-search"
NOTES_EDIT = "notes-edit"                # pattern type of a note's Edit button: {"type": NOTES_EDIT, "index": id}
NOTES_DELETE = "notes-delete"            # pattern type of a note's Remove button
NOTES_MODEL = "notes-model"              # the Models page's pick of the model to note


#: Components whose events are actions, with the least role allowed to trigger them. The hosted-mode gate
#: (:mod:`app.hosted.auth`) refuses a callback fed by any of them (a pattern id by its ``type``) to a user below that
#: role, before it runs. Keyed by the constants above, so renaming an id keeps its check.
ACTION_ROLES: dict[str, str] = {
    JOBS_SUBMIT: "member", JOBS_BYOM_SUBMIT: "member", JOBS_CANCEL: "member", JOBS_CORPUS_UPLOAD: "member",
    JOBS_CORPUS_MINE: "member",
    JOBS_BYOM_WEIGHTS: "member", JOBS_BYOM_VOCAB: "member", EX_ABLATE: "member",
    ADMIN_ADD: "admin", ADMIN_SET_ROLE: "admin", ADMIN_REMOVE: "admin", ADMIN_DELETE_MODEL: "admin",
    NOTES_SAVE: "member", NOTES_EDIT: "member", NOTES_DELETE: "member",
}
