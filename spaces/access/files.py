"""The file core as every door gets it: :func:`space_files` builds a space's
:class:`~spaces.files.storage.SpaceFiles` with the installation's policies in
their order (:mod:`spaces.files.policy`):

1. CFDI retention (:class:`spaces.cfdi.retention.RetentionPolicy`): refuses to
   overwrite, delete, replace or move out of a legal hold a protected CFDI, and
   moves its holds and index rows with a rename;
2. the CFDI index (:class:`spaces.cfdi.index.IndexPolicy`): examines what is
   stored (before the space's lock when it can) and forgets what leaves.

The drive, the portal, the CLI and the jobs build the file core only here, so
every door keeps the same rules. It lives above both ``spaces.files`` and
``spaces.cfdi`` so that neither imports the other's side of it.
"""

from __future__ import annotations

from spaces.cfdi.index import IndexPolicy
from spaces.cfdi.retention import RetentionPolicy
from spaces.core.audit import Actor
from spaces.core.db import Database
from spaces.core.settings import Settings
from spaces.files.policy import Policy
from spaces.files.storage import SpaceFiles

#: The policies of every change, in the order they run (they keep no state).
POLICIES: tuple[Policy, ...] = (RetentionPolicy(), IndexPolicy())


def space_files(settings: Settings, db: Database, space_id: int, space_name: str, *,
                actor: Actor | None = None, max_depth: int = 0) -> SpaceFiles:
    """The file core of one space (cheap: one per request). ``actor``: who
    makes the changes, for the audit log (None: the server itself);
    ``max_depth``: the plan's, when the caller has read it already."""
    return SpaceFiles(settings, db, space_id, space_name, policies=POLICIES, actor=actor,
                      max_depth=max_depth)
