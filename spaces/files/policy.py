"""The policies of the file core: what other rooms decide about a change, at
fixed points of it, in a fixed order.

:class:`~spaces.files.storage.SpaceFiles` (and the trash and versions working
through its :class:`~spaces.files.folder.SpaceFolder`) runs the list of
policies it was built with, first to last, at each point of a change
(SabreDAV's before/after events are the model, but the order is code: the list
is handed in by whoever builds the file core, never subscribed to):

- **prepare**, outside the space's guard: look at content about to be stored
  (an upload's temporary file, a trash item or version coming back) while
  nobody waits; what it returns is handed back at *after_store*.
- **before_write**, **before_delete**, **before_replace**, **before_move**,
  under the guard before anything changes: a policy refuses by raising a
  :class:`~spaces.core.errors.SpaceError`; *before_delete* may instead name
  what must stay (a folder's delete then leaves those files and the folders
  leading to them).
- **after_store**, **after_move**, **after_delete**, under the guard right
  after the change: keep what a policy derives from the files in step.

Between them the file core itself disposes of what a change replaces or
deletes (versions claim a save-by-rename, otherwise the trash) and records
the change in the audit log. This module imports nothing of the file core:
a policy sees the space it acts for as a :class:`Folder` (what it needs of a
:class:`~spaces.files.folder.SpaceFolder`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from spaces.core.audit import Actor
from spaces.core.db import Database
from spaces.core.settings import Settings
from spaces.files.store import Store

#: Bytes of a file's start the file core keeps while an upload streams and
#: hands to the policies (enough to tell an XML document, in UTF-32 too).
HEAD_BYTES = 1024


class Folder(Protocol):
    """The space a change happens in, as a policy sees it."""

    settings: Settings
    db: Database
    space_id: int
    space_name: str
    #: Who makes the change (for the audit log); None: the server itself.
    actor: Actor | None
    store: Store


class Kept(Protocol):
    """Something a policy keeps in place when its folder is deleted."""

    @property
    def path(self) -> str: ...

    def message(self) -> str:
        """Why it stayed, in plain Spanish."""
        ...


class Policy:
    """One policy: every hook does nothing unless a subclass says otherwise.
    ``rel`` is a path as the space knows it ('/a/b.xml', NFC)."""

    def prepare(self, files: Folder, src: Path, name: str,
                head: bytes | None = None) -> Any:
        """Outside the guard: ``src`` (a file or a tree, nobody else's) will be
        stored as ``name``; ``head``: its first bytes, when already read."""
        return None

    def before_write(self, files: Folder, rel: str) -> None:
        """The file at ``rel`` is about to get new content (refuse by raising)."""

    def before_delete(self, files: Folder, rel: str, *, is_dir: bool) -> Sequence[Kept]:
        """The item at ``rel`` is about to be deleted: refuse by raising, or
        name what must stay below a folder."""
        return ()

    def before_replace(self, files: Folder, rel: str) -> None:
        """The item at ``rel`` is about to be replaced whole by a MOVE or COPY
        (refuse by raising)."""

    def before_move(self, files: Folder, src: str, dst: str) -> None:
        """``src`` is about to be renamed to ``dst`` (refuse by raising)."""

    def after_store(self, files: Folder, rel: str, fs_path: Path, *, new: bool,
                    head: bytes | None, prepared: Any, root: Path) -> None:
        """New content is at ``rel`` (``fs_path``; ``new``: no file was there
        before). ``head``: its first bytes if known; ``prepared``: what
        :meth:`prepare` returned for ``root``, the file or tree it was given
        as (``fs_path`` is ``root`` or below it)."""

    def after_move(self, files: Folder, src: str, dst: str) -> None:
        """``src`` (and everything below it) is now ``dst``."""

    def after_delete(self, files: Folder, rel: str, *, is_dir: bool,
                     kept: frozenset[str] = frozenset()) -> None:
        """The item at ``rel`` left the space's files (into the trash, a
        version or for good), but for the paths in ``kept``."""
