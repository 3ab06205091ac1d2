"""SQL console: a query editor over the store's views, sandboxed (see :mod:`analytics.sandbox`).

Layout and wiring only; the logic is in :mod:`app.logic.sql`. Saved queries
belong to the signed-in user (``local`` in open mode).
"""
from __future__ import annotations

import dash
import dash_ag_grid as dag
from dash import Input, Output, State, callback, dcc, html

from app import context, ids
from app.hosted import auth
from app.logic import sql as logic

dash.register_page(__name__, path="/sql", name="SQL", title="RNNVis · SQL", order=4)


def layout(**_query) -> html.Div:
    panel = html.Aside([
        html.H3("SQL"),
        html.P("Read-only queries on the store's views; 10 s, 10,000 rows and 8 MB per query, two at a time.",
               className="muted small"),
        html.Div([html.Label("Examples"),
                  dcc.Dropdown(id=ids.SQL_EXAMPLES, options=logic.example_options(), placeholder="pick an example",
                               clearable=True)], className="control"),
        html.Div([html.Label("Saved queries (yours)"),
                  dcc.Dropdown(id=ids.SQL_SAVED, options=[], placeholder="open a saved query", clearable=True)],
                 className="control"),
        html.Div([dcc.Input(id=ids.SQL_SAVE_NAME, type="text", placeholder="name", maxLength=100, debounce=False,
                            className="sql-save-name"),
                  html.Button("Save", id=ids.SQL_SAVE, n_clicks=0, className="btn"),
                  html.Button("Delete", id=ids.SQL_DELETE, n_clicks=0, className="btn")], className="button-row"),
        html.Div(id=ids.SQL_SAVE_MSG),
        html.Hr(),
        html.H4("Schema"),
        html.Div(logic.schema_browser(), id=ids.SQL_SCHEMA),
    ], className="panel")
    main = html.Main([
        html.Section([
            html.Div([html.H4("Query"),
                      html.Span("DuckDB SQL · one statement", className="muted small")], className="card-head"),
            dcc.Textarea(id=ids.SQL_EDITOR, value=logic.DEFAULT_SQL, className="sql-editor", spellCheck=False,
                         maxLength=logic.saved_queries.MAX_SQL_CHARS, style={"width": "100%", "height": "14em",
                                                                             "fontFamily": "monospace"}),
            html.Div([html.Button("Run", id=ids.SQL_RUN, n_clicks=0, className="btn btn-primary"),
                      html.Button("Download CSV", id=ids.SQL_CSV, n_clicks=0, className="btn"),
                      html.Button("Download Parquet", id=ids.SQL_PARQUET, n_clicks=0, className="btn")],
                     className="button-row"),
        ], className="card"),
        dcc.Loading(html.Div(id=ids.SQL_MSG), type="dot"),
        html.Section([
            # AG Grid (Dash's DataTable is deprecated): pages of 25 rows, click a header to sort, shift-click
            # to add a second key; columns fit their content up to 28em and can be resized (every column is
            # drawn, so that the ones off screen are measured too).
            dag.AgGrid(id=ids.SQL_TABLE, columnDefs=[], rowData=[], className="sql-grid", style={"height": None},
                       defaultColDef={"sortable": True, "resizable": True, "maxWidth": 448, "minWidth": 64},
                       dashGridOptions={"pagination": True, "paginationPageSize": 25,
                                        "paginationPageSizeSelector": False, "domLayout": "autoHeight",
                                        "rowHeight": 30, "headerHeight": 34,
                                        "tooltipShowDelay": 500, "tooltipShowMode": "whenTruncated",
                                        "enableCellTextSelection": True, "ensureDomOrder": True,
                                        "suppressFieldDotNotation": True, "suppressColumnVirtualisation": True}),
        ], className="card"),
        dcc.Store(id=ids.SQL_LAST),
        dcc.Download(id=ids.SQL_DOWNLOAD),
    ], className="main")
    return html.Div([panel, main], className="page page-sql")


def _user_name() -> str:
    user = auth.current_user()
    return user.name if user else "anonymous"


@callback(Output(ids.SQL_TABLE, "columnDefs"), Output(ids.SQL_TABLE, "rowData"), Output(ids.SQL_MSG, "children"),
          Output(ids.SQL_LAST, "data"), Output(ids.SQL_TABLE, "columnSize"), Input(ids.SQL_RUN, "n_clicks"),
          State(ids.SQL_EDITOR, "value"), prevent_initial_call=True)
def _on_run(_n, sql):
    # the grid sizes its columns once and then clears columnSize: ask again for each new result
    return *logic.run_for_grid(context.settings().store, sql, _user_name()), "autoSize"


@callback(Output(ids.SQL_EDITOR, "value"), Input(ids.SQL_EXAMPLES, "value"), Input(ids.SQL_SAVED, "value"),
          prevent_initial_call=True)
def _on_pick(example, saved):
    if dash.ctx.triggered_id == ids.SQL_SAVED:
        sql = logic.saved_sql(context.settings().store, _user_name(), saved) if saved else None
    else:
        sql = logic.example_sql(example)
    return sql if sql is not None else dash.no_update


@callback(Output(ids.SQL_SAVED, "options"), Output(ids.SQL_SAVE_MSG, "children"),
          Input(ids.SQL_SAVE, "n_clicks"), Input(ids.SQL_DELETE, "n_clicks"),
          State(ids.SQL_SAVE_NAME, "value"), State(ids.SQL_EDITOR, "value"), State(ids.SQL_SAVED, "value"))
def _on_save(_s, _d, name, sql, picked):
    root, user = context.settings().store, _user_name()
    trigger = dash.ctx.triggered_id
    if trigger == ids.SQL_SAVE:
        return logic.save(root, user, name, sql)
    if trigger == ids.SQL_DELETE:
        return logic.delete(root, user, picked)
    return logic.saved_options(root, user), ""


@callback(Output(ids.SQL_DOWNLOAD, "data"), Output(ids.SQL_MSG, "children", allow_duplicate=True),
          Input(ids.SQL_CSV, "n_clicks"), Input(ids.SQL_PARQUET, "n_clicks"), State(ids.SQL_LAST, "data"),
          prevent_initial_call=True)
def _on_download(_c, _p, sql):
    if not sql:
        return dash.no_update, logic.alert("Run a query first.", kind="info")
    fmt = "parquet" if dash.ctx.triggered_id == ids.SQL_PARQUET else "csv"
    try:
        return logic.download(context.settings().store, sql, fmt, _user_name()), dash.no_update
    except logic.SandboxError as e:
        return dash.no_update, logic.alert(str(e))
