"""The declared type and bound of every input and state of every server callback, by (component id, property).

Keyed by the constants of :mod:`app.ids` (a pattern id by the pattern the callback names, ``ALL`` included),
so that renaming an id keeps its schema. Bounds are at least what the page itself can send (a slider's
range, a text box's ``maxLength``, the most items a list can hold); where a narrower rule has a message of its
own further in (a job name's length in :mod:`workers.planning`, a SQL text's in the console), the bound here
is a wider transport limit and the message comes from there.
"""
from __future__ import annotations

import json

from dash import ALL

from analytics.saved_queries import MAX_SQL_CHARS
from app import ids
from app.hosted.security import member_max_body
from app.hosted.users import MAX_PASSWORD
from app.inputs.specs import AnyOf, Flag, Json, ListOf, Number, Record, Spec, Text
from app.logic.patterns import MAX_UNITS
from app.reader.units import FIND_MODES
from app.urlstate import K_MAX, K_MIN, MAX_PICKED, MAX_SENTENCES
from models.paths import ID_PATTERN
from workers.planning import FORM_FIELDS, TEXT_FIELDS

#: The most concrete ids one pattern-matching (ALL) input may carry: a job table's Cancel buttons (at most
#: 100 jobs listed), a passage's or a typed sentence's token buttons (at most 500 tokens).
MAX_MATCHED = 1000

# -- the kinds of value the pages hold
CLICKS = Number(0, 2**31, integer=True)          # n_clicks, submit_n_clicks, n_intervals
MODEL = Text(128, ID_PATTERN.pattern)            # a model id (models.paths)
LAYER = Number(0, 1024, integer=True)
STATE = Text(8, r"[a-z]{1,8}")                   # h, c, i, f, g, o, z, r, n
K = Number(K_MIN, K_MAX, integer=True)
WORD = Text(1000)                                # a vocabulary word
SENTENCE = Text(40, r"[0-9a-f]{8,40}")           # a typed sentence's id (analytics.sentences)
SENTENCE_TEXT = Text(20_000)                     # the sentence boxes' maxLength
UNIT = Number(0, 1 << 16, integer=True)
SEARCH = Text(16_384)                            # a page's query string (urlstate decodes it with its own bounds)
TEXT_ID = Text(128)                              # job, upload and saved-query ids, user names, picks of a list
UPLOAD = Text(member_max_body)                   # a dcc.Upload data URL: under the member body cap
FILENAME = Text(1024)
#: A Plotly click or selection event: read by the logic as untrusted (it checks what it takes from it).
CLICK_DATA = Json(max_depth=8, max_nodes=5_000)
SELECTED_DATA = Json(max_depth=8, max_nodes=200_000)
#: A training setting as the form sends it: a number, or the text of a choice or a number (planning checks it).
FORM_VALUE = AnyOf((Number(-1e308, 1e308), Text(64)))
#: A note's body as typed: longer than the 2,000 characters kept, so the server can cut it and say so
NOTE_BODY = Text(20_000)
FIND_TEXT = Text(100)                            # the Find units box's maxLength
FIND_MODE = Text(8, choices=FIND_MODES)
FREE_TEXT = {name: Text(max(1024, 4 * most)) for name, most in TEXT_FIELDS.items()}



def _declared() -> list[tuple[str | dict, str, Spec]]:
    shell = [
        ("_pages_location", "pathname", Text(2048, r"/.*")), ("_pages_location", "search", SEARCH),
        (ids.SIGN_OUT, "id", Text(64)),
    ]
    models = [(ids.MODELS_CURVE_PICK, "value", ListOf(MODEL, 1000))]
    explore = [
        (ids.EX_URL, "search", SEARCH), (ids.EX_MODEL, "value", MODEL), (ids.EX_LAYER, "value", LAYER),
        (ids.EX_STATE, "value", STATE), (ids.EX_K, "value", K), (ids.EX_NWORDS, "value", Number(1, 100)),
        (ids.EX_STROKE, "value", Number(0, 10)), (ids.EX_LINKS, "value", ListOf(Number(0, 1), 2)),
        (ids.EX_CLIP, "value", Number(-10, 10)),
        (ids.EX_OPTIONS, "value", ListOf(Text(8, choices=("pos", "align", "glyphs")), 3)),
        (ids.EX_WORDS, "value", ListOf(WORD, MAX_PICKED)), (ids.EX_WORDS, "search_value", WORD),
        (ids.EX_SELECTION, "data", Record({"chip": UNIT, "cloud": UNIT, "unit": UNIT})),
        (ids.EX_SENTENCES, "data", ListOf(SENTENCE, MAX_SENTENCES + 1)),
        (ids.EX_SENTENCE_TEXT, "value", SENTENCE_TEXT), (ids.EX_SENTENCE_ADD, "n_clicks", CLICKS),
        (ids.EX_SENTENCE_CLEAR, "n_clicks", CLICKS), (ids.EX_DETAIL_MODE, "value", Text(8, choices=("word", "unit"))),
        (ids.EX_COCLUSTER, "clickData", CLICK_DATA), (ids.EX_CSV_CLUSTERS, "n_clicks", CLICKS),
        (ids.EX_CSV_DETAIL, "n_clicks", CLICKS), (ids.EX_ABLATE, "n_clicks", CLICKS),
        (ids.EX_ABLATE_POLL, "n_intervals", CLICKS),
        (ids.EX_ABLATE_JOB, "data", Record({"job_id": TEXT_ID, "done": Flag()})),
        (ids.EX_FIND_TEXT, "value", FIND_TEXT), (ids.EX_FIND_MODE, "value", FIND_MODE),
        (ids.EX_FIND_GO, "n_clicks", CLICKS), (ids.EX_FIND_TEXT, "n_submit", CLICKS),
    ]
    unit = [
        (ids.UNIT_MODEL, "data", MODEL), (ids.UNIT_FIND_TEXT, "value", FIND_TEXT),
        (ids.UNIT_FIND_MODE, "value", FIND_MODE), (ids.UNIT_FIND_GO, "n_clicks", CLICKS),
        (ids.UNIT_FIND_TEXT, "n_submit", CLICKS),
    ]
    compare = [
        (ids.CMP_MODEL_A, "value", MODEL), (ids.CMP_MODEL_B, "value", MODEL), (ids.CMP_LAYER_A, "value", LAYER),
        (ids.CMP_LAYER_B, "value", LAYER), (ids.CMP_STATE, "value", STATE), (ids.CMP_K, "value", K),
        (ids.CMP_NWORDS, "value", Number(1, 100)), (ids.CMP_WORD, "value", WORD),
        (ids.CMP_PAIR, "data", Record({"side": Text(1, choices=("a", "b")), "unit": UNIT})),
        (ids.CMP_CLUSTER_A, "clickData", CLICK_DATA), (ids.CMP_CLUSTER_B, "clickData", CLICK_DATA),
        (ids.CMP_CSV, "n_clicks", CLICKS),
    ]
    projection = [
        (ids.PJ_MODEL, "value", MODEL), (ids.PJ_LAYER, "value", LAYER), (ids.PJ_STATE, "value", STATE),
        (ids.PJ_K, "value", K), (ids.PJ_METHOD, "value", Text(8, choices=("tsne", "pca"))),
        (ids.PJ_COLOR, "value", Text(8, choices=("pos", "cluster"))),
        (ids.PJ_DRAG, "value", Text(8, choices=("lasso", "select", "zoom", "pan"))),
        (ids.PJ_MODEL_B, "value", MODEL), (ids.PJ_LAYER_B, "value", LAYER),
        (ids.PJ_SELECTION, "data", Record({"words": ListOf(WORD, MAX_PICKED), "units": ListOf(UNIT, MAX_PICKED)})),
        (ids.PJ_CLEAR, "n_clicks", CLICKS),
        (ids.PJ_WORDS, "selectedData", SELECTED_DATA), (ids.PJ_WORDS, "clickData", CLICK_DATA),
        (ids.PJ_UNITS, "selectedData", SELECTED_DATA), (ids.PJ_UNITS, "clickData", CLICK_DATA),
    ]
    patterns = [
        (ids.PT_MODEL, "value", MODEL), (ids.PT_KEY, "value", Text(16, r"[0-9]{1,4}:[a-z]{1,8}")),
        (ids.PT_SOURCE, "value", Text(8, choices=("corpus", "sentence"))), (ids.PT_AT, "value", Number(-2**31, 2**31)),
        (ids.PT_TEXT, "value", SENTENCE_TEXT), (ids.PT_TRACE, "n_clicks", CLICKS), (ids.PT_SENTENCE, "data", SENTENCE),
        ({"type": ids.PT_TOKEN, "index": ALL}, "n_clicks", CLICKS),
        (ids.PT_SPAN, "data", Record({"start": Number(0, 2**31, integer=True),
                                      "stop": Number(0, 2**31, integer=True), "pending": Flag()})),
        (ids.PT_THETA, "value", Number(-5, 5)), (ids.PT_UNITS, "value", ListOf(UNIT, MAX_UNITS)),
        (ids.PT_OPTIONS, "value", ListOf(Text(8, choices=("off",)), 1)), (ids.PT_MIN, "value", Number(-2**31, 2**31)),
        (ids.PT_SEARCH, "n_clicks", CLICKS),
    ]
    return shell + models + explore + unit + compare + projection + patterns + _jobs() + _sql_admin() + _notes()


def _notes() -> list[tuple[str | dict, str, Spec]]:
    target = Record({"model_id": MODEL, "layer": LAYER, "state": STATE, "k": K,
                     "cluster": Number(0, K_MAX, integer=True), "unit": UNIT})
    return [
        (ids.NOTES_TARGET, "data", target), (ids.NOTES_KIND, "value", Text(8, choices=("model", "cluster", "unit"))),
        (ids.NOTES_BODY, "value", NOTE_BODY), (ids.NOTES_SAVE, "n_clicks", CLICKS),
        (ids.NOTES_EDITING, "data", Number(0, 2**62, integer=True)), (ids.NOTES_SEARCH, "value", Text(200)),
        ({"type": ids.NOTES_EDIT, "index": ALL}, "n_clicks", CLICKS),
        ({"type": ids.NOTES_DELETE, "index": ALL}, "n_clicks", CLICKS), (ids.NOTES_MODEL, "value", MODEL),
    ]


def _jobs() -> list[tuple[str | dict, str, Spec]]:
    fields = [(ids.jobs_field(name), "value", FORM_VALUE) for name in FORM_FIELDS]
    uploads = [(ids.JOBS_CORPUS_UPLOAD, "contents", AnyOf((UPLOAD, ListOf(UPLOAD, 3)))),
               (ids.JOBS_CORPUS_UPLOAD, "filename", AnyOf((FILENAME, ListOf(FILENAME, 3)))),
               (ids.JOBS_BYOM_WEIGHTS, "contents", UPLOAD), (ids.JOBS_BYOM_WEIGHTS, "filename", FILENAME),
               (ids.JOBS_BYOM_VOCAB, "contents", UPLOAD), (ids.JOBS_BYOM_VOCAB, "filename", FILENAME)]
    return fields + uploads + [
        (ids.JOBS_INTERVAL, "n_intervals", CLICKS), (ids.JOBS_REFRESH, "data", Text(256)),
        (ids.JOBS_PRESET, "value", FREE_TEXT["preset"]),
        (ids.JOBS_CORPUS_SOURCE, "value", Text(8, choices=("builtin", "upload"))),
        (ids.JOBS_CORPUS_BUILTIN, "value", FREE_TEXT["corpus"]),
        (ids.JOBS_CORPUS_FORMAT, "value", FREE_TEXT["corpus_format"]),
        (ids.JOBS_CORPUS_UPLOADED, "data", Record({"upload_id": TEXT_ID, "task": Text(16), "name": FILENAME})),
        (ids.JOBS_CORPUS_MINE, "value", TEXT_ID), (ids.JOBS_MODEL_ID, "value", FREE_TEXT["model_id"]),
        (ids.JOBS_NAME, "value", FREE_TEXT["name"]), (ids.JOBS_SUBMIT, "n_clicks", CLICKS),
        (ids.JOBS_BYOM_MODEL_ID, "value", FREE_TEXT["model_id"]), (ids.JOBS_BYOM_SUBMIT, "n_clicks", CLICKS),
        ({"type": ids.JOBS_CANCEL, "index": ALL}, "n_clicks", CLICKS), (ids.JOBS_CURVE_JOB, "value", TEXT_ID),
    ]


def _sql_admin() -> list[tuple[str | dict, str, Spec]]:
    sql = Text(MAX_SQL_CHARS)
    return [
        (ids.SQL_EDITOR, "value", sql), (ids.SQL_LAST, "data", sql),
        (ids.SQL_EXAMPLES, "value", Number(0, 1000, integer=True)),
        (ids.SQL_SAVED, "value", Text(256)), (ids.SQL_SAVE_NAME, "value", Text(1024)),
        (ids.SQL_RUN, "n_clicks", CLICKS), (ids.SQL_CSV, "n_clicks", CLICKS), (ids.SQL_PARQUET, "n_clicks", CLICKS),
        (ids.SQL_SAVE, "n_clicks", CLICKS), (ids.SQL_DELETE, "n_clicks", CLICKS),
        (ids.ADMIN_NEW_NAME, "value", Text(256)), (ids.ADMIN_NEW_ROLE, "value", Text(16)),
        (ids.ADMIN_NEW_PASSWORD, "value", Text(MAX_PASSWORD)), (ids.ADMIN_USER, "value", Text(256)),
        (ids.ADMIN_ROLE, "value", Text(16)), (ids.ADMIN_MODEL, "value", MODEL),
        (ids.ADMIN_ADD, "n_clicks", CLICKS), (ids.ADMIN_SET_ROLE, "n_clicks", CLICKS),
        (ids.ADMIN_REMOVE, "submit_n_clicks", CLICKS), (ids.ADMIN_DELETE_MODEL, "submit_n_clicks", CLICKS),
        (ids.ADMIN_AUDIT_ACTION, "value", Text(32)), (ids.ADMIN_AUDIT_WHO, "value", Text(256)),
        (ids.ADMIN_AUDIT_TEXT, "value", Text(200)), (ids.ADMIN_AUDIT_REFRESH, "n_clicks", CLICKS),
    ]


def dep_key(cid: str | dict) -> str:
    """A component id as Dash's callback map writes it (a pattern id: its JSON, keys sorted, ``["ALL"]``)."""
    if isinstance(cid, str):
        return cid
    return "{" + ",".join(f"{json.dumps(k)}:{v.to_json() if hasattr(v, 'to_json') else json.dumps(v)}"
                          for k, v in sorted(cid.items())) + "}"


#: (component id as the callback map writes it, property) -> the declared type and bound of its value.
SCHEMAS: dict[tuple[str, str], Spec] = {(dep_key(cid), prop): spec for cid, prop, spec in _declared()}
