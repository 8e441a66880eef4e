"""Names inside a space: the one path normaliser and the rules every new name obeys.

Windows Explorer is the main client, so a name that Windows cannot use, cannot
tell apart from a sibling, or shows as something it is not must never enter a
space, whatever the door (WebDAV, web drive, trash and version restore, backup
restore):

- **Normalisation.** Every path is Unicode NFC (:func:`split_rel`): the NFD
  spelling macOS sends and the NFC one Windows sends are one file.
- **Windows' rules** (:func:`check_new_name`): no ``< > : " / \\ | ? *``, no
  control characters, no trailing dot or space, at most 255 bytes, and none of
  the reserved device names — CON, PRN, AUX, NUL, CONIN$, CONOUT$, COM0-9 and
  LPT0-9 (also with the superscript digits ¹ ² ³, which Windows reads as
  1 2 3) — in any case, with any extension and with dots or spaces before it
  (``lpt²``, ``Com¹.txt``, ``nul .tar.gz``).
- **Nothing invisible** (:data:`INVISIBLE`, :data:`INVISIBLE_CHARS`): format
  characters (category Cf: U+202E right-to-left override, zero-width spaces
  and joiners, U+FEFF…), line and paragraph separators, surrogates and the
  other characters that show as nothing (combining grapheme joiner, Hangul
  fillers, variation selectors) make a name look like another
  (``factura\\u202Efdp.exe`` shows as ``facturaexe.pdf``) in Explorer, the web
  drive and the audit log; nor may a name end in any kind of space.
- **No twins** (:func:`twin_in`): Windows (and macOS) compare names without
  regard to case or to the Unicode spelling of accents, so a name is refused
  next to a sibling that differs only in those (``Factura.txt`` beside
  ``factura.txt``): Explorer would show one and open the other. Nor beside a
  sibling it only looks like (``Fаctura.txt`` with a Cyrillic а, a full-width
  ``Ｆ``): a person would open, sign or delete the wrong one.

The folders a twin is looked for in are listed by the store the caller passes
(:mod:`spaces.files.store`): this module touches no file itself.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

from spaces.core.errors import InvalidName, NameClash
from spaces.files.confusables import TO_ASCII
from spaces.files.store import Store

MAX_NAME_BYTES = 255

#: Device names Windows reserves, with or without an extension (compared in lower case).
WINDOWS_RESERVED = frozenset({
    "con", "prn", "aux", "nul", "conin$", "conout$",
    *(f"{dev}{digit}" for dev in ("com", "lpt") for digit in "0123456789¹²³"),
})
WINDOWS_FORBIDDEN_CHARS = frozenset('<>:"/\\|?*') | {chr(c) for c in range(32)}
#: Unicode categories never allowed in a name: controls (Cc), format characters
#: (Cf), surrogates (Cs), line (Zl) and paragraph (Zp) separators.
INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
#: Characters of other categories that show as nothing (Unicode's
#: Default_Ignorable_Code_Point beyond Cf: the combining grapheme joiner,
#: Hangul fillers, variation selectors...) plus the blank braille pattern.
INVISIBLE_CHARS = frozenset(
    [chr(c) for c in (0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x2800, 0x3164, 0xFFA0)]
    + [chr(c) for c in range(0x180B, 0x1810)] + [chr(c) for c in range(0xFE00, 0xFE10)]
    + [chr(c) for c in range(0xFFF0, 0xFFF9)] + [chr(c) for c in range(0xE0100, 0xE01F0)])


def split_rel(rel: str) -> list[str]:
    """The names along ``rel`` ("/a/b" inside a space), each in Unicode NFC.

    Raises InvalidName for a ``..`` segment, a NUL byte or a backslash. Empty
    and ``.`` segments are dropped. The one normaliser of paths: the drive,
    the web drive, holds and the CLI all go through it.
    """
    parts = []
    for seg in rel.split("/"):
        if seg in ("", "."):
            continue
        if seg == ".." or "\x00" in seg or "\\" in seg:
            raise InvalidName(f"Ruta no válida: '{rel}'.")
        parts.append(unicodedata.normalize("NFC", seg))
    return parts


def canonical_rel(rel: str) -> str:
    """``rel`` as the space's records store it: '/a/b' in NFC ('/' for the root)."""
    return "/" + "/".join(split_rel(rel))


def _reserved_stem(name: str) -> str:
    """What Windows compares with its device names: the part before the first
    dot, without the spaces before that dot, in lower case."""
    return name.split(".", 1)[0].rstrip(" ").lower()


def check_new_name(name: str) -> None:
    """Refuse (InvalidName, 400) a name Windows cannot use or that shows as
    something else (see the module docstring). Names that already exist are
    not re-examined: only a name about to be created or given."""
    if not name or name in (".", ".."):
        raise InvalidName("El nombre está vacío.")
    if any(ch in WINDOWS_FORBIDDEN_CHARS for ch in name):
        raise InvalidName(
            f"El nombre '{name}' contiene caracteres que Windows no admite "
            '(< > : " / \\ | ? * o de control).'
        )
    hidden = [ch for ch in name
              if unicodedata.category(ch) in INVISIBLE or ch in INVISIBLE_CHARS]
    if hidden:
        codes = ", ".join(sorted({f"U+{ord(ch):04X}" for ch in hidden}))
        shown = "".join(ch for ch in name if ch not in hidden)
        raise InvalidName(
            f"El nombre '{shown}' contiene caracteres invisibles o de control ({codes}) "
            "que pueden hacerlo parecer otro; escríbalo sin ellos.")
    if name[-1] == "." or name[-1].isspace():
        raise InvalidName(f"El nombre '{name}' no puede terminar en punto ni en espacio.")
    if _reserved_stem(name) in WINDOWS_RESERVED:
        raise InvalidName(f"'{name}' es un nombre reservado de Windows; elija otro.")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise InvalidName("El nombre es demasiado largo (máximo 255 bytes).")


def fold(name: str) -> str:
    """The form in which two names are the same to Windows and macOS, or to a
    person reading them: without regard to case or to how an accent is
    spelled (canonical caseless match: NFD, case fold, NFD), to compatibility
    forms (NFKC: full-width and mathematical letters, ligatures), to letters
    of other scripts that look like Latin ones (Unicode's confusables,
    :data:`spaces.files.confusables.TO_ASCII`: Cyrillic а, Greek ο...), and with any
    kind of space as a space (a no-break space looks like one). Errs towards
    calling names the same."""
    folded = unicodedata.normalize("NFD", unicodedata.normalize(
        "NFKC", unicodedata.normalize("NFKC", name).casefold())).translate(TO_ASCII)
    return "".join(" " if ch.isspace() else ch for ch in folded)


def windows_fold(name: str) -> str:
    """Only what Windows itself compares: case and the spelling of accents
    (backups hold names to this: older spaces may hold look-alikes)."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", name).casefold())


def twin_in(store: Store, folder: Path, name: str, *, besides: Path | None = None
            ) -> str | None:
    """The name of an entry of ``folder`` that differs from ``name`` but that
    Windows takes for the same (see :func:`fold`), or None. ``besides`` is
    an entry that does not count (the source of a rename: ``Factura.txt`` may
    become ``factura.txt``). A missing folder has no entries."""
    key = fold(name)
    skip = besides.name if besides is not None and besides.parent == folder else None
    try:
        for e in store.scandir(folder):
            n = e.name
            if n == name or n == skip:
                continue
            # One directory read per new name, so the common case is cheap:
            # an ASCII name folds to its lower case.
            if (n.lower() == key) if n.isascii() and n.isprintable() else (fold(n) == key):
                return n
    except (FileNotFoundError, NotADirectoryError):
        return None
    return None


def resolve_spelling(store: Store, root: Path, rel: str) -> str | None:
    """``rel`` (inside ``root``) as the space spells it, for a path a person
    typed (an operator's legal hold): each name that does not exist exactly is
    matched to the one entry Windows takes for it (case, accent spelling:
    :func:`windows_fold`). None when nothing is there, or through a symlink."""
    cur, out = root, []
    for part in split_rel(rel):
        p = cur / part
        if not _lexists(store, p):
            key = windows_fold(part)
            try:
                found = [e.name for e in store.scandir(cur) if windows_fold(e.name) == key]
            except (FileNotFoundError, NotADirectoryError):
                return None
            if len(found) != 1:
                return None
            part, p = found[0], cur / found[0]
        if store.is_link(p):
            return None
        out.append(part)
        cur = p
    return "/" + "/".join(out)


def _lexists(store: Store, p: Path) -> bool:
    """Whether anything (a symbolic link included) is at ``p``, as os.path.lexists."""
    try:
        store.lstat(p)
    except (OSError, ValueError):
        return False
    return True


def check_no_twin(store: Store, folder: Path, name: str, *, besides: Path | None = None
                  ) -> None:
    """Raise NameClash (409) if ``folder`` holds a twin of ``name`` (:func:`twin_in`)."""
    twin = twin_in(store, folder, name, besides=besides)
    if twin is None:
        return
    if windows_fold(twin) == windows_fold(name):
        raise NameClash(
            f"Ya existe «{twin}» en esta carpeta y Windows no distingue «{name}» de ese "
            "nombre (mayúsculas, minúsculas o acentos escritos de otra forma); elija otro "
            "nombre o cambie el que ya existe.")
    raise NameClash(
        f"Ya existe «{twin}» en esta carpeta y «{name}» se confunde con ese nombre a la "
        "vista (letras de otro alfabeto o de otra forma que se ven iguales); elija otro "
        "nombre o cambie el que ya existe.")
