"""The operator API's operations, by resource: spaces (list, create, show,
change, usage), members (list, add, remove) and the CFDI index. Each takes a
:class:`Ctx` (the request, checked) and returns (status, JSON body); a domain
refusal is raised as the domain's :class:`~spaces.core.errors.SpaceError`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from resguardo.api.schemas import CFDI_SCHEMA
from spaces.access import pages, service
from spaces.core.audit import Actor
from spaces.core.db import Database
from spaces.core.settings import Settings
from spaces.files import quota

log = logging.getLogger(__name__)


@dataclass
class Ctx:
    settings: Settings
    db: Database
    token: str
    params: dict[str, str]
    address: str | None = None
    query: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def actor(self) -> Actor:
        """Who the audit log names for a change made through the API."""
        return Actor(f"api:{self.token}", self.address, "api")


def _space(settings: Settings, info: service.SpaceInfo) -> dict[str, Any]:
    return {"name": info.name, "tier": info.tier, "status": info.status,
            **quota.as_dict(info.usage), "max_users": info.max_users,
            "owner_email": info.owner_email,
            "paid_until": info.paid_until.isoformat() if info.paid_until else None,
            "drive_url": f"{settings.base_url()}/dav/{info.name}/"}


def _member(m: service.MemberInfo) -> dict[str, Any]:
    return {"username": m.username, "role": m.role}


def _page(page: pages.Page[Any], shape: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    return {"items": [shape(x) for x in page.items], "total": page.total,
            "limit": page.limit, "offset": page.offset, "next_offset": page.next_offset}


def list_spaces(c: Ctx) -> tuple[int, Any]:
    page = pages.spaces(c.db, c.query["limit"], c.query["offset"])
    return 200, _page(page, lambda i: _space(c.settings, i))


def create_space(c: Ctx) -> tuple[int, Any]:
    info = service.create_space(c.settings, c.db, c.body["name"], c.body["tier"],
                                c.body.get("owner_email"), actor=c.actor)
    return 201, _space(c.settings, info)


def show_space(c: Ctx) -> tuple[int, Any]:
    info = service.get_space(c.db, c.params["space"])
    d = _space(c.settings, info)
    d["users"] = pages.member_count(c.db, info.id)
    return 200, d


def change_space(c: Ctx) -> tuple[int, Any]:
    tier, status = c.body.get("tier"), c.body.get("status")
    info = service.get_space(c.db, c.params["space"])
    if tier is not None:
        info = service.change_tier(c.settings, c.db, info.name, tier, actor=c.actor)
    if status is not None:
        info = service.set_status(c.db, info.name, status, actor=c.actor)
    log.info("api: space changed: space=%s tier=%s status=%s token=%s",
             info.name, tier, status, c.token)
    return 200, _space(c.settings, info)


def usage(c: Ctx) -> tuple[int, Any]:
    info = service.get_space(c.db, c.params["space"])
    return 200, quota.as_dict(quota.usage(c.db, info.id))


def list_members(c: Ctx) -> tuple[int, Any]:
    info = service.get_space(c.db, c.params["space"])
    return 200, _page(pages.members(c.db, info.id, c.query["limit"], c.query["offset"]),
                      _member)


def add_member(c: Ctx) -> tuple[int, Any]:
    m = service.add_member(c.db, c.params["space"], c.body["username"], c.body["password"],
                           c.body.get("role") or "editor", actor=c.actor)
    return 201, _member(m)


def remove_member(c: Ctx) -> tuple[int, Any]:
    service.remove_member(c.db, c.params["space"], c.params["username"], actor=c.actor)
    return 204, None


def _cfdi(d: Any) -> dict[str, Any]:
    row = {k: getattr(d, k) for k in CFDI_SCHEMA["properties"]}
    for k in ("ingested_at", "protected_until"):
        if row[k] is not None:
            row[k] = row[k].isoformat(timespec="seconds") + "Z"  # stored in UTC
    row["cancelled"] = bool(row["cancelled"])
    return row


def list_cfdi(c: Ctx) -> tuple[int, Any]:
    info = service.get_space(c.db, c.params["space"])
    q = c.query
    page = pages.cfdi(c.db, info.id, pages.CfdiFilter(
        uuid=q["uuid"], rfc=q["rfc"], date_from=q["date_from"], date_to=q["date_to"]),
        q["limit"], q["offset"])
    return 200, _page(page, _cfdi)
