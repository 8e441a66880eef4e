"""The drive: WebDAV at ``/dav/<space>/`` on WsgiDAV, without Flask.

Owns what is WebDAV about a request: Basic sign-in (``auth``), the request's
space and role and domain refusals as plain Spanish answers (``request``),
request bodies (``xmlbody``), locks and their storages (``locks``,
``lockstorage``), dead properties (``properties``), the resources and the
provider WsgiDAV walks (``resources``, ``provider``, ``statusfile``) and the
fast PROPFIND (``propfind``); ``app`` assembles them.

May import: ``spaces`` (every room) and WsgiDAV; never ``portal`` nor Flask
(import-linter contracts in pyproject.toml).
"""
