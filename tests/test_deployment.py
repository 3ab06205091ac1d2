"""Deployment defaults: the example environment turns sign-in on, compose publishes on loopback, the wheel has
the assets."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _env_example() -> tuple[dict[str, str], str]:
    text = (ROOT / ".env.example").read_text()
    pairs = dict(m.groups() for m in re.finditer(r"^([A-Z_]+)=(.*)$", text, re.M))
    return pairs, text


def test_the_example_environment_turns_sign_in_on():
    env, text = _env_example()
    assert env["RNNVIS_AUTH"] == "on"
    assert "RNNVIS_SECRET_KEY" in env and "token_hex" in text      # to be set, with how to make one
    assert env["RNNVIS_COOKIE_SECURE"] == "on" and "plain-HTTP" in text   # and when `off` is for
    assert env["RNNVIS_BIND"] == "127.0.0.1"


def _service(compose: str, name: str) -> str:
    """The text of one service of a compose file (its indented block)."""
    m = re.search(rf"^  {name}:\n((?:    .*\n|\s*\n)*)", compose, re.M)
    assert m, f"no service {name!r} in docker-compose.yml"
    return m.group(1)


def _published_ports(block: str) -> list[str]:
    """Every entry of every ``ports:`` list in a compose block (no YAML library needed for this shape)."""
    ports, inside = [], False
    for line in block.splitlines():
        if line.strip() == "ports:":
            inside = True
        elif inside and line.strip().startswith("- "):
            ports.append(line.strip()[2:].strip().strip('"').strip("'"))
        elif inside and line.strip() and not line.strip().startswith("#"):
            inside = False
    return ports


def test_compose_publishes_only_the_proxy_on_loopback_unless_configured():
    compose = (ROOT / "docker-compose.yml").read_text()
    assert _published_ports(compose) == ["${RNNVIS_BIND:-127.0.0.1}:${RNNVIS_PORT:-8050}:8080"]
    proxy, app = _service(compose, "proxy"), _service(compose, "app")
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in proxy and _published_ports(proxy)
    assert "--bind unix:/run/rnnvis/gunicorn.sock" in app and _published_ports(app) == []   # only the proxy reaches it
    assert "- web:/run/rnnvis" in app and "- web:/run/rnnvis" in proxy
    assert "server unix:/run/rnnvis/gunicorn.sock;" in (ROOT / "deploy" / "nginx.conf").read_text()


def test_proxy_hops_default_matches_the_compose_layout():
    """One proxy (nginx) in front: the app takes the client's address from the last X-Forwarded-For entry."""
    env, _ = _env_example()
    app = _service((ROOT / "docker-compose.yml").read_text(), "app")
    assert env["RNNVIS_PROXY_HOPS"] == "1" and "RNNVIS_PROXY_HOPS: ${RNNVIS_PROXY_HOPS:-1}" in app
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in (ROOT / "deploy" / "nginx.conf").read_text()
