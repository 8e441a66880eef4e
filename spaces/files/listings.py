"""Folders whose listing Windows Explorer refuses, found before a customer does.

Windows' WebDAV client (the WebClient service) refuses a folder listing whose
PROPFIND answer is larger than the registry value ``FileAttributesLimitInBytes``
(default 1,000,000 bytes): the folder then shows empty or fails to open, and an
accountant whose month of CFDI "vanished" believes the files are lost. The drive
answers Explorer's PROPFIND with a few hundred bytes per entry, so with Windows'
defaults a folder of about 1,200 CFDI-named files is already past the limit.

:func:`oversized_folders` walks a space's files and estimates, for each folder,
the size of the drive's answer to Explorer: a fixed part per entry plus its
href and name, as davserver/propfind.py writes them. tests/test_big_folders.py
holds the estimate against the drive's real answer. The status file and the
portal's space page name the folders past the default limit. The walk is cached
for a few minutes per space: the status file is rendered on every listing of a
space's root. It lists through the store (:mod:`spaces.files.store`).
"""

from __future__ import annotations

import mimetypes
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote
from xml.sax.saxutils import escape

from spaces.core.settings import Settings
from spaces.files.store import store_for

#: Windows' default FileAttributesLimitInBytes.
WINDOWS_DEFAULT_LIMIT = 1_000_000
#: The registry value that lifts it (its maximum, a DWORD).
WINDOWS_MAX_LIMIT = 0xFFFFFFFF
#: Bytes of the answer to Explorer's PROPFIND for one file, besides its href, its
#: name (displayname) and its MIME type; a folder's entry is a little smaller.
ENTRY_OVERHEAD = 647
#: Bytes of the answer besides its entries (the XML head and the folder itself).
ANSWER_OVERHEAD = 900
#: Entries one walk looks at, at most: a space beyond that is named as far as seen.
MAX_WALK = 500_000
#: How long a walk's result is reused for the same space.
CACHE_SECONDS = 300.0
#: The drive's URL path prefix of a space's files.
DAV_PREFIX = "/dav/"
_HREF_SAFE = "/!*'(),$-_|."  # as the drive quotes hrefs


@dataclass(frozen=True)
class OversizedFolder:
    """A folder whose listing Windows refuses with its default settings."""

    path: str  # "/" + path inside the space
    entries: int
    answer_bytes: int  # estimated size of the drive's answer to Explorer


def listing_bytes(space: str, folder: str, names: list[tuple[str, bool]]) -> int:
    """Estimated size of the drive's answer to Explorer's PROPFIND Depth 1 on
    ``folder`` ("/" + path) of ``space``, given its entries (name, is folder)."""
    base = quote(f"{DAV_PREFIX}{space}{folder.rstrip('/')}/", safe=_HREF_SAFE)
    total = ANSWER_OVERHEAD + len(base)
    for name, is_dir in names:
        mime = "" if is_dir else (mimetypes.guess_type(name)[0] or "application/octet-stream")
        total += (ENTRY_OVERHEAD + len(base) + len(quote(name, safe=_HREF_SAFE))
                  + len(escape(name).encode()) + len(mime))
    return total


def oversized_folders(settings: Settings, space: str, root: Path,
                      limit: int = WINDOWS_DEFAULT_LIMIT) -> list[OversizedFolder]:
    """The folders of ``root`` (a space's files) whose listing would be larger than
    ``limit``, largest first. Never follows a symbolic link."""
    store = store_for(settings)
    found: list[OversizedFolder] = []
    seen = 0
    pending = [("/", root)]
    while pending and seen < MAX_WALK:
        rel, path = pending.pop()
        names: list[tuple[str, bool]] = []
        try:
            for e in store.scandir(path):
                is_dir = e.is_dir(follow_symlinks=False)
                names.append((e.name, is_dir))
                if is_dir:
                    pending.append((f"{rel.rstrip('/')}/{e.name}", Path(e.path)))
        except OSError:
            continue  # gone or unreadable meanwhile: nothing to say about it
        seen += len(names)
        size = listing_bytes(space, rel, names)
        if size > limit:
            found.append(OversizedFolder(rel, len(names), size))
    return sorted(found, key=lambda f: (-f.answer_bytes, f.path))


_cache: dict[str, tuple[float, list[OversizedFolder]]] = {}
_cache_lock = threading.Lock()


def oversized_folders_cached(settings: Settings, space: str, root: Path
                             ) -> list[OversizedFolder]:
    """:func:`oversized_folders`, walked at most once every ``CACHE_SECONDS`` per space."""
    key = str(root)
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None and now - hit[0] < CACHE_SECONDS:
        return hit[1]
    result = oversized_folders(settings, space, root)
    with _cache_lock:
        _cache[key] = (now, result)
    return result
