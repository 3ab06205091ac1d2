"""Admin: manage users (hosted mode) and delete models. Admins only; the skeleton is the same for everyone
(Dash validates callbacks against it) and the content is filled by a callback that checks the role."""
from __future__ import annotations

import dash
import flask
from dash import Input, Output, State, callback, dcc, html

from app import context, ids
from app.hosted import auth
from app.logic import admin as logic
from app.logic import audit as audit_logic
from app.logic.common import alert, error_alert

dash.register_page(__name__, path="/admin", name="Admin", title="RNNVis · Admin", order=5, role="admin")

_ACTIONS = {ids.ADMIN_ADD: "add", ids.ADMIN_SET_ROLE: "set-role", ids.ADMIN_REMOVE: "remove",
            ids.ADMIN_DELETE_MODEL: "delete-model"}
_ROLE_OPTS = [{"label": r, "value": r} for r in auth.ROLES]


def _labelled(text: str, child) -> html.Div:
    """A form field with its visible label (placeholders vanish once typed in, and screen readers need a name)."""
    return html.Div([html.Label(text, htmlFor=child.id, className="admin-label"), child], className="admin-field")


def layout(**_query) -> html.Div:
    users = html.Section([
        html.Div([html.H4("Users"), html.Span("viewer: browse, SQL · member: also jobs and sentences · "
                                              "admin: also delete models, manage users", className="muted small")],
                 className="card-head"),
        html.Div(id=ids.ADMIN_USERS),
        html.Div([_labelled("New user", dcc.Input(id=ids.ADMIN_NEW_NAME, type="text", placeholder="new user",
                                                  maxLength=64)),
                  _labelled("Role", dcc.Dropdown(id=ids.ADMIN_NEW_ROLE, options=_ROLE_OPTS, value="viewer",
                                                 clearable=False)),
                  _labelled("Password", dcc.Input(id=ids.ADMIN_NEW_PASSWORD, type="password",
                                                  placeholder="password (8+ characters)", maxLength=auth.MAX_PASSWORD)),
                  html.Button("Add user", id=ids.ADMIN_ADD, n_clicks=0, className="btn btn-primary")],
                 className="admin-form"),
        html.Div([_labelled("User", dcc.Dropdown(id=ids.ADMIN_USER, options=[], placeholder="user")),
                  _labelled("New role", dcc.Dropdown(id=ids.ADMIN_ROLE, options=_ROLE_OPTS, value="member",
                                                     clearable=False)),
                  html.Button("Set role", id=ids.ADMIN_SET_ROLE, n_clicks=0, className="btn"),
                  dcc.ConfirmDialogProvider(html.Button("Remove user", className="btn"), id=ids.ADMIN_REMOVE,
                                            message="Remove this user? Their sessions end at once.")],
                 className="admin-form"),
    ], className="card")
    models = html.Section([
        html.Div([html.H4("Delete a model"), html.Span("its tables and checkpoint; cannot be undone",
                                                       className="muted small")], className="card-head"),
        html.Div([_labelled("Model", dcc.Dropdown(id=ids.ADMIN_MODEL, options=[], placeholder="model")),
                  dcc.ConfirmDialogProvider(html.Button("Delete model", className="btn"), id=ids.ADMIN_DELETE_MODEL,
                                            message="Delete this model's tables and checkpoint?")],
                 className="admin-form"),
    ], className="card")
    log = html.Section([
        html.Div([html.H4("Audit log"), html.Span("jobs submitted, cancelled or failed; models deleted or imported; "
                                                  "users added, removed or re-roled; notes removed; throttled "
                                                  f"sign-ins (newest {audit_logic.PAGE_ROWS})",
                                                  className="muted small")],
                 className="card-head"),
        html.Div([_labelled("Action", dcc.Dropdown(id=ids.ADMIN_AUDIT_ACTION, placeholder="any action",
                                                   options=[{"label": a, "value": a} for a in audit_logic.ACTIONS])),
                  _labelled("Who", dcc.Input(id=ids.ADMIN_AUDIT_WHO, type="text", placeholder="user", maxLength=64,
                                             debounce=True)),
                  _labelled("Target or details contain", dcc.Input(id=ids.ADMIN_AUDIT_TEXT, type="text",
                                                                   placeholder="job, model, user, address",
                                                                   maxLength=200, debounce=True)),
                  html.Button("Refresh", id=ids.ADMIN_AUDIT_REFRESH, n_clicks=0, className="btn")],
                 className="admin-form"),
        html.Div(id=ids.ADMIN_AUDIT),
    ], className="card")
    return html.Div([html.Main([html.Div(id=ids.ADMIN_MSG), html.Div([users, models, log], id=ids.ADMIN_PANEL,
                                                                     style={"display": "none"})],
                               className="main main-wide")], className="page page-admin")


def _users():
    return flask.current_app.config.get(auth.USERS_KEY) if context.settings().auth else None


@callback(Output(ids.ADMIN_MSG, "children"), Output(ids.ADMIN_USERS, "children"), Output(ids.ADMIN_USER, "options"),
          Output(ids.ADMIN_MODEL, "options"), Output(ids.ADMIN_PANEL, "style"),
          Input(ids.ADMIN_ADD, "n_clicks"), Input(ids.ADMIN_SET_ROLE, "n_clicks"),
          Input(ids.ADMIN_REMOVE, "submit_n_clicks"), Input(ids.ADMIN_DELETE_MODEL, "submit_n_clicks"),
          State(ids.ADMIN_NEW_NAME, "value"), State(ids.ADMIN_NEW_ROLE, "value"),
          State(ids.ADMIN_NEW_PASSWORD, "value"), State(ids.ADMIN_USER, "value"), State(ids.ADMIN_ROLE, "value"),
          State(ids.ADMIN_MODEL, "value"))
def _on_admin(_a, _s, _r, _d, new_name, new_role, new_password, user, role, model):
    users, reader = _users(), context.reader()
    action = _ACTIONS.get(dash.ctx.triggered_id) if dash.ctx.triggered_id else None
    try:
        msg = logic.act(users, reader, action, new_name=new_name, new_role=new_role, new_password=new_password,
                        user=user, role=role, model=model)
    except auth.PermissionDenied as e:
        return alert(str(e)), "", [], [], {"display": "none"}
    except (auth.AuthError, ValueError, LookupError) as e:
        msg = alert(str(e))
    except Exception as e:  # noqa: BLE001 - the callback edge
        msg = error_alert(e, reader)
    return msg, logic.users_table(users), logic.user_options(users), logic.model_options(reader), {}


@callback(Output(ids.ADMIN_AUDIT, "children"), Input(ids.ADMIN_AUDIT_ACTION, "value"),
          Input(ids.ADMIN_AUDIT_WHO, "value"), Input(ids.ADMIN_AUDIT_TEXT, "value"),
          Input(ids.ADMIN_AUDIT_REFRESH, "n_clicks"))
def _on_audit(action, who, text, _n):
    """The audit log, filtered (and read again at each Refresh). Admins only."""
    try:
        auth.require_role("admin")
    except auth.PermissionDenied:
        return ""
    try:
        return audit_logic.table(audit_logic.frame(context.settings().store, action=action or None,
                                                   who=(who or "").strip() or None, text=(text or "").strip() or None))
    except Exception as e:  # noqa: BLE001 - the callback edge
        return error_alert(e, context.reader())

