"""A space's folder: Windows name rules, the file core (``storage``: writes,
moves, deletes under the space's guard, on ``folder``: paths, entries, limits,
the one erase; ``upload``: a write in progress; ``policy``: the ordered
policies other rooms hand it; ``layout``, ``guard``, ``entries``,
``placeholders``), the store every file operation goes through, quota and its
leases, trash (and the reserve), earlier versions, share links, WebDAV lock
rows and the free room on disk.

May import: ``spaces.core``, ``spaces.sat``."""
