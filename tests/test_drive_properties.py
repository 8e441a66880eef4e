"""Property-based: random sequences of WebDAV operations against one live space.

After every step: the space's usage equals what is on disk — its files (what
the plan counts), and apart its trash and earlier versions (the reserve) — it
never exceeds the quota, every refusal is the one the usage before the request
predicts (what a write replaces is credited), and a model of the tree kept by
the test matches what PROPFIND lists.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlparse

import pytest
import requests
import sqlalchemy as sa

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import (  # noqa: E402
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

# Its outcome depends on the database: runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.db

QUOTA = 64 * 1024
TIER = """
[tiers.P64K]
quota = "64K"
max_users = 2
cfdi_years = 1
"""
NAMES = st.sampled_from(["a", "b", "c", "informe.xlsx", "ñandú.txt", "Año 2024"])
FOLDERS = st.sampled_from(["", "x/", "x/y/", "z/"])
SIZES = st.sampled_from([0, 1, 1000, 9000, 20000, 40000])


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    from conftest import Server

    srv = Server(tmp_path_factory.mktemp("prop"), TIER).start()
    srv.create_space("prop", "P64K")
    srv.add_user("prop", "ana", "secreto-ana-1")
    yield srv
    srv.close()


def _listing(session: requests.Session, url: str, base_path: str) -> dict[str, int | None]:
    """path -> size (None for folders) of everything below the space, by PROPFIND."""
    out: dict[str, int | None] = {}
    pending = [url]
    while pending:
        u = pending.pop()
        r = session.request("PROPFIND", u, headers={"Depth": "1"})
        assert r.status_code == 207, r.text
        for resp in re.findall(r"<D:response>(.*?)</D:response>", r.text, re.S):
            href = unquote(re.search(r"<D:href>(.*?)</D:href>", resp).group(1))
            rel = href[len(base_path):]
            if not rel or rel == urlparse(u).path[len(base_path):]:
                continue
            if rel == "Espacio disponible - LEEME.txt":
                continue
            if "<D:collection" in resp:
                out[rel.rstrip("/") + "/"] = None
                pending.append(u.rstrip("/") + "/" + href.rstrip("/").rsplit("/", 1)[-1] + "/")
            else:
                out[rel] = int(re.search(r"getcontentlength>(\d+)<", resp).group(1))
    return out


class DriveMachine(RuleBasedStateMachine):
    srv = None  # set by the test

    @initialize()
    def start(self):
        self.s = requests.Session()
        self.s.auth = ("ana", "secreto-ana-1")
        # Start every example from an empty space.
        for name in list(_listing(self.s, self.srv.dav("prop"), "/dav/prop/")):
            if name.count("/") == (1 if name.endswith("/") else 0):
                self.s.delete(self.srv.dav("prop", name))
        # ...and an empty safety net: erase the trash and every earlier version.
        self.srv.cli("trash", "reclaim", "prop", "1G")
        self.model: dict[str, int | None] = {}
        self.engine = sa.create_engine(self.srv.db_url)

    def _stored(self) -> tuple[int, int]:
        with self.engine.connect() as c:
            return tuple(c.execute(sa.text(
                "SELECT used_bytes, used_files FROM spaces WHERE name = 'prop'")).one())

    def _held(self) -> tuple[int, int, int]:
        with self.engine.connect() as c:
            return tuple(c.execute(sa.text(
                "SELECT held_bytes, held_files, reserve_bytes FROM spaces "
                "WHERE name = 'prop'")).one())

    def _replaced(self, path: str) -> int:
        """Bytes of what a write at ``path`` replaces (a file, or a folder's tree):
        it leaves the plan (as a version, or into the trash)."""
        return sum(v or 0 for k, v in self.model.items()
                   if k == path or k.startswith(path.rstrip("/") + "/"))

    def teardown(self):
        self.engine.dispose()

    def _parent_exists(self, path: str) -> bool:
        parent = path.rstrip("/").rpartition("/")[0]
        return parent == "" or (parent + "/") in self.model

    def _fits(self, size: int, path: str) -> bool:
        """Whether ``size`` bytes written at ``path`` fit: what they replace is
        credited (it leaves the plan for the reserve)."""
        return self._stored()[0] + size - self._replaced(path) <= QUOTA

    @rule(folder=FOLDERS, name=NAMES, size=SIZES)
    def put(self, folder, name, size):
        path = folder + name
        fits = self._fits(size, path)
        r = self.s.put(self.srv.dav("prop", path), data=b"p" * size)
        if not self._parent_exists(path) or (path + "/") in self.model:
            assert r.status_code in (405, 409), r.status_code
            return
        if not fits:
            assert r.status_code == 507, r.status_code
        else:
            assert r.status_code in (201, 204), r.status_code
            self.model[path] = size

    @rule(folder=FOLDERS)
    def mkcol(self, folder):
        if not folder:
            return
        r = self.s.request("MKCOL", self.srv.dav("prop", folder))
        if folder in self.model or folder.rstrip("/") in self.model:
            assert r.status_code == 405, r.status_code
        elif not self._parent_exists(folder):
            assert r.status_code == 409, r.status_code
        else:
            assert r.status_code == 201, r.status_code
            self.model[folder] = None

    @rule(folder=FOLDERS, name=NAMES)
    def delete(self, folder, name):
        target = folder if folder and name == "a" else folder + name
        r = self.s.delete(self.srv.dav("prop", target))
        if target not in self.model:
            assert r.status_code == 404, r.status_code
            return
        assert r.status_code == 204, r.status_code
        for k in [k for k in self.model if k == target or k.startswith(target)]:
            del self.model[k]

    @rule(src=NAMES, dst=NAMES, folder=FOLDERS, copy=st.booleans())
    def move_or_copy(self, src, dst, folder, copy):
        dst_path = folder + dst
        fits = self._fits(self.model.get(src) or 0, dst_path)
        r = self.s.request("COPY" if copy else "MOVE", self.srv.dav("prop", src),
                           headers={"Destination": self.srv.dav("prop", dst_path),
                                    "Overwrite": "T"})
        if src not in self.model:
            assert r.status_code == 404, r.status_code
            return
        if dst_path == src:
            assert r.status_code == 403, r.status_code
            return
        if not self._parent_exists(dst_path):
            assert r.status_code == 409, r.status_code
            return
        if copy and not fits:
            assert r.status_code == 507, r.status_code
            return
        assert r.status_code in (201, 204), r.status_code
        for k in [k for k in self.model if k == dst_path + "/" or k.startswith(dst_path + "/")]:
            del self.model[k]
        self.model[dst_path] = self.model[src]
        if not copy:
            del self.model[src]

    @invariant()
    def usage_matches_the_disk_and_the_tree_the_model(self):
        used, entries = self._stored()
        assert used <= QUOTA
        root = self.srv.files_root("prop")
        stored = list(root.rglob("*"))
        assert (used, entries) == (sum(p.stat().st_size for p in stored if p.is_file()),
                                   len(stored)), self.model
        held, held_entries, reserve = self._held()
        kept = [p for area in (root.parent / "trash", root.parent / "versions")
                for p in area.rglob("*")]
        assert (held, held_entries) == (sum(p.stat().st_size for p in kept if p.is_file()),
                                        len(kept))
        assert held <= reserve
        files = {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*")
                 if p.is_file()}
        assert files == {k: v for k, v in self.model.items() if v is not None}
        assert _listing(self.s, self.srv.dav("prop"), "/dav/prop/") == self.model


def test_random_operation_sequences_keep_usage_exact_and_the_tree_as_modelled(live):
    DriveMachine.srv = live
    runner = DriveMachine.TestCase
    runner.settings = settings(max_examples=25, stateful_step_count=15, deadline=None,
                               suppress_health_check=list(HealthCheck))
    runner().runTest()
