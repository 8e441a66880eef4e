"""What the trash and versions tests share: a space on a live server, its counters
as the CLI shows them, what is really on disk, and the recount they must equal."""

from __future__ import annotations

import json

import requests
from windows_helpers import propfind

SMALL = """
[tiers.T100K]
quota = "100K"
max_users = 3
cfdi_years = 1
"""
KIB = 1024


def open_space(make_server, config: str = "", tier: str = "4G"):
    srv = make_server(SMALL + config).start()
    srv.create_space("acme", tier)
    srv.add_user("acme", "ana", "secreto-ana-1", role="admin")
    s = requests.Session()
    s.auth = ("ana", "secreto-ana-1")
    return srv, s


def usage(srv) -> tuple[int, int]:
    """What the plan counts: the current files."""
    d = srv.show("acme")
    return int(d["used_bytes"]), int(d["used_files"])


def held(srv) -> tuple[int, int]:
    """What the reserve holds: the trash and the earlier versions."""
    d = srv.show("acme")
    return int(d["reserve_used_bytes"]), int(d["reserve_used_files"])


def on_disk(srv, area: str) -> tuple[int, int]:
    """(bytes, files and folders) under one area of the space: files, trash, versions."""
    entries = list((srv.data / "spaces" / "acme" / area).rglob("*"))
    return sum(p.stat().st_size for p in entries if p.is_file()), len(entries)


def safety_net(srv) -> tuple[int, int]:
    parts = [on_disk(srv, a) for a in ("trash", "versions")]
    return sum(b for b, _ in parts), sum(n for _, n in parts)


def assert_usage_is_a_recount(srv) -> None:
    assert usage(srv) == on_disk(srv, "files")
    assert held(srv) == safety_net(srv)
    out = srv.cli("quota", "recount", "acme").stdout
    assert "sin diferencias" in out, out


def trash_list(srv) -> list[dict]:
    return json.loads(srv.cli("trash", "list", "acme", "--json").stdout)


def versions_of(srv, path: str) -> list[dict]:
    return json.loads(srv.cli("versions", "list", "acme", path, "--json").stdout)


def listed(s, url: str) -> set[str]:
    from urllib.parse import unquote, urlsplit

    return {unquote(urlsplit(h).path).rstrip("/").rsplit("/", 1)[1]
            for h in propfind(s, url, "1")}
