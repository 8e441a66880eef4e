#!/usr/bin/env bash
# The whole test suite, installing what it needs: the virtualenv, litmus and
# chromium (Debian packages) and a PostgreSQL server. Static checks, then one pytest session
# in which the tests marked `db` run on SQLite and on PostgreSQL and the rest once.
#   RESGUARDO_TEST_DBS="sqlite postgresql"  the databases of the `db` tests (default: both)
#   PYTEST_ARGS='-x -k "quota and not chunked"'  extra pytest arguments (shell quoting kept)
#   RESGUARDO_TEST_WORKERS=1                 one test at a time (default 3 in parallel)
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else "$@"; fi; }
apt_updated=0
apt_install() {
    if [ "$apt_updated" = 0 ]; then sudo_ apt-get update -qq; apt_updated=1; fi
    DEBIAN_FRONTEND=noninteractive sudo_ apt-get install -y -qq "$@" >/dev/null
}

make -s venv

if ! command -v litmus >/dev/null; then
    echo "test: installing litmus (Debian package)"
    apt_install litmus
fi

# What tests/test_deploy.py checks the files of config/ and systemd/ with, the real
# rclone that tests/test_quota_plan.py syncs the drive with, and what
# tests/test_invoicing.py reads a factura's PDF (pdftotext) and its QR (zbarimg) with.
for tool in nginx:nginx-light caddy:caddy openssl:openssl systemd-analyze:systemd rclone:rclone \
            pdftotext:poppler-utils pdftoppm:poppler-utils zbarimg:zbar-tools; do
    if ! command -v "${tool%%:*}" >/dev/null && [ ! -x "/usr/sbin/${tool%%:*}" ]; then
        echo "test: installing ${tool#*:} (Debian package)"
        apt_install "${tool#*:}"
    fi
done

# The portal's browser test drives Debian's chromium with Playwright (Playwright's
# own browser download cannot be used here).
if [ ! -x /usr/bin/chromium ]; then
    echo "test: installing chromium (Debian package)"
    apt_install chromium
fi

dbs=${RESGUARDO_TEST_DBS:-sqlite postgresql}
pg_url=${RESGUARDO_PG_ADMIN_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/postgres}

ensure_postgres() {
    if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return 0; fi
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
        echo "test: installing PostgreSQL (Debian package)"
        apt_install postgresql
    fi
    ver=$(ls /etc/postgresql | sort -V | tail -n1)
    conf=/etc/postgresql/$ver/main/pg_hba.conf
    # Local tests only: trust connections from this machine.
    if ! grep -q "resguardo-tests" "$conf"; then
        sudo_ sed -i '1i host all all 127.0.0.1/32 trust # resguardo-tests' "$conf"
    fi
    sudo_ pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && return 0; sleep 1; done
    echo "test: PostgreSQL did not start" >&2
    return 1
}

ensure_redis() {
    if (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then return 0; fi
    if ! command -v redis-server >/dev/null; then
        echo "test: installing Redis (Debian package)"
        apt_install redis-server
    fi
    mkdir -p /tmp/resguardo-redis
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --dir /tmp/resguardo-redis --logfile /tmp/resguardo-redis/redis.log
    for _ in $(seq 1 30); do (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null && return 0; sleep 1; done
    echo "test: Redis did not start" >&2
    return 1
}
ensure_redis
# Tests marked `db` run on PostgreSQL too; the two-node, backup and health tests need
# it whatever the database.
ensure_postgres

# Static checks; a finding fails: ruff (bandit's security rules included), mypy on the
# four packages, and the layer contracts of pyproject.toml (import-linter).
echo "== ruff"
.venv/bin/ruff check spaces davserver resguardo portal tests bench
echo "== mypy"
.venv/bin/mypy
echo "== import-linter"
.venv/bin/lint-imports --no-cache | tail -n 6

export RESGUARDO_REQUIRE_LITMUS=1 RESGUARDO_REQUIRE_BROWSER=1
# One pytest session covers both databases: a test marked `db` runs once on SQLite and
# once on PostgreSQL (RESGUARDO_TEST_DBS narrows that), every other test once.
export RESGUARDO_TEST_DBS=$dbs RESGUARDO_PG_ADMIN_URL=$pg_url
unset RESGUARDO_TEST_DATABASE_URL
# Most tests wait on a server of their own more than they compute: several at once
# (pytest-xdist). Those marked `serial` (they compare timings) run afterwards, alone.
# Coverage (branch, servers and CLI included: [tool.coverage] in pyproject.toml) is
# combined over both parts and checked against its floor at the end.
workers=${RESGUARDO_TEST_WORKERS:-3}
rm -f .coverage .coverage.*
cov=(--cov --cov-report=)
echo "== tests on ${dbs// / and } (${workers} at a time, then the serial ones)"
status=0
eval "extra=(${PYTEST_ARGS:-})"  # as a shell would split it: quoted words stay whole
run() {  # exit 5 is "no tests collected": a -k filter left that part empty
    .venv/bin/pytest -q "${cov[@]}" "$@" "${extra[@]}" || { r=$?; [ $r = 5 ] || status=1; }
}
if [ "$workers" -le 1 ]; then
    run
else
    run -n "$workers" -m "not serial"
    run -m serial --cov-append
fi
echo "== coverage"
.venv/bin/coverage report || status=1
exit $status
