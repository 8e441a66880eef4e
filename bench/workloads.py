"""The workloads: each runs against one server, times only the requests, and
verifies every answer (status, sizes, content) before its number counts."""

from __future__ import annotations

import hashlib
import json
import os
import re
import select
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from lxml import etree

from bench.client import BenchError, Client
from bench.servers import PASSWORD, USER, BenchServer, Resguardo

MiB = 2**20
D = "{DAV:}"
ALLPROP = (b'<?xml version="1.0" encoding="utf-8"?>'
           b'<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>')
#: What Windows Explorer (WebClient) asks for when it lists a folder.
WINDOWS_PROPFIND = (
    b'<?xml version="1.0" encoding="utf-8" ?><D:propfind xmlns:D="DAV:"><D:prop>'
    b"<D:name/><D:parentname/><D:href/><D:ishidden/><D:isreadonly/><D:getcontenttype/>"
    b"<D:contentclass/><D:getcontentlanguage/><D:creationdate/><D:lastaccessed/>"
    b"<D:getlastmodified/><D:getcontentlength/><D:iscollection/><D:isstructureddocument/>"
    b"<D:defaultdocument/><D:displayname/><D:isroot/><D:resourcetype/></D:prop></D:propfind>")
XML_HEADERS = {"Content-Type": 'text/xml; charset="utf-8"'}
LOCK_BODY = (b'<?xml version="1.0" encoding="utf-8" ?><D:lockinfo xmlns:D="DAV:">'
             b"<D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
             b"<D:owner><D:href>OFICINA\\ana</D:href></D:owner></D:lockinfo>")
WIN32_PROPPATCH = (
    b'<?xml version="1.0" encoding="utf-8" ?>'
    b'<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:"><D:set><D:prop>'
    b"<Z:Win32CreationTime>Wed, 15 Mar 2017 10:20:30 GMT</Z:Win32CreationTime>"
    b"<Z:Win32LastAccessTime>Wed, 15 Mar 2017 10:20:30 GMT</Z:Win32LastAccessTime>"
    b"<Z:Win32LastModifiedTime>Wed, 15 Mar 2017 10:20:30 GMT</Z:Win32LastModifiedTime>"
    b"<Z:Win32FileAttributes>00000020</Z:Win32FileAttributes>"
    b"</D:prop></D:set></D:propertyupdate>")
_LENGTH = re.compile(rb"getcontentlength>(\d+)<")


@dataclass(frozen=True)
class Workload:
    key: str
    label: str
    unit: str
    #: True when a bigger number is better (throughput); False for times.
    higher_is_better: bool
    #: Resguardo's speed-up over plain WsgiDAV this workload must reach.
    target: float = 1.0
    resguardo_only: bool = False


WORKLOADS = [
    Workload("put_100m", "Subir 1 archivo de 100 MB", "MiB/s", True, 2.0),
    Workload("get_100m", "Bajar 1 archivo de 100 MB", "MiB/s", True, 2.0),
    Workload("put_4k_c1", "Subir 1 000 archivos de 4 KiB, 1 cliente", "arch/s", True),
    Workload("put_4k_c8", "Subir 1 000 archivos de 4 KiB, 8 clientes", "arch/s", True),
    Workload("get_4k_c1", "Bajar 1 000 archivos de 4 KiB, 1 cliente", "arch/s", True),
    Workload("get_4k_c8", "Bajar 1 000 archivos de 4 KiB, 8 clientes", "arch/s", True),
    Workload("propfind1_1k", "PROPFIND Depth 1, 1 000 entradas (allprop)", "ms", False, 5.0),
    Workload("propfind1_10k", "PROPFIND Depth 1, 10 000 entradas (allprop)", "ms", False, 5.0),
    Workload("propfind1_1k_win", "PROPFIND Depth 1, 1 000 entradas (Explorador de Windows)",
             "ms", False, 5.0),
    Workload("propfind0_c8", "PROPFIND Depth 0, 8 clientes", "pet/s", True),
    Workload("copy", "COPY de archivos pequeños", "op/s", True),
    Workload("move", "MOVE de archivos pequeños", "op/s", True),
    Workload("delete", "DELETE de archivos pequeños", "op/s", True),
    Workload("windows_create", "Alta estilo Windows (PUT 0, LOCK, PROPPATCH, PUT, UNLOCK)",
             "arch/s", True),
    Workload("cfdi_500", "Subir 500 CFDI XML (Resguardo: con índice)", "arch/s", True),
]
BY_KEY = {w.key: w for w in WORKLOADS}


@dataclass
class Sizes:
    """How big each workload is (``--quick`` shrinks them for a smoke run)."""

    big: int = 100 * MiB
    small_count: int = 1000
    small_size: int = 4096
    propfind_small: int = 1000
    propfind_large: int = 10000
    propfind_repeats: int = 5
    depth0_requests: int = 2000
    ops: int = 200
    windows_files: int = 100
    cfdi: int = 500
    scale_files: int = 100_000
    scale_puts: int = 200


@dataclass
class Setup:
    """What every server's run shares: sizes, payloads, and where it writes."""

    sizes: Sizes
    big_payload: bytes = b""
    big_sha: str = ""
    cfdi_dir: Path | None = None
    cfdi_skip: str = ""
    notes: list[str] = field(default_factory=list)


def small_payload(i: int, size: int) -> bytes:
    head = f"archivo {i:06d} ".encode()
    return (head * (size // len(head) + 1))[:size]


def make_tree(folder: Path, count: int, size_of: Callable[[int], int],
              per_folder: int | None = None) -> dict[str, int]:
    """Create ``count`` files directly on disk (not through a server). Returns
    relative path -> size."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i in range(count):
        sub = folder if per_folder is None else folder / f"d{i // per_folder:04d}"
        if per_folder is not None and i % per_folder == 0:
            sub.mkdir(exist_ok=True)
        n = size_of(i)
        name = f"f{i:06d}.txt"
        fd = os.open(os.path.join(sub, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, small_payload(i, n))
        finally:
            os.close(fd)
        out[name if per_folder is None else f"{sub.name}/{name}"] = n
    return out


def new_client(srv: BenchServer, base: str | None = None) -> Client:
    return Client(base or srv.url, USER, PASSWORD)


def mkcol(c: Client, path: str) -> None:
    c.request("MKCOL", path, expect=(201,))


def _parallel(n_clients: int, items: list[int], srv: BenchServer,
              fn: Callable[[Client, int], None]) -> float:
    """Run ``fn(client, item)`` for every item on ``n_clients`` threads, each with
    its own connection; returns the wall time. The first error is re-raised."""
    chunks = [items[i::n_clients] for i in range(n_clients)]
    clients = [new_client(srv) for _ in range(n_clients)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(n_clients + 1)

    def worker(c: Client, chunk: list[int]) -> None:
        barrier.wait()
        try:
            for i in chunk:
                fn(c, i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(c, ch))
               for c, ch in zip(clients, chunks, strict=True)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    for c in clients:
        c.close()
    if errors:
        raise errors[0]
    return elapsed


def _check_file(path: Path, expected: bytes) -> None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BenchError(f"{path} is missing on disk after a successful answer") from None
    if data != expected:
        raise BenchError(f"{path}: {len(data)} bytes on disk, expected {len(expected)}")


# -- workloads -------------------------------------------------------------------------

class Runner:
    """Runs the workloads of one round against one server."""

    def __init__(self, srv: BenchServer, setup: Setup, rnd: int) -> None:
        self.srv = srv
        self.setup = setup
        self.sz = setup.sizes
        self.rnd = rnd
        self.folder = f"r{rnd}"
        self.c = new_client(srv)

    def close(self) -> None:
        self.c.close()

    def prepare(self) -> None:
        mkcol(self.c, self.folder + "/")
        for sub in ("c1", "c8", "copied", "moved", "win", "cfdi"):
            mkcol(self.c, f"{self.folder}/{sub}/")

    # big file
    def put_100m(self) -> float:
        path = f"{self.folder}/grande.bin"
        t0 = time.perf_counter()
        self.c.request("PUT", path, self.setup.big_payload,
                       {"Content-Type": "application/octet-stream"}, expect=(201,))
        dt = time.perf_counter() - t0
        on_disk = self.srv.root / self.folder / "grande.bin"
        if on_disk.stat().st_size != len(self.setup.big_payload) or \
                _sha_file(on_disk) != self.setup.big_sha:
            raise BenchError(f"{on_disk}: stored content differs from what was sent")
        return len(self.setup.big_payload) / MiB / dt

    def get_100m(self) -> float:
        t0 = time.perf_counter()
        _, _, body = self.c.request("GET", f"{self.folder}/grande.bin")
        dt = time.perf_counter() - t0
        if len(body) != len(self.setup.big_payload) or \
                hashlib.sha256(body).hexdigest() != self.setup.big_sha:
            raise BenchError(f"GET grande.bin: {len(body)} bytes, content differs")
        return len(body) / MiB / dt

    # small files
    def _put_small(self, sub: str, clients: int) -> float:
        n, size = self.sz.small_count, self.sz.small_size

        def one(c: Client, i: int) -> None:
            c.request("PUT", f"{self.folder}/{sub}/f{i:05d}.txt", small_payload(i, size),
                      {"Content-Type": "text/plain"}, expect=(201,))

        dt = _parallel(clients, list(range(n)), self.srv, one)
        for i in range(n):
            _check_file(self.srv.root / self.folder / sub / f"f{i:05d}.txt",
                        small_payload(i, size))
        return n / dt

    def _get_small(self, sub: str, clients: int) -> float:
        n, size = self.sz.small_count, self.sz.small_size

        def one(c: Client, i: int) -> None:
            _, _, body = c.request("GET", f"{self.folder}/{sub}/f{i:05d}.txt")
            if body != small_payload(i, size):
                raise BenchError(f"GET f{i:05d}.txt: content differs ({len(body)} bytes)")

        return n / _parallel(clients, list(range(n)), self.srv, one)

    def put_4k_c1(self) -> float:
        return self._put_small("c1", 1)

    def put_4k_c8(self) -> float:
        return self._put_small("c8", 8)

    def get_4k_c1(self) -> float:
        return self._get_small("c1", 1)

    def get_4k_c8(self) -> float:
        return self._get_small("c8", 8)

    # listings
    def _propfind1(self, folder: str, expected: dict[str, int], body: bytes) -> float:
        times = []
        last = b""
        for _ in range(self.sz.propfind_repeats):
            t0 = time.perf_counter()
            _, _, last = self.c.request("PROPFIND", folder + "/", body,
                                        {"Depth": "1", **XML_HEADERS}, expect=(207,))
            times.append(time.perf_counter() - t0)
        verify_listing(last, expected, check_lengths=b"getcontentlength" in body
                       or b"allprop" in body)
        return statistics.median(times) * 1000

    def propfind1_1k(self) -> float:
        return self._propfind1("pf1k", self.setup_listing("pf1k"), ALLPROP)

    def propfind1_10k(self) -> float:
        return self._propfind1("pf10k", self.setup_listing("pf10k"), ALLPROP)

    def propfind1_1k_win(self) -> float:
        return self._propfind1("pf1k", self.setup_listing("pf1k"), WINDOWS_PROPFIND)

    def setup_listing(self, name: str) -> dict[str, int]:
        return LISTINGS[(self.srv.name, name)]

    def propfind0_c8(self) -> float:
        target = "pf1k/f000007.txt"
        want = str(self.setup_listing("pf1k")["f000007.txt"]).encode()

        def one(c: Client, i: int) -> None:
            _, _, body = c.request("PROPFIND", target, ALLPROP, {"Depth": "0", **XML_HEADERS},
                                   expect=(207,))
            m = _LENGTH.search(body)
            if not m or m.group(1) != want:
                raise BenchError(f"PROPFIND Depth 0: wrong getcontentlength in {body[:200]!r}")

        n = self.sz.depth0_requests
        return n / _parallel(8, list(range(n)), self.srv, one)

    # namespace operations on the files put_4k_c1 stored
    def _dest(self, path: str) -> str:
        u = urlsplit(self.srv.url)
        return f"{u.scheme}://{u.netloc}{self.c.url(path)}"

    def copy(self) -> float:
        n = self.sz.ops
        t0 = time.perf_counter()
        for i in range(n):
            self.c.request("COPY", f"{self.folder}/c1/f{i:05d}.txt",
                           headers={"Destination": self._dest(f"{self.folder}/copied/f{i:05d}.txt"),
                                    "Overwrite": "F"}, expect=(201,))
        dt = time.perf_counter() - t0
        for i in range(n):
            _check_file(self.srv.root / self.folder / "copied" / f"f{i:05d}.txt",
                        small_payload(i, self.sz.small_size))
        return n / dt

    def move(self) -> float:
        n = self.sz.ops
        t0 = time.perf_counter()
        for i in range(n):
            self.c.request("MOVE", f"{self.folder}/copied/f{i:05d}.txt",
                           headers={"Destination": self._dest(f"{self.folder}/moved/f{i:05d}.txt"),
                                    "Overwrite": "F"}, expect=(201,))
        dt = time.perf_counter() - t0
        for i in range(n):
            if (self.srv.root / self.folder / "copied" / f"f{i:05d}.txt").exists():
                raise BenchError("MOVE left its source behind")
            _check_file(self.srv.root / self.folder / "moved" / f"f{i:05d}.txt",
                        small_payload(i, self.sz.small_size))
        return n / dt

    def delete(self) -> float:
        n = self.sz.ops
        t0 = time.perf_counter()
        for i in range(n):
            self.c.request("DELETE", f"{self.folder}/moved/f{i:05d}.txt", expect=(204,))
        dt = time.perf_counter() - t0
        left = list((self.srv.root / self.folder / "moved").iterdir())
        if left:
            raise BenchError(f"DELETE left {len(left)} files behind")
        return n / dt

    def windows_create(self) -> float:
        n = self.sz.windows_files
        t0 = time.perf_counter()
        for i in range(n):
            path = f"{self.folder}/win/doc{i:04d}.docx"
            self.c.request("PUT", path, b"", expect=(201,))
            _, h, _ = self.c.request("LOCK", path, LOCK_BODY,
                                     {"Timeout": "Second-3600", **XML_HEADERS}, expect=(200,))
            token = h.get("lock-token", "")
            if not token.startswith("<opaquelocktoken:"):
                raise BenchError(f"LOCK answered no lock token: {h}")
            _, _, body = self.c.request("PROPPATCH", path, WIN32_PROPPATCH,
                                        {"If": f"({token})", **XML_HEADERS}, expect=(207,))
            self.c.request("PUT", path, small_payload(i, self.sz.small_size),
                           {"If": f"({token})"}, expect=(200, 201, 204))
            self.c.request("UNLOCK", path, headers={"Lock-Token": token}, expect=(204,))
        dt = time.perf_counter() - t0
        for i in range(n):
            _check_file(self.srv.root / self.folder / "win" / f"doc{i:04d}.docx",
                        small_payload(i, self.sz.small_size))
        return n / dt

    def cfdi_500(self) -> float:
        src = self.setup.cfdi_dir
        assert src is not None
        manifest = json.loads((src / f"r{self.rnd}" / "manifest.json").read_text())["files"]
        files = [(f["file"], (src / f"r{self.rnd}" / f["file"]).read_bytes())
                 for f in manifest][: self.sz.cfdi]
        t0 = time.perf_counter()
        for name, data in files:
            self.c.request("PUT", f"{self.folder}/cfdi/{name}", data,
                           {"Content-Type": "application/xml"}, expect=(201,))
        dt = time.perf_counter() - t0
        for name, data in files:
            _check_file(self.srv.root / self.folder / "cfdi" / name, data)
        if isinstance(self.srv, Resguardo):
            rows = json.loads(self.srv.cli("cfdi", "list", Resguardo.SPACE, "--all", "--json"))
            indexed = {r["path"] for r in rows}
            missing = [n for n, _ in files if f"/{self.folder}/cfdi/{n}" not in indexed]
            if missing:
                raise BenchError(f"{len(missing)} CFDI uploaded but not indexed, e.g. "
                                 f"{missing[0]}")
        return len(files) / dt


#: (server, listing folder) -> expected {name: size}, filled by prepare_listings.
LISTINGS: dict[tuple[str, str], dict[str, int]] = {}


def prepare_listings(srv: BenchServer, sz: Sizes) -> None:
    """The PROPFIND folders, created directly on disk (sizes vary per file)."""
    for name, count in (("pf1k", sz.propfind_small), ("pf10k", sz.propfind_large)):
        folder = srv.root / name
        LISTINGS[(srv.name, name)] = make_tree(folder, count, lambda i: 100 + i % 900)
        srv.adopt(folder)
    srv.after_disk_change()


def verify_listing(body: bytes, expected: dict[str, int], *, check_lengths: bool) -> None:
    """A Depth 1 answer lists the folder and exactly its members, with their sizes."""
    root = etree.fromstring(body)
    seen: dict[str, str | None] = {}
    for resp in root.iter(f"{D}response"):
        href = unquote(resp.findtext(f"{D}href") or "")
        name = href.rstrip("/").rsplit("/", 1)[-1]
        length = None
        for ps in resp.iter(f"{D}propstat"):
            if " 200 " in (ps.findtext(f"{D}status") or ""):
                el = ps.find(f"{D}prop/{D}getcontentlength")
                if el is not None:
                    length = el.text
        seen[name] = length
    if len(seen) != len(expected) + 1:
        raise BenchError(f"PROPFIND listed {len(seen) - 1} members, expected {len(expected)}")
    for name, size in expected.items():
        if name not in seen:
            raise BenchError(f"PROPFIND did not list {name}")
        if check_lengths and seen[name] != str(size):
            raise BenchError(f"PROPFIND: {name} has length {seen[name]}, expected {size}")


def _sha_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        while chunk := fh.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


def make_cfdi(base: Path, rounds: int, count: int) -> tuple[Path | None, str]:
    """One synthetic CFDI corpus per round (a stamped CFDI is kept write-once, so
    each round uploads new documents). Needs ../shared/tools/make_cfdi.py."""
    tool = Path(__file__).resolve().parent.parent.parent / "shared" / "tools" / "make_cfdi.py"
    if not tool.exists():
        return None, f"{tool} no está (viene junto al repositorio, en ../shared)"
    out = base / "cfdi"
    for r in range(rounds):
        subprocess.run([sys.executable, str(tool), "--out", str(out / f"r{r}"),
                        "--seed", str(1000 + r), "--count", str(count), "--types", "ingreso",
                        "--layout", "flat"], check=True, capture_output=True, timeout=300)
    return out, ""


# -- scaling and memory (Resguardo only) ------------------------------------------------

def prepare_scaling(srv: Resguardo, sz: Sizes) -> None:
    """Two spaces: one with 10 files, one with ``scale_files`` files (1,000 per
    folder), created on disk and then recounted with ``resguardo quota recount``."""
    for space, count in (("escala10", 10), ("escala100k", sz.scale_files)):
        srv.add_space(space, "80G")
        make_tree(srv.files_root(space) / "existentes", count, lambda i: 1024, per_folder=1000)
        srv.recount(space)
        used = int(srv.show(space)["used_files"])  # type: ignore[call-overload]
        if used < count:
            raise BenchError(f"recount of {space}: {used} files, expected {count}+")


def scaling_round(srv: Resguardo, sz: Sizes, rnd: int) -> dict[str, float]:
    """PUT ``scale_puts`` new 4 KiB files into each space, one request to each in
    turn (which goes first alternates), so a burst of disk latency (each upload
    ends in an fsync) falls on both alike; returns files/s per space."""
    spaces = ["escala10", "escala100k"]
    clients = {sp: new_client(srv, srv.space_url(sp)) for sp in spaces}
    folder = f"nuevos-r{rnd}"
    for sp in spaces:
        mkcol(clients[sp], folder + "/")
    spent = dict.fromkeys(spaces, 0.0)
    for i in range(sz.scale_puts):
        for sp in (spaces if (i + rnd) % 2 == 0 else spaces[::-1]):
            t0 = time.perf_counter()
            clients[sp].request("PUT", f"{folder}/n{i:05d}.txt",
                                small_payload(i, sz.small_size), expect=(201,))
            spent[sp] += time.perf_counter() - t0
    out = {}
    for sp in spaces:
        clients[sp].close()
        out[sp] = sz.scale_puts / spent[sp]
        for i in range(sz.scale_puts):
            _check_file(srv.files_root(sp) / folder / f"n{i:05d}.txt",
                        small_payload(i, sz.small_size))
    return out


class RssSampler:
    """Samples a server's RSS every few milliseconds in a thread; ``peak`` is the
    largest value seen (KiB)."""

    def __init__(self, srv: BenchServer, interval: float = 0.005) -> None:
        self.srv, self.interval = srv, interval
        self.peak = srv.rss_kib()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.srv.rss_kib())
            time.sleep(self.interval)

    def __enter__(self) -> RssSampler:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.srv.rss_kib())


def _raw_put(host: str, port: int, path: str, headers: dict[str, str], body_size: int,
             chunked: bool) -> int:
    """Send a PUT whose body the server is expected to refuse, stopping as soon as
    an answer arrives or the server closes; returns the status (0: none read)."""
    s = socket.create_connection((host, port), timeout=60)
    lines = [f"PUT {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    block = b"x" * (256 * 1024)
    sent = 0
    answer = b""
    try:
        while sent < body_size:
            r, _, _ = select.select([s], [], [], 0)
            if r:
                break
            data = block[: min(len(block), body_size - sent)]
            s.sendall(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            sent += len(data)
        else:
            if chunked:
                s.sendall(b"0\r\n\r\n")
        s.settimeout(30)
        answer = s.recv(65536)
    except (BrokenPipeError, ConnectionResetError):
        try:
            answer = s.recv(65536)
        except OSError:
            pass
    finally:
        s.close()
    m = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
    return int(m.group(1)) if m else 0


def refused_upload_memory(srv: Resguardo) -> dict[str, float]:
    """Growth of the drive's RSS (MiB) while uploads that cannot fit are refused
    in an 8 MiB space: a declared 1 GiB body (256 MiB actually sent), a chunked
    body crossing the quota, and a declared 20 MiB body sent whole."""
    srv.add_space("ajustado", "bench-8M")
    u = urlsplit(srv.space_url("ajustado"))
    import base64

    auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    cases = {
        "declarado_1GiB": ({"Content-Length": str(2**30)}, 256 * MiB, False),
        "chunked_64MiB": ({"Transfer-Encoding": "chunked"}, 64 * MiB, True),
        "declarado_20MiB": ({"Content-Length": str(20 * MiB)}, 20 * MiB, False),
    }
    # Log in once first: checking a password with argon2 takes ~19 MiB for a
    # moment (its memory cost), then the credential cache answers. What is
    # measured below is what the refused bodies cost, not the login.
    warm = new_client(srv, srv.space_url("ajustado"))
    warm.request("PROPFIND", "", headers={"Depth": "0"}, expect=(207,))
    warm.close()
    before_usage = srv.show("ajustado")
    out = {}
    for i, (case, (headers, size, chunked)) in enumerate(cases.items()):
        rss0 = srv.rss_kib()
        with RssSampler(srv) as sampler:
            status = _raw_put(u.hostname or "127.0.0.1", u.port or 80,
                              quote(f"{u.path}grande{i}.bin"),
                              {"Authorization": auth, **headers}, size, chunked)
        if status != 507:
            raise BenchError(f"refused upload {case}: status {status}, expected 507")
        out[case] = (sampler.peak - rss0) / 1024
    time.sleep(0.2)
    after = srv.show("ajustado")
    if after["used_bytes"] != before_usage["used_bytes"]:
        raise BenchError(f"refused uploads changed usage: {before_usage} -> {after}")
    left = list(srv.files_root("ajustado").iterdir()) + \
        list((srv.files_root("ajustado").parent / "tmp").iterdir())
    if left:
        raise BenchError(f"refused uploads left files behind: {left}")
    return out
