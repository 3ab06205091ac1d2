"""``rnnvis users ...`` and ``rnnvis sql --sandbox``: the hosted-mode parts of the command line.

Kept apart from :mod:`app.cli` (which wires them in) so that each stays short.
"""
from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path


def _settings(args):
    import dataclasses

    from analytics.settings import Settings
    s = Settings.from_env()
    return dataclasses.replace(s, store=Path(args.store)) if getattr(args, "store", None) else s


def _users(args):
    from app.hosted.auth import UserStore, users_path
    return UserStore(users_path(_settings(args)))


def _cli_user() -> str:
    """Who runs the command (``RNNVIS_USER``, else the login name): the audit log's "who"."""
    import os
    return os.environ.get("RNNVIS_USER") or getpass.getuser()


def _password(args) -> str:
    if args.password_stdin:
        pw = sys.stdin.readline().rstrip("\r\n")
    else:
        pw = getpass.getpass("password: ")
        if getpass.getpass("again: ") != pw:
            raise ValueError("the passwords differ")
    return pw


def _user_cmd(fn):
    def run(args) -> int:
        from app.hosted.auth import AuthError
        try:
            return fn(args)
        except AuthError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    return run


@_user_cmd
def cmd_users_add(args) -> int:
    users = _users(args)
    users.add(args.name, _password(args), args.role, created_by=_cli_user())
    print(f"added {args.name} ({args.role}) to {users.db}")
    return 0


@_user_cmd
def cmd_users_list(args) -> int:
    users = _users(args)
    rows = users.list()
    if args.format == "json":
        import json
        print(json.dumps(rows, indent=1))
        return 0
    for u in rows:
        print(f"{u['name']:24s} {u['role']:7s} {str(u.get('created_at') or '')[:19]}  by {u.get('created_by') or '?'}")
    if not rows:
        print(f"no users in {users.db}", file=sys.stderr)
    return 0


@_user_cmd
def cmd_users_remove(args) -> int:
    _users(args).remove(args.name, by=_cli_user())
    print(f"removed {args.name}")
    return 0


@_user_cmd
def cmd_users_set_role(args) -> int:
    _users(args).set_role(args.name, args.role, by=_cli_user())
    print(f"{args.name} is now {args.role}")
    return 0


@_user_cmd
def cmd_users_passwd(args) -> int:
    _users(args).set_password(args.name, _password(args))
    print(f"password of {args.name} changed (their sessions ended)")
    return 0


def add_user_commands(sub) -> None:
    from app.hosted.auth import ROLES
    p = sub.add_parser("users", help="manage the users of hosted mode (RNNVIS_AUTH=on)")
    usub = p.add_subparsers(dest="users_command", required=True)
    q = usub.add_parser("add", help="add a user (asks for the password, or reads one line with --password-stdin)")
    q.add_argument("name")
    q.add_argument("--role", choices=ROLES, default="viewer")
    q.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    q.set_defaults(fn=cmd_users_add)
    q = usub.add_parser("list", help="list users and roles")
    q.add_argument("--format", choices=("table", "json"), default="table")
    q.set_defaults(fn=cmd_users_list)
    q = usub.add_parser("remove", help="remove a user (ends their sessions)")
    q.add_argument("name")
    q.set_defaults(fn=cmd_users_remove)
    q = usub.add_parser("set-role", help="change a user's role (ends their sessions)")
    q.add_argument("name")
    q.add_argument("role", choices=ROLES)
    q.set_defaults(fn=cmd_users_set_role)
    q = usub.add_parser("passwd", help="set a user's password")
    q.add_argument("name")
    q.add_argument("--password-stdin", action="store_true")
    q.set_defaults(fn=cmd_users_passwd)


def add_sandbox_flags(p: argparse.ArgumentParser) -> None:
    from analytics.sandbox import DEFAULT_MAX_ROWS, DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT_S
    p.add_argument("--sandbox", action="store_true",
                   help="run as the SQL console does: read-only, views only, time, row and memory limits")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per query (with --sandbox)")
    p.add_argument("--max-rows", type=int, default=DEFAULT_MAX_ROWS, help="row cap (with --sandbox)")
    p.add_argument("--memory-limit", default=DEFAULT_MEMORY_LIMIT, help="DuckDB memory limit (with --sandbox)")


def _plain(value):
    """``value`` as something ``json.dumps`` takes: bytes as hex, numpy values as Python ones, NaN as null."""
    import math
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return _plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def json_records(df) -> str:
    """A frame as JSON records (``--format json``), whatever its cells hold (bytes, nested values)."""
    try:
        return df.to_json(orient="records", date_format="iso")
    except (OverflowError, ValueError, TypeError):  # e.g. bytes nested in a struct: ujson cannot encode them
        import json
        return json.dumps([{str(k): _plain(v) for k, v in row.items()} for row in df.to_dict(orient="records")],
                          ensure_ascii=False)


def sql_sandboxed(args, print_frame) -> int:
    from analytics.sandbox import SandboxError, run_sandboxed
    try:
        res = run_sandboxed(_settings(args).store, args.query, timeout_s=args.timeout, max_rows=args.max_rows,
                            memory_limit=args.memory_limit)
    except SandboxError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print_frame(res.frame, args.format)
    if res.truncated:
        print(res.message, file=sys.stderr)
    return 0
