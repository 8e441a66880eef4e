"""The web drive: a space's files in the browser, for its users (members).

A member logs in with the space, user and password of the drive and gets a
file manager: browse, upload (several files, drag and drop, progress), download
(a folder as a streamed ZIP), create folders, rename, move and delete. Every
change goes through :class:`spaces.files.storage.SpaceFiles`, the same functions the
WebDAV drive calls, and the write rule is :func:`spaces.access.service.check_may_write`,
so quota (507), roles (403), CFDI protection (403 with the date) and the
space's status apply identically on both. Every path goes through
``SpaceFiles.resolve`` (which refuses ``..`` and symlinks out of the space).

Its areas, one module each, all on the ``drive`` blueprint (``/unidad``) of
``common`` but share links' visitor pages (their own ``share`` blueprint):

- ``common``    the blueprint, the member using it, paths from forms, refusals
- ``signin``    signing in with the drive's password
- ``listing``   the folder page
- ``download``  files and folders (a ZIP) sent to the browser
- ``changes``   new folder, rename, move, delete
- ``upload``    one file per request, its bytes as the raw body
- ``trash``     the trash and earlier versions
- ``sharing``   share links, made here and opened by visitors
"""

from __future__ import annotations

from flask import Flask
from flask_wtf.csrf import CSRFProtect


def register(app: Flask, csrf: CSRFProtect) -> None:
    """Both blueprints on ``app``, with every area's views (an area adds its views
    to the blueprint when it is imported)."""
    from portal.drive import (  # noqa: F401 - imported for the views they add
        changes,
        download,
        listing,
        sharing,
        signin,
        trash,
        upload,
    )
    from portal.drive.common import bp

    # Raw-body uploads: the form hook would parse the body; the view checks
    # X-CSRFToken itself.
    csrf.exempt(upload.upload)
    app.register_blueprint(bp)
    app.register_blueprint(sharing.share_bp)
