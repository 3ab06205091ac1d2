"""One callback called through Dash's own dispatch (POST /_dash-update-component), as the renderer calls it."""
from __future__ import annotations

import json


def _key(cid) -> str:
    return json.dumps(cid, sort_keys=True, separators=(",", ":"), default=str) if isinstance(cid, dict) else cid


def request_body(app, output_id, values: dict, changed: str) -> dict:
    """The JSON the renderer posts to call the callback that writes ``output_id``, the inputs and states taking
    ``values`` (by id, or by ``(id, prop)``); ``changed`` is the ``id.prop`` that fired."""
    def outs(v) -> list:
        return v["output"] if isinstance(v["output"], list) else [v["output"]]
    writers = [k for k, v in app.callback_map.items() if any(_key(o.component_id) == _key(output_id) for o in outs(v))]
    # an output several callbacks write (allow_duplicate): the one that ``changed`` fires
    fired = [k for k in writers if any(f"{_key(i['id'])}.{i['property']}" == changed
                                       for i in app.callback_map[k]["inputs"])]
    key = (fired or writers)[0]
    cb = app.callback_map[key]

    lookup = {((_key(k[0]), k[1]) if isinstance(k, tuple) else _key(k)): v for k, v in values.items()}

    def val(dep):
        return lookup.get((_key(dep["id"]), dep["property"]), lookup.get(_key(dep["id"])))
    body = {"output": key,
            "outputs": [{"id": o.component_id, "property": o.component_property} for o in outs(cb)]
            if key.startswith("..") else {"id": cb["output"].component_id, "property": cb["output"].component_property},
            "inputs": [{"id": i["id"], "property": i["property"], "value": val(i)} for i in cb["inputs"]],
            "state": [{"id": s["id"], "property": s["property"], "value": val(s)} for s in cb["state"]],
            "changedPropIds": [changed]}
    return body


def dispatch(app, client, output_id, values: dict, changed: str) -> dict:
    """Call the callback that writes ``output_id`` as :func:`request_body` says (it must answer 200).
    Returns {(id key, prop): value}."""
    r = client.post("/_dash-update-component", json=request_body(app, output_id, values, changed))
    assert r.status_code == 200, r.get_data(as_text=True)[:800]
    return {(cid, prop): v for cid, props in r.json["response"].items() for prop, v in props.items()}
