"""Every value that reaches a server callback has a declared type and bound, checked once before it runs.

- :mod:`app.inputs.specs`: the types (text, number, flag, list, record, free-form JSON) and their check;
- :mod:`app.inputs.table`: :data:`SCHEMAS`, the spec of each (component id, property) a callback reads;
- :mod:`app.inputs.guard`: the check of every ``/_dash-update-component`` request against Dash's callback
  map and the table (a 400 with what was wrong, before the callback runs), installed by ``create_app``.

One mechanism, chosen for coverage: the guard reads Dash's callback map at request time, so a callback is
covered however it was registered, and an input the table does not declare is refused (fail closed). A
declarative table rather than pydantic models: pydantic is not a dependency, six small types say all the
pages need, and their check never recurses past the declared depth (see :mod:`app.inputs.specs`).

See docs/security-inputs.md.
"""
from app.inputs.guard import BoundedJSONProvider, check_body, install, server_callbacks
from app.inputs.specs import AnyOf, Flag, Json, ListOf, Number, Record, Spec, Text, describe
from app.inputs.table import MAX_MATCHED, SCHEMAS, dep_key

__all__ = ["AnyOf", "BoundedJSONProvider", "Flag", "Json", "ListOf", "MAX_MATCHED", "Number", "Record", "SCHEMAS",
           "Spec", "Text", "check_body", "dep_key", "describe", "install",
           "server_callbacks"]
