"""Every registered callback posted through Dash's dispatch with hostile values generated per declared type.

The values come from a seeded generator (tests/app/fuzzing.py) over the specs of app.inputs.SCHEMAS, in open
mode and in hosted mode as a viewer and as a member. For every request: no 500; a hostile value refused (400,
or 413 over the body cap, or the gate's refusal of an action); an answer within a generous time; a bounded
peak of memory allocated while serving it (tracemalloc). A callback input without a declared schema fails
the first test.
"""
from __future__ import annotations

import json
import random
import time
import tracemalloc

import pytest

from app.inputs import SCHEMAS, server_callbacks
from tests.app import fuzzing
from tests.app.hostile_apps import build_apps, client

SEED = 20
#: Generous bounds for one request (the tiny store answers in well under a second).
MAX_SECONDS = 30
MAX_PEAK_BYTES = 256 << 20


@pytest.fixture(scope="module")
def apps(tiny_store, tmp_path_factory):
    return build_apps(tiny_store, tmp_path_factory.mktemp("fuzz"))


def _deps(app) -> set[tuple[str, str]]:
    return {(d["id"], d["property"]) for cb in server_callbacks(app.callback_map).values()
            for d in cb["inputs"] + cb["state"]}


def test_the_schema_table_covers_exactly_the_registered_inputs(apps):
    """A new callback input without a schema fails here (and the guard refuses it at run time); a schema left
    behind by a removed input fails too."""
    registered = set().union(*(_deps(app) for app in apps))
    assert registered - set(SCHEMAS) == set(), "inputs without a declared schema in app/inputs/table.py"
    assert set(SCHEMAS) - registered == set(), "schemas of inputs no callback reads"


class Recorder:
    """Posts bodies, measuring each answer's time and peak allocation; keeps every failed expectation."""

    def __init__(self, client):
        self.client, self.failures, self.count = client, [], 0

    def post(self, text: str, what: str, refused: bool) -> None:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        t0 = time.perf_counter()
        resp = self.client.post("/_dash-update-component", data=text, content_type="application/json")
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] - base
        self.count += 1
        answer = resp.get_data(as_text=True)
        # hosted: the gate refused first (an action above this role, or console queries too fast)
        gate = resp.status_code in (200, 403) and ("Only " in answer or "queries faster than" in answer)
        if resp.status_code >= 500:
            self.failures.append(f"{what}: HTTP {resp.status_code}")
        elif refused and not (resp.status_code in (400, 413) or gate):
            self.failures.append(f"{what}: accepted ({resp.status_code}) {answer[:160]}")
        if seconds > MAX_SECONDS:
            self.failures.append(f"{what}: {seconds:.1f} s")
        if peak > MAX_PEAK_BYTES:
            self.failures.append(f"{what}: {peak / 2**20:.0f} MB allocated")


def _order(app) -> list[str]:
    """Callback keys, those that delete models or users last (they change what the others see)."""
    return sorted(server_callbacks(app.callback_map), key=lambda k: ("admin-" in k, k))


def _envelopes(key: str, cb: dict, base: dict) -> list[tuple[str, str]]:
    """Malformed requests around a well-formed one: (JSON text, what it is)."""
    good = fuzzing.body(key, cb, base)
    other = dict(good, inputs=[{"id": "no-such-id", "property": "value", "value": 1}] + good["inputs"][1:])
    return [(json.dumps(x), w) for x, w in [
        ([good], "a list body"), ("x", "a string body"), (dict(good, output="no-such.output"), "an unknown output"),
        (dict(good, outputs=[]), "no outputs"), (dict(good, inputs=good["inputs"][:-1]), "an input missing"),
        (other, "another component's id"), (dict(good, changedPropIds=[{"a": 1}]), "a dict as changedPropIds"),
        (dict(good, changedPropIds=["{not json.value"]), "an unknown changed id"),
        (dict(good, inputs="x" * 1000), "inputs as a string"),
    ]] + [(fuzzing.encode(dict(good, state=fuzzing.DEEP)), "deeply nested state"), ("{not json", "not JSON")]


def _fuzz(app, client, rng: random.Random, sample: int | None) -> Recorder:
    """Per callback: malformed envelopes, then one hostile and one fitting value for each input and state (for
    ``sample`` of them, and three envelopes, when given)."""
    rec = Recorder(client)
    for key in _order(app):
        cb = app.callback_map[key]
        deps = cb["inputs"] + cb["state"]
        base = {(d["id"], d["property"]): rng.choice(fuzzing.plausible(SCHEMAS[(d["id"], d["property"])], rng))
                for d in deps}
        for text, what in _envelopes(key, cb, base)[:3 if sample else None]:
            rec.post(text, f"{key}: {what}", refused=True)
        for d in rng.sample(deps, min(sample, len(deps))) if sample else deps:
            dk = (d["id"], d["property"])
            spec = SCHEMAS[dk]
            value = rng.choice(fuzzing.hostile(spec, rng))
            body = fuzzing.body(key, cb, {**base, dk: value})
            rec.post(fuzzing.encode(body), f"{key} <- {dk} = {str(value)[:60]!r}", refused=True)
            value = rng.choice(fuzzing.plausible(spec, rng))
            body = fuzzing.body(key, cb, {**base, dk: value}, trigger=rng.randrange(len(cb["inputs"])))
            rec.post(fuzzing.encode(body), f"{key} <- {dk} = {str(value)[:60]!r} (fits)", refused=False)
    return rec


@pytest.mark.parametrize("user", [None, "vera", "mo"])
def test_hostile_values_are_refused_without_a_500_in_bounded_time_and_memory(apps, user):
    open_app, hosted = apps
    app = hosted if user else open_app
    rng = random.Random(f"{SEED}-{user}")
    tracemalloc.start()
    try:  # every input in open mode; two per callback signed in (the gate and the role's body cap differ)
        rec = _fuzz(app, client(app, user), rng, sample=None if user is None else 2)
    finally:
        tracemalloc.stop()
    assert rec.count >= 2 * len(server_callbacks(app.callback_map))
    assert not rec.failures, f"{len(rec.failures)} of {rec.count} requests:\n" + "\n".join(rec.failures[:40])


def test_a_callback_without_a_declared_schema_is_refused_at_run_time(tiny_store):
    """Fail closed: an input the table does not declare is refused (400) before its callback runs."""
    from dash import Input, Output

    from analytics.settings import Settings
    from app import ids
    from app.server import create_app

    app = create_app(Settings(store=tiny_store))  # read only: the callback never runs
    ran = []
    app.callback(Output(ids.MODELS_ALERT, "children"), Input(ids.MODELS_TABLE, "n_clicks"))(ran.append)
    key = f"{ids.MODELS_ALERT}.children"
    resp = client(app).post("/_dash-update-component", json=fuzzing.body(key, app.callback_map[key],
                                                                         {(ids.MODELS_TABLE, "n_clicks"): 1}))
    assert resp.status_code == 400 and "models-table.n_clicks has no declared schema" in resp.json["error"]
    assert ran == []
