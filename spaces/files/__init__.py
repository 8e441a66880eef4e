"""A space's folder: Windows name rules, the file core (``storage``: reads,
uploads, moves, deletes under the space's guard), quota and its leases, trash,
earlier versions, share links, WebDAV lock rows and the free room on disk.

May import: ``spaces.core``, ``spaces.sat``."""
