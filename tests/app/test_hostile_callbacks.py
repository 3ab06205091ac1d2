"""Issue 20's callback findings, each reproduced through Dash's dispatch (POST /_dash-update-component).

- 2: a forged pattern span {"start": 0, "stop": huge} sized an array by its width;
- 3: a 900k-character string where a list is expected (the Models page's curve picker, Explore's sentences);
- 10: 500s on direct posts (an upload record sent as a string, a deeply nested vocabulary, an unknown model or
  analysis in the CSV downloads) and a 200,000-character job name that was stored.
"""
from __future__ import annotations

import json
import tracemalloc

import pytest

from app import ids
from tests.app import fuzzing
from tests.app.dispatching import dispatch, request_body
from tests.app.hostile_apps import build_apps, client

#: Generous bounds on what answering one refused request may allocate (its body is under 1 MB).
REFUSAL_PEAK = 16 << 20


@pytest.fixture(scope="module")
def apps(tiny_store, tmp_path_factory):
    return build_apps(tiny_store, tmp_path_factory.mktemp("hostile"))


def _post(c, body: dict | str) -> tuple[int, str, int]:
    """(status, answer, bytes allocated at the peak while answering)."""
    text = body if isinstance(body, str) else fuzzing.encode(body)
    tracemalloc.start()
    try:
        resp = c.post("/_dash-update-component", data=text, content_type="application/json")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return resp.status_code, resp.get_data(as_text=True), peak


# --------------------------------------------------------------------------- 2: the pattern span


def test_a_forged_pattern_span_is_searched_at_most_64_tokens_wide(apps):
    """Item 2: patterns-span.data = {"start": 0, "stop": 4_000_001} with a unit picked. The search runs for a
    span of 64 tokens (the bound from_query applies), not four million; nothing is sized by the forged width."""
    app = apps[0]
    body = request_body(app, ids.PT_MATCHES, {
        ids.PT_SEARCH: 1, ids.PT_MODEL: "tiny-lstm", ids.PT_KEY: "1:h", ids.PT_UNITS: [0], ids.PT_THETA: 0.0,
        ids.PT_SPAN: {"start": 0, "stop": 4_000_001, "pending": False}, ids.PT_OPTIONS: [], ids.PT_AT: 0,
        ids.PT_SOURCE: "corpus"}, f"{ids.PT_SEARCH}.n_clicks")
    status, answer, peak = _post(client(app), body)
    assert status == 200, answer[:300]
    count = json.loads(answer)["response"][ids.PT_COUNT]["children"]
    assert "for 64±1 tokens" in count, count
    assert peak < 32 << 20  # np.arange of the forged width alone would be 32 MB


def test_a_span_that_is_not_an_object_is_refused(apps):
    app = apps[0]
    body = request_body(app, ids.PT_MATCHES, {ids.PT_SEARCH: 1, ids.PT_SPAN: "x" * 1000},
                        f"{ids.PT_SEARCH}.n_clicks")
    status, answer, _ = _post(client(app), body)
    assert status == 400 and "patterns-span.data: expected an object" in answer


# --------------------------------------------------------------------------- 3: long strings where lists go


@pytest.mark.parametrize("user", [None, "vera"])
@pytest.mark.parametrize("output, target, trigger", [
    (ids.MODELS_CURVES, ids.MODELS_CURVE_PICK, f"{ids.MODELS_CURVE_PICK}.value"),
    (ids.EX_GLYPHS, ids.EX_SENTENCES, f"{ids.EX_SENTENCES}.data"),
    (ids.EX_COCLUSTER, ids.EX_SENTENCES, f"{ids.EX_SENTENCES}.data"),
])
def test_a_900k_character_string_for_a_list_is_refused_before_any_work(apps, user, output, target, trigger):
    """Item 3: a viewer's 900k-character string as models-curve-pick.value or explore-sentences.data took
    30 s and over 1 GB; it is answered 400 with the declared type, allocating little beyond the body."""
    app = apps[1] if user else apps[0]
    body = request_body(app, output, {target: "x" * fuzzing.HUGE, ids.EX_MODEL: "tiny-lstm", ids.EX_LAYER: 1,
                                      ids.EX_STATE: "h", ids.EX_K: 4}, trigger)
    status, answer, peak = _post(client(app, user), body)
    assert status == 400, answer[:300]
    assert f"{target}." in answer and "expected a list, got a string of 900,000 characters" in answer
    assert peak < REFUSAL_PEAK


def test_a_list_over_its_bound_is_refused(apps):
    app = apps[0]
    body = request_body(app, ids.MODELS_CURVES, {ids.MODELS_CURVE_PICK: ["tiny-lstm"] * 1001},
                        f"{ids.MODELS_CURVE_PICK}.value")
    status, answer, _ = _post(client(app), body)
    assert status == 400 and "at most 1,000 items" in answer


# --------------------------------------------------------------------------- 10: no 500 on direct posts


def _submit(app, c, **values) -> tuple[int, str]:
    body = request_body(app, ids.JOBS_BANNER, {ids.JOBS_SUBMIT: 1, ids.JOBS_PRESET: "demo-lstm",
                                               ids.JOBS_CORPUS_SOURCE: "builtin", ids.JOBS_CORPUS_BUILTIN: "ptb",
                                               **values}, f"{ids.JOBS_SUBMIT}.n_clicks")
    status, answer, _ = _post(c, body)
    return status, answer


@pytest.mark.parametrize("mode", ["open", "member"])
def test_an_upload_record_sent_as_a_string_is_refused(apps, mode):
    """Item 10: jobs-corpus-upload-id.data as a string raised AttributeError (500)."""
    app = apps[0] if mode == "open" else apps[1]
    status, answer = _submit(app, client(app, None if mode == "open" else "mo"), **{
        ids.JOBS_CORPUS_SOURCE: "upload", ids.JOBS_CORPUS_UPLOADED: "u0123456789"})
    assert status == 400 and "jobs-corpus-upload-id.data: expected an object, got a string" in answer


@pytest.mark.parametrize("mode", ["open", "member"])
def test_a_deeply_nested_vocabulary_is_refused(apps, mode):
    """Item 10: a vocabulary nested 100,000 lists deep raised RecursionError (500) while the body was parsed."""
    app = apps[0] if mode == "open" else apps[1]
    body = request_body(app, ids.JOBS_BYOM_MSG, {ids.JOBS_BYOM_SUBMIT: 1, ids.JOBS_BYOM_VOCAB: fuzzing.DEEP},
                        f"{ids.JOBS_BYOM_SUBMIT}.n_clicks")
    status, answer, _ = _post(client(app, None if mode == "open" else "mo"), body)
    assert status == 400, answer[:300]
    nested = request_body(app, ids.JOBS_BYOM_MSG, {ids.JOBS_BYOM_SUBMIT: 1, ids.JOBS_BYOM_VOCAB: [[[["w"]]]]},
                          f"{ids.JOBS_BYOM_SUBMIT}.n_clicks")
    status, answer, _ = _post(client(app, None if mode == "open" else "mo"), nested)
    assert status == 400 and "jobs-byom-vocab.contents: expected a string, got a list" in answer


@pytest.mark.parametrize("button, model, layer, missing", [
    (ids.EX_CSV_CLUSTERS, "no-such-model", 0, "no-such-model"),
    (ids.EX_CSV_CLUSTERS, "tiny-lstm", 9, "has no analysis of layer 9"),
    (ids.EX_CSV_DETAIL, "no-such-model", 0, "no-such-model"),
])
def test_an_explore_csv_of_a_missing_model_or_analysis_says_so(apps, button, model, layer, missing):
    """Item 10: UnknownModelError / AnalysisMissingError in the CSV downloads were a 500: now the page's alert
    says what is missing, and nothing is downloaded."""
    app = apps[0]
    out = dispatch(app, client(app), ids.EX_DOWNLOAD, {button: 1, ids.EX_MODEL: model, ids.EX_LAYER: layer,
                                                       ids.EX_STATE: "h", ids.EX_K: 4, ids.EX_WORDS: ["the"]},
                   f"{button}.n_clicks")
    assert (ids.EX_DOWNLOAD, "data") not in out
    assert missing in json.dumps(out[(ids.EX_ALERT, "children")])


@pytest.mark.parametrize("model, layer, missing", [("no-such-model", 0, "no-such-model"),
                                                    ("tiny-lstm", 9, "has no analysis of layer 9")])
def test_a_compare_csv_of_a_missing_model_or_analysis_says_so(apps, model, layer, missing):
    app = apps[0]
    out = dispatch(app, client(app), ids.CMP_DOWNLOAD, {
        ids.CMP_CSV: 1, ids.CMP_MODEL_A: model, ids.CMP_LAYER_A: layer, ids.CMP_MODEL_B: "tiny-lstm",
        ids.CMP_LAYER_B: 0, ids.CMP_STATE: "h", ids.CMP_K: 4}, f"{ids.CMP_CSV}.n_clicks")
    assert (ids.CMP_DOWNLOAD, "data") not in out
    assert missing in json.dumps(out[(ids.CMP_ALERT, "children")])


def _jobs(app) -> list:
    from app import context
    from workers import records
    return records.list_jobs(app.server.config[context.SETTINGS_KEY].store, limit=1000)


@pytest.mark.parametrize("mode", ["open", "member"])
def test_a_long_job_name_is_refused_with_a_message_and_never_stored(apps, mode):
    """Item 10: a 200,000-character job name was accepted and stored. Past the transport bound the request is
    refused (400); past the name's own bound (200) the form says so under the field; no job is queued."""
    app = apps[0] if mode == "open" else apps[1]
    c = client(app, None if mode == "open" else "mo")
    before = len(_jobs(app))
    status, answer = _submit(app, c, **{ids.JOBS_NAME: "n" * 200_000})
    assert status == 400 and "jobs-name.value: expected at most 1,024 characters, got 200,000" in answer
    status, answer = _submit(app, c, **{ids.JOBS_NAME: "n" * 201, ids.JOBS_MODEL_ID: "m" * 129})
    assert status == 200, answer[:300]
    out = json.loads(answer)["response"]
    assert "at most 200 characters, got 201" in out[ids.jobs_error("name")]["children"]
    assert "at most 128 characters, got 129" in out[ids.jobs_error("model_id")]["children"]
    assert "Not submitted" in json.dumps(out[ids.JOBS_BANNER])
    assert len(_jobs(app)) == before
