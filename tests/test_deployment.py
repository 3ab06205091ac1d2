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


def _published_ports(compose: str) -> list[str]:
    """Every entry of every ``ports:`` list in a compose file (no YAML library needed for this shape)."""
    ports, inside = [], False
    for line in compose.splitlines():
        if line.strip() == "ports:":
            inside = True
        elif inside and line.strip().startswith("- "):
            ports.append(line.strip()[2:].strip().strip('"').strip("'"))
        elif inside and line.strip() and not line.strip().startswith("#"):
            inside = False
    return ports


def test_compose_publishes_the_dashboard_on_loopback_unless_configured():
    ports = _published_ports((ROOT / "docker-compose.yml").read_text())
    assert ports == ["${RNNVIS_BIND:-127.0.0.1}:${RNNVIS_PORT:-8050}:8050"]
