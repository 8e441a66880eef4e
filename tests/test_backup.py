"""`resguardo backup` / `resguardo restore`: a live backup restored on a fresh
installation gives back every byte, counter, user, property and CFDI protection."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest
import requests
from test_cfdi import one_cfdi

# Its outcome depends on the database: runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.db

PROP = (b'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:R="urn:resguardo-test">'
        b"<D:set><D:prop><R:estado>revisado</R:estado></D:prop></D:set></D:propertyupdate>")
GET_PROP = (b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:R="urn:resguardo-test">'
            b"<D:prop><R:estado/></D:prop></D:propfind>")


def session(user: str = "ana", password: str = "secreto-ana-1") -> requests.Session:
    s = requests.Session()
    s.auth = (user, password)
    return s


def disk_hashes(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def counters(srv, space: str) -> tuple[int, int]:
    d = srv.show(space)
    return d["used_bytes"], d["used_files"]


@pytest.fixture
def source(make_server, tmp_path):
    """A running installation with two spaces full of what matters."""
    xml, entry = one_cfdi(tmp_path)
    srv = make_server(name="origen").start()
    for space in ("acme", "beta"):
        srv.create_space(space, "4G")
        srv.add_user(space, "ana", "secreto-ana-1", role="admin")
    srv.add_user("acme", "luis", "secreto-luis-1", role="reader")
    s = session()
    dav = srv.dav
    assert s.request("MKCOL", dav("acme", "Contabilidad")).status_code == 201
    assert s.request("MKCOL", dav("acme", "Contabilidad/Año 2026")).status_code == 201
    assert s.request("MKCOL", dav("acme", "vacía")).status_code == 201
    files = {
        "Contabilidad/Año 2026/balanza.xlsx": os.urandom(300_000),
        "Contabilidad/nómina enero.pdf": os.urandom(50_000),
        "vacío.txt": b"",
        "factura.xml": xml,
    }
    for name, body in files.items():
        assert s.put(dav("acme", name), data=body).status_code == 201
    assert s.put(dav("beta", "notas.txt"), data="Pólizas ✓".encode()).status_code == 201
    # A safety net to carry over too: an earlier version and an item in the trash.
    assert s.put(dav("acme", "Contabilidad/nómina enero.pdf"),
                 data=os.urandom(40_000)).status_code == 204
    assert s.put(dav("acme", "borrador.docx"), data=os.urandom(20_000)).status_code == 201
    assert s.delete(dav("acme", "borrador.docx")).status_code == 204
    assert s.request("PROPPATCH", dav("acme", "Contabilidad/nómina enero.pdf"),
                     data=PROP).status_code == 207
    srv.cli("retention", "hold", "acme", "/Contabilidad", "--reason", "auditoría SAT")
    return srv, entry


def test_backup_restores_byte_for_byte_on_a_fresh_installation(source, make_server, tmp_path):
    src, entry = source
    archive = tmp_path / "respaldo.tar.gz"
    p = src.cli("backup", str(archive))  # while the server runs
    assert "2 espacios" in p.stdout and archive.exists()
    assert not list(tmp_path.glob("respaldo.tar.gz.partial*"))
    before = {sp: (disk_hashes(src.files_root(sp)), counters(src, sp)) for sp in ("acme", "beta")}
    net_before = {area: disk_hashes(src.files_root("acme").parent / area)
                  for area in ("trash", "versions")}
    assert all(net_before.values())
    trash_before = json.loads(src.cli("trash", "list", "acme", "--json").stdout)
    cfdi_before = json.loads(src.cli("cfdi", "list", "acme", "--all", "--json").stdout)

    dst = make_server(name="destino")
    p = dst.cli("restore", str(archive))
    assert "acme: restaurado" in p.stdout and "beta: restaurado" in p.stdout
    dst.start()
    for sp in ("acme", "beta"):
        hashes, counts = before[sp]
        assert disk_hashes(dst.files_root(sp)) == hashes
        assert counters(dst, sp) == counts
        # Through the drive, with the restored passwords.
        s = session()
        for rel, digest in hashes.items():
            r = s.get(dst.dav(sp, rel))
            assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == digest
    assert hashes  # the loop above checked files
    # The trash and the earlier versions came back, and work.
    for area, digests in net_before.items():
        assert disk_hashes(dst.files_root("acme").parent / area) == digests, area
    assert json.loads(dst.cli("trash", "list", "acme", "--json").stdout) == trash_before
    versions = json.loads(dst.cli("versions", "list", "acme", "Contabilidad/nómina enero.pdf",
                                  "--json").stdout)
    assert [v["size"] for v in versions] == [50_000]
    dst.cli("trash", "restore", "acme", str(trash_before[0]["id"]))
    assert session().get(dst.dav("acme", "borrador.docx")).status_code == 200
    assert "sin diferencias" in dst.cli("quota", "recount", "acme").stdout
    assert json.loads(dst.cli("cfdi", "list", "acme", "--all", "--json").stdout) == cfdi_before
    # Roles, dead properties, protection and legal holds came back too.
    assert session("luis", "secreto-luis-1").put(dst.dav("acme", "x.txt"),
                                                  data=b"x").status_code == 403
    r = session().request("PROPFIND", dst.dav("acme", "Contabilidad/nómina enero.pdf"),
                          data=GET_PROP, headers={"Depth": "0"})
    assert "revisado" in r.text
    assert session().delete(dst.dav("acme", "factura.xml")).status_code == 403
    assert "levantadas: 1" in dst.cli("retention", "lift", "acme", "/Contabilidad").stdout
    # The restored installation keeps working: new ids do not collide.
    dst.create_space("gamma", "4G")
    assert session().put(dst.dav("beta", "nuevo.txt"), data=b"n").status_code == 201


def test_one_space_restores_beside_existing_spaces(source, make_server, tmp_path):
    src, _ = source
    archive = tmp_path / "acme.tar"
    src.cli("backup", str(archive), "--space", "acme")
    hashes, counts = disk_hashes(src.files_root("acme")), counters(src, "acme")
    trash_hashes = disk_hashes(src.files_root("acme").parent / "trash")
    dst = make_server(name="otro").start()
    dst.create_space("zeta", "4G")  # takes the ids the archive's rows had
    dst.add_user("zeta", "ana", "otra-clave-zeta")
    dst.cli("restore", str(archive))
    assert disk_hashes(dst.files_root("acme")) == hashes
    assert counters(dst, "acme") == counts
    assert disk_hashes(dst.files_root("acme").parent / "trash") == trash_hashes
    assert session().get(dst.dav("acme", "vacío.txt")).status_code == 200
    assert session("ana", "otra-clave-zeta").request(
        "PROPFIND", dst.dav("zeta", ""), headers={"Depth": "0"}).status_code == 207
    assert session().delete(dst.dav("acme", "factura.xml")).status_code == 403


def test_restore_into_postgresql_from_any_installation(source, make_server, pg_database,
                                                        tmp_path):
    src, _ = source
    archive = tmp_path / "todo.tar"
    src.cli("backup", str(archive))
    dst = make_server(name="pg", db_url=pg_database)
    dst.cli("restore", str(archive))
    for sp in ("acme", "beta"):
        assert disk_hashes(dst.files_root(sp)) == disk_hashes(src.files_root(sp))
        assert counters(dst, sp) == counters(src, sp)
    dst.start()
    dst.create_space("nuevo", "4G")  # sequences were moved past the restored ids
    assert session().get(dst.dav("beta", "notas.txt")).content == "Pólizas ✓".encode()


def test_restore_never_overwrites(source, tmp_path):
    src, _ = source
    archive = tmp_path / "r.tar"
    src.cli("backup", str(archive))
    before = disk_hashes(src.files_root("acme"))
    p = src.cli("restore", str(archive), check=False)
    assert p.returncode == 1 and "nunca sobrescribe" in p.stderr + p.stdout
    p = src.cli("restore", str(archive), "--space", "acme", check=False)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert disk_hashes(src.files_root("acme")) == before
    p = src.cli("backup", str(archive), check=False)
    assert p.returncode == 1 and "ya existe" in p.stderr


def test_damaged_archive_is_refused_and_leaves_nothing(source, make_server, tmp_path):
    src, _ = source
    archive = tmp_path / "r.tar"
    src.cli("backup", str(archive))
    with tarfile.open(archive) as tar:
        member = tar.getmember("files/acme/Contabilidad/nómina enero.pdf")
    data = bytearray(archive.read_bytes())
    data[member.offset_data + 100] ^= 0xFF  # one flipped bit in one file
    bad = tmp_path / "dañado.tar"
    bad.write_bytes(bytes(data))
    dst = make_server(name="limpio")
    p = dst.cli("restore", str(bad), check=False)
    assert p.returncode == 1 and "dañado" in p.stderr and "Traceback" not in p.stderr
    assert dst.cli("space", "list").stdout.strip() == ""
    assert not (dst.data / "spaces" / "acme").exists()
    assert [x.name for x in (dst.data / "spaces").iterdir()
            if x.name.startswith(".restore")] == []
    truncated = tmp_path / "corto.tar"
    truncated.write_bytes(archive.read_bytes()[:20_000])
    p = dst.cli("restore", str(truncated), check=False)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert dst.cli("space", "list").stdout.strip() == ""


# -- restorable by construction; hostile archives ----------------------------------------

def small_space(make_server, name: str = "peq"):
    srv = make_server(name=name).start()
    srv.create_space("acme", "4G")
    srv.add_user("acme", "ana", "secreto-ana-1", role="admin")
    s = session()
    assert s.put(srv.dav("acme", "x.txt"), data=b"mismo contenido").status_code == 201
    assert s.put(srv.dav("acme", "x.txt"), data=b"mismo contenido").status_code == 204
    return srv


def test_a_version_hard_linked_to_its_current_file_still_backs_up_restorably(
        make_server, tmp_path):
    """What a self-MOVE onto an NFD spelling used to leave behind (fixed since:
    tests/test_move_copy.py): the backup stores the bytes twice, never a
    hard-link member that restore refuses."""
    srv = small_space(make_server)
    versions = srv.files_root("acme").parent / "versions"
    (token,) = os.listdir(versions)
    os.unlink(versions / token)
    os.link(srv.files_root("acme") / "x.txt", versions / token)
    archive = tmp_path / "enlaces.tar"
    srv.cli("backup", str(archive), "--space", "acme")
    with tarfile.open(archive) as tar:
        assert not [m.name for m in tar.getmembers() if m.islnk() or m.issym()]
    dst = make_server(name="destino")
    dst.cli("restore", str(archive))
    assert (dst.data / "spaces" / "acme" / "versions" / token).read_bytes() == b"mismo contenido"
    assert (dst.files_root("acme") / "x.txt").read_bytes() == b"mismo contenido"


def test_backup_reads_back_what_it_wrote_and_refuses_an_archive_restore_would_refuse(
        make_server, tmp_path):
    srv = small_space(make_server)
    # Names from before the name rules, placed in storage by hand: restore
    # refuses them, so the backup must not call itself good.
    (srv.files_root("acme") / "Factura.txt").write_bytes(b"a")
    (srv.files_root("acme") / "factura.txt").write_bytes(b"b")
    archive = tmp_path / "gemelos.tar"
    p = srv.cli("backup", str(archive), "--space", "acme", check=False)
    assert p.returncode == 1, p.stdout
    assert "no se podría restaurar" in p.stderr and "factura.txt" in p.stderr.lower(), p.stderr
    assert not archive.exists() and not list(tmp_path.glob("gemelos.tar*"))
    (srv.files_root("acme") / "factura.txt").rename(srv.files_root("acme") / "factura-2.txt")
    (srv.files_root("acme") / "COM¹.txt").write_bytes(b"c")
    p = srv.cli("backup", str(archive), "--space", "acme", check=False)
    assert p.returncode == 1 and "COM¹.txt" in p.stderr, p.stderr
    (srv.files_root("acme") / "COM¹.txt").unlink()
    p = srv.cli("backup", str(archive), "--space", "acme")
    assert "verificado" in p.stdout, p.stdout
    # The check itself: a flipped bit in a written archive is found.
    from spaces.jobs.archive import BackupError, verify

    data = bytearray(archive.read_bytes())
    with tarfile.open(archive) as tar:
        member = tar.getmember("files/acme/x.txt")
    data[member.offset_data] ^= 0x01
    bad = tmp_path / "dañado.tar"
    bad.write_bytes(bytes(data))
    with pytest.raises(BackupError, match="dañado"):
        verify(bad)
    verify(archive)


def rewrite(archive: Path, out: Path, old: str, new: str) -> None:
    """Copy ``archive`` with space ``old`` renamed ``new`` everywhere (members,
    manifest, rows): what a hostile or hand-edited archive looks like."""
    with tarfile.open(archive) as src, tarfile.open(out, "w") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read() if m.isfile() else None
            parts = m.name.split("/")
            if len(parts) > 1 and parts[1] == old and parts[0] in ("files", "trash", "versions"):
                m.name = "/".join([parts[0], new, *parts[2:]])
            if m.name in ("manifest.json", "db/spaces.jsonl"):
                text = data.decode().replace(f'"name": "{old}"', f'"name": {json.dumps(new)}')
                text = text.replace(f'"name":"{old}"', f'"name":{json.dumps(new)}')
                data = text.encode()
                m.size = len(data)
            dst.addfile(m, io.BytesIO(data) if data is not None else None)


@pytest.mark.parametrize("hostile", ["../../fuera", "ABSOLUTE", "..", "a/b", "ACME",
                                     ".restore-x", "acme\x00"])
def test_restore_refuses_space_names_that_space_creation_refuses_and_writes_nothing_outside(
        make_server, tmp_path, hostile):
    if hostile == "ABSOLUTE":
        hostile = str(tmp_path / "fuera-absoluta")
    srv = small_space(make_server)
    archive = tmp_path / "bueno.tar"
    srv.cli("backup", str(archive), "--space", "acme")
    evil = tmp_path / "malo.tar"
    rewrite(archive, evil, "acme", hostile)
    dst = make_server(name="destino")
    dst.cli("migrate")
    outside = sorted(p.name for p in tmp_path.iterdir())
    p = dst.cli("restore", str(evil), check=False)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert "espacio" in p.stderr.lower(), p.stderr
    assert dst.cli("space", "list").stdout.strip() == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == outside
    assert not (dst.data / "spaces").exists() or list((dst.data / "spaces").iterdir()) == []
    # The same archive is refused by the check a backup runs on itself.
    from spaces.jobs.archive import BackupError, verify

    with pytest.raises(BackupError, match="espacio no válido"):
        verify(evil)


@pytest.mark.parametrize("reserved", ["entrar", "healthz", "api"])
def test_restore_refuses_reserved_space_names_unless_the_operator_says_so(
        make_server, tmp_path, reserved):
    """A space named like one of the server's routes shadows it: restore holds
    names to the rules of space creation, the reserved list included. A space
    that had such a name before the list existed still backs up, and the
    operator restores it knowingly with --allow-reserved-names."""
    srv = small_space(make_server)
    archive = tmp_path / "bueno.tar"
    srv.cli("backup", str(archive), "--space", "acme")
    evil = tmp_path / "reservado.tar"
    rewrite(archive, evil, "acme", reserved)
    dst = make_server(name="destino")
    dst.cli("migrate")
    p = dst.cli("restore", str(evil), check=False)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert "reservado" in p.stderr and "--allow-reserved-names" in p.stderr, p.stderr
    assert dst.cli("space", "list").stdout.strip() == ""
    assert not (dst.data / "spaces").exists() or list((dst.data / "spaces").iterdir()) == []
    from spaces.jobs.archive import BackupError, verify

    with pytest.raises(BackupError, match="reservado"):
        verify(evil)
    p = dst.cli("restore", str(evil), "--allow-reserved-names")
    assert reserved in dst.cli("space", "list").stdout
    assert (dst.files_root(reserved) / "x.txt").read_bytes() == b"mismo contenido"
    # Such a space (from before the list) still backs up, verified.
    again = tmp_path / "otra-vez.tar"
    p = dst.cli("backup", str(again), "--space", reserved)
    assert "verificado" in p.stdout and "--allow-reserved-names" in p.stdout, p.stdout


def test_a_space_holding_look_alike_names_from_before_the_rule_still_backs_up(
        make_server, tmp_path):
    srv = small_space(make_server)
    (srv.files_root("acme") / "Factura.txt").write_bytes(b"a")
    (srv.files_root("acme") / "F\u0430ctura.txt").write_bytes(b"b")
    archive = tmp_path / "parecidos.tar"
    assert "verificado" in srv.cli("backup", str(archive), "--space", "acme").stdout
    dst = make_server(name="destino")
    dst.cli("restore", str(archive))
    assert (dst.files_root("acme") / "F\u0430ctura.txt").read_bytes() == b"b"
