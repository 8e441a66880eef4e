"""Several drive nodes behind one address: two ``resguardo serve --only drive``
processes on different ports share one data folder, one PostgreSQL database
and Redis locks, as in docs/deploy.md. Whatever node a request lands on, it
sees the same files, the same locks and the same quota."""

from __future__ import annotations

import os
import re
import threading
import uuid
from pathlib import Path

import pytest
import requests

KIB = 1024
PASSWORD = "secreto-ana-1"
LOCKINFO = (b'<?xml version="1.0" encoding="utf-8"?>'
            b'<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
            b"<D:locktype><D:write/></D:locktype><D:owner>ana</D:owner></D:lockinfo>")


def _config(redis_url: str, key_prefix: str) -> str:
    return f"""
[locks]
backend = "redis"
redis_url = "{redis_url}"
key_prefix = "{key_prefix}"

[tiers.T100K]
quota = "100K"
max_users = 3
cfdi_years = 1
"""


@pytest.fixture
def nodes(make_server, pg_database, redis_url):
    """Nodes A and B of one installation and a fresh space. The machine's Redis
    is shared with every test running beside this one: the pair gets a key
    prefix of its own and the space a unique name."""
    prefix = f"resguardo:mn-{uuid.uuid4().hex[:12]}:"
    config = _config(redis_url, prefix)
    a = make_server(config, name="nodeA", db_url=pg_database)
    b = make_server(config, name="nodeB", share_with=a)
    assert a.data == b.data and a.db_url == b.db_url
    a.serve_args = b.serve_args = ["--only", "drive"]
    a.start()
    b.start()
    assert a.url != b.url
    space = f"mn{uuid.uuid4().hex[:10]}"
    a.create_space(space, "T100K")
    a.add_user(space, "ana", PASSWORD, role="admin")  # an admin: the tests lock folders too
    return a, b, space


def session() -> requests.Session:
    s = requests.Session()
    s.auth = ("ana", PASSWORD)
    return s


def lock(s: requests.Session, url: str, depth: str = "0") -> str:
    r = s.request("LOCK", url, data=LOCKINFO,
                  headers={"Content-Type": "application/xml", "Depth": depth,
                           "Timeout": "Second-600"})
    assert r.status_code in (200, 201), (r.status_code, r.text)
    return r.headers["Lock-Token"].strip("<>")


def on_disk(root: Path, *, reserve: bool = False) -> tuple[int, int]:
    """(bytes, files and folders) actually stored for a space: its files (what
    the plan counts) or, with ``reserve``, its trash and earlier versions."""
    nbytes = count = 0
    areas = (root.parent / "trash", root.parent / "versions") if reserve else (root,)
    for area in areas:
        for dirpath, dirnames, filenames in os.walk(area):
            count += len(dirnames) + len(filenames)
            nbytes += sum(os.lstat(os.path.join(dirpath, f)).st_size for f in filenames)
    return nbytes, count


def test_lock_taken_through_node_a_is_honoured_by_node_b(nodes):
    a, b, space = nodes
    s = session()
    token = lock(s, a.dav(space, "libro.xlsx"))

    # Node B refuses writes without the token, with 423 ...
    assert s.put(b.dav(space, "libro.xlsx"), data=b"otro").status_code == 423
    assert s.delete(b.dav(space, "libro.xlsx")).status_code == 423
    assert s.request("MOVE", b.dav(space, "libro.xlsx"),
                     headers={"Destination": b.dav(space, "x.xlsx")}).status_code == 423
    # ... shows the lock ...
    r = s.request("PROPFIND", b.dav(space, "libro.xlsx"), headers={"Depth": "0"},
                  data=b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>'
                       b"<D:lockdiscovery/></D:prop></D:propfind>")
    assert r.status_code == 207 and token in r.text
    # ... accepts the token taken on node A, and refreshes it.
    r = s.put(b.dav(space, "libro.xlsx"), data=b"version 2",
              headers={"If": f"(<{token}>)"})
    assert r.status_code in (200, 204), r.text
    r = s.request("LOCK", b.dav(space, "libro.xlsx"),
                  headers={"If": f"(<{token}>)", "Timeout": "Second-600"})
    assert r.status_code == 200, r.text
    # Unlocked on B, node A lets anybody write again.
    r = s.request("UNLOCK", b.dav(space, "libro.xlsx"), headers={"Lock-Token": f"<{token}>"})
    assert r.status_code == 204
    assert s.put(a.dav(space, "libro.xlsx"), data=b"version 3").status_code in (200, 204)
    assert s.get(b.dav(space, "libro.xlsx")).content == b"version 3"


def test_folder_lock_on_node_a_protects_its_members_on_node_b(nodes):
    a, b, space = nodes
    s = session()
    assert s.request("MKCOL", a.dav(space, "Cierre")).status_code == 201
    token = lock(s, a.dav(space, "Cierre"), depth="infinity")
    assert s.put(b.dav(space, "Cierre/balanza.xlsx"), data=b"x").status_code == 423
    r = s.put(b.dav(space, "Cierre/balanza.xlsx"), data=b"x",
              headers={"If": f"<{a.dav(space, 'Cierre')}> (<{token}>)"})
    assert r.status_code == 201, r.text


def test_locked_member_keeps_its_folder_from_deletion_on_the_other_node(nodes):
    """A folder name with glob characters ('[copia]', common on Windows) must not
    hide the locks of its members from a DELETE of the folder on another node."""
    a, b, space = nodes
    s = session()
    for folder in ("Facturas [copia]", "Recibos [2024]"):
        assert s.request("MKCOL", a.dav(space, folder)).status_code == 201
        assert s.put(a.dav(space, f"{folder}/f.xml"), data=b"<x/>").status_code == 201
        token = lock(s, a.dav(space, f"{folder}/f.xml"))
        r = s.delete(b.dav(space, folder))
        assert r.status_code in (207, 423), (folder, r.status_code, r.text)
        g = s.get(b.dav(space, f"{folder}/f.xml"))
        assert g.content == b"<x/>", (folder, r.status_code, r.text, g.status_code)
        r = s.request("UNLOCK", b.dav(space, f"{folder}/f.xml"),
                      headers={"Lock-Token": f"<{token}>"})
        assert r.status_code == 204
        assert s.delete(b.dav(space, folder)).status_code == 204


def test_folder_cannot_be_locked_on_one_node_while_a_member_is_locked_on_the_other(nodes):
    a, b, space = nodes
    s = session()
    assert s.request("MKCOL", a.dav(space, "Pólizas [2024]")).status_code == 201
    assert s.put(a.dav(space, "Pólizas [2024]/p.xml"), data=b"<p/>").status_code == 201
    token = lock(s, a.dav(space, "Pólizas [2024]/p.xml"))
    r = s.request("LOCK", b.dav(space, "Pólizas [2024]"), data=LOCKINFO,
                  headers={"Content-Type": "application/xml", "Depth": "infinity"})
    assert r.status_code == 423, r.text
    s.request("UNLOCK", a.dav(space, "Pólizas [2024]/p.xml"),
              headers={"Lock-Token": f"<{token}>"})
    lock(s, b.dav(space, "Pólizas [2024]"), depth="infinity")


def test_concurrent_locks_of_one_file_through_both_nodes_grant_exactly_one(nodes):
    a, b, space = nodes
    assert session().put(a.dav(space, "carrera.docx"), data=b"x").status_code == 201
    for round_ in range(5):
        barrier = threading.Barrier(6)
        codes: list[int] = []

        def take(node) -> None:
            s = session()
            barrier.wait()
            codes.append(s.request("LOCK", node.dav(space, "carrera.docx"), data=LOCKINFO,
                                   headers={"Content-Type": "application/xml"}).status_code)

        ts = [threading.Thread(target=take, args=((a, b)[i % 2],)) for i in range(6)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        assert sorted(codes) == [200] + [423] * 5, (round_, codes)
        r = session().request("PROPFIND", a.dav(space, "carrera.docx"),
                              headers={"Depth": "0"})
        tokens = re.findall(r"opaquelocktoken:[0-9a-zA-Z-]+", r.text)
        assert len(set(tokens)) == 1
        session().request("UNLOCK", b.dav(space, "carrera.docx"),
                          headers={"Lock-Token": f"<{tokens[0]}>"})


def test_concurrent_locks_of_a_new_name_through_both_nodes_give_the_loser_423(nodes):
    """Office and Explorer LOCK a name before they write it: two clients doing
    so at once on two nodes get one lock, and the other a 423 (locked), never a
    405 that says a file cannot be locked there."""
    a, b, space = nodes
    for round_ in range(20):
        barrier = threading.Barrier(2)
        codes: list[int] = []
        url = f"nuevo{round_}.docx"

        def take(node) -> None:
            s = session()
            barrier.wait()
            codes.append(s.request("LOCK", node.dav(space, url), data=LOCKINFO,
                                   headers={"Content-Type": "application/xml"}).status_code)

        ts = [threading.Thread(target=take, args=(n,)) for n in (a, b)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        assert sorted(codes) in ([201, 423], [200, 423]), (round_, codes)


def test_concurrent_uploads_through_both_nodes_never_exceed_the_quota(nodes):
    """Ten 30 KiB uploads race through both nodes into a 100 KiB space: exactly
    three fit, the rest get 507, and the counters equal what is on disk."""
    a, b, space = nodes
    barrier = threading.Barrier(10)
    results: dict[str, int] = {}

    def upload(i: int) -> None:
        node = (a, b)[i % 2]
        s = session()
        name = f"f{i}.bin"
        if i % 4 < 2:  # declared length
            barrier.wait()
            r = s.put(node.dav(space, name), data=b"q" * (30 * KIB))
        else:  # chunked, no length
            def body():
                barrier.wait()
                for _ in range(30):
                    yield b"q" * KIB
            r = s.put(node.dav(space, name), data=body())
        results[name] = r.status_code

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results.values()) == [201] * 3 + [507] * 7, results
    info = a.show(space)
    assert info["used_bytes"] == 90 * KIB <= info["quota_bytes"]
    assert (info["used_bytes"], info["used_files"]) == on_disk(a.files_root(space))


def test_concurrent_overwrites_of_one_file_through_both_nodes_keep_counters_exact(nodes):
    """Two nodes replacing the same file at the same moment must each account for
    what the other stored, or usage drifts below what is on disk (and the space
    could then hold more than its quota)."""
    a, b, space = nodes
    # Room for the earlier versions every overwrite keeps (10 per file, by default).
    a.cli("space", "tier", space, "4G")
    s = session()
    assert s.put(a.dav(space, "mismo.bin"), data=b"0" * (60 * KIB)).status_code == 201
    for round_ in range(15):
        barrier = threading.Barrier(2)
        codes: list[int] = []

        def put(node, size: int) -> None:
            body = bytes([65 + round_ % 26]) * size

            def gen():
                barrier.wait()
                yield body

            codes.append(session().put(node.dav(space, "mismo.bin"), data=gen(),
                                       headers={"X-Expected-Entity-Length": str(size)}
                                       ).status_code)

        sizes = (10 * KIB, 50 * KIB) if round_ % 2 else (50 * KIB, 10 * KIB)
        ts = [threading.Thread(target=put, args=(n, z)) for n, z in zip((a, b), sizes)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        assert all(c in (201, 204) for c in codes), codes
        info = a.show(space)
        assert (info["used_bytes"], info["used_files"]) == on_disk(a.files_root(space)), \
            f"round {round_}"
        assert (info["reserve_used_bytes"], info["reserve_used_files"]) == on_disk(
            a.files_root(space), reserve=True), f"round {round_}"


def test_file_written_through_a_is_listed_and_readable_through_b_at_once(nodes):
    a, b, space = nodes
    s = session()
    body = os.urandom(20 * KIB)
    assert s.request("MKCOL", a.dav(space, "Nóminas")).status_code == 201
    assert s.put(a.dav(space, "Nóminas/enero.pdf"), data=body).status_code == 201
    r = s.request("PROPFIND", b.dav(space, "Nóminas/"), headers={"Depth": "1"})
    assert r.status_code == 207 and "enero.pdf" in requests.utils.unquote(r.text)
    assert s.get(b.dav(space, "Nóminas/enero.pdf")).content == body
    # Dead properties and renames travel too.
    r = s.request("PROPPATCH", a.dav(space, "Nóminas/enero.pdf"),
                  data=b'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" '
                       b'xmlns:R="urn:resguardo-test"><D:set><D:prop><R:estado>revisado'
                       b"</R:estado></D:prop></D:set></D:propertyupdate>")
    assert r.status_code == 207
    r = s.request("PROPFIND", b.dav(space, "Nóminas/enero.pdf"), headers={"Depth": "0"},
                  data=b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:" '
                       b'xmlns:R="urn:resguardo-test"><D:prop><R:estado/></D:prop>'
                       b"</D:propfind>")
    assert "revisado" in r.text
    r = s.request("MOVE", b.dav(space, "Nóminas/enero.pdf"),
                  headers={"Destination": b.dav(space, "Nóminas/enero-2026.pdf")})
    assert r.status_code == 201
    assert s.get(a.dav(space, "Nóminas/enero.pdf")).status_code == 404
    assert s.get(a.dav(space, "Nóminas/enero-2026.pdf")).content == body
    info = b.show(space)
    # The file, and its dead property, which counts toward the plan too (name and value).
    assert info["used_files"] == 2
    props = int(info["used_bytes"]) - len(body)  # type: ignore[call-overload]
    assert len("{urn:resguardo-test}estado" "revisado") < props < 200, info
    assert "sin diferencias" in b.cli("quota", "recount", space).stdout


def test_restarting_a_node_keeps_the_other_nodes_upload_in_progress(nodes):
    """A node that starts cleans up only what crashed uploads left, never the
    temporary file of an upload another live node is still receiving."""
    a, b, space = nodes
    started = threading.Event()
    release = threading.Event()
    result: list[int] = []

    def slow_body():
        yield b"a" * KIB
        started.set()
        release.wait(30)
        yield b"b" * KIB

    t = threading.Thread(target=lambda: result.append(session().put(
        a.dav(space, "lento.bin"), data=slow_body()).status_code))
    t.start()
    assert started.wait(10)
    tmp = a.data / "spaces" / space / "tmp"
    for _ in range(50):
        if any(tmp.iterdir()):
            break
        threading.Event().wait(0.1)
    assert any(tmp.iterdir())
    b.restart()
    release.set()
    t.join(30)
    assert result == [201]
    assert session().get(b.dav(space, "lento.bin")).content == b"a" * KIB + b"b" * KIB
    info = b.show(space)
    assert (info["used_bytes"], info["used_files"]) == on_disk(a.files_root(space))
