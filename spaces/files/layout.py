"""Where a space's files live, and the names the file core makes up.

Layout: ``<data_dir>/spaces/<name>/files`` is the drive's root and
``<data_dir>/spaces/<name>/tmp`` holds uploads in progress. Both live on the
same filesystem, so an upload streams into ``tmp`` and replaces its target
with one atomic ``rename``: a failed, aborted or refused write leaves the
previous version byte-identical and nothing behind. (They sit in a sibling
folder rather than next to the target so that listings never show them and a
restart clears them without walking the whole tree.) ``trash`` and
``versions``, siblings too, hold deleted items and earlier contents of files
(see :mod:`spaces.files.trash` and :mod:`spaces.files.versions`).

Names made up here: an upload's temporary file ("up-<node>-<pid>-<random>",
several drive nodes may share one data folder), the token of an item under
``trash`` or ``versions``, and what an editor's temporary file looks like.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

from spaces.core.settings import Settings
from spaces.files.store import store_for

#: This machine, in the names of its uploads' temporary files (several drive
#: nodes may share one data folder): "up-<node>-<pid>-<random>".
NODE = "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:64] or "node"
#: A temporary file untouched this long belongs to no live upload (the server
#: times a silent connection out after 60 s), whichever node wrote it.
STALE_UPLOAD_SECONDS = 3600

#: The folders of a space, siblings on one filesystem.
AREAS = ("files", "tmp", "trash", "versions")


def space_dir(settings: Settings, name: str) -> Path:
    return settings.data_path / "spaces" / name


def ensure_space_dirs(settings: Settings, name: str) -> None:
    base = space_dir(settings, name)
    store = store_for(settings)
    for area in AREAS:
        store.mkdir(base / area, parents=True, exist_ok=True)


def upload_name() -> str:
    """A new name for an upload's temporary file in ``tmp``."""
    return f"up-{NODE}-{os.getpid()}-{os.urandom(8).hex()}"


#: Names Office and other editors give the temporary files of a save-by-rename:
#: ``~WRL0002.tmp``, ``~$libro.xlsx``, ``doc.bak``, Excel's ``3A2B1C00``.
_TEMPORARY_NAME = re.compile(r"^(~.*|.*\.(tmp|bak|wbk)|[0-9A-Fa-f]{8})$", re.IGNORECASE)


def is_temporary_name(name: str) -> bool:
    """Whether ``name`` looks like an editor's temporary or backup file."""
    return bool(_TEMPORARY_NAME.match(name))


def new_token() -> str:
    """The name of one item under ``trash`` or ``versions``."""
    return os.urandom(16).hex()
