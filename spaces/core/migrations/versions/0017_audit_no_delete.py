"""The audit log is append-only against DELETE too.

Migration 0006 refused UPDATE only: ``DELETE FROM audit_log`` succeeded. A
trigger now refuses deleting any record younger than
:data:`spaces.core.audit.FLOOR_DAYS` days (5 years — the longest CFDI period of the
plans — and 90 days: the shortest five calendar years are 1,826 days) or of a
space under an active legal hold, whoever issues it. The retention sweep
(:func:`spaces.audit.expire`) deletes only what is past both, so it still
works. On PostgreSQL TRUNCATE, which skips row triggers, is refused outright;
on SQLite an insert may not reuse an existing id (REPLACE deletes the row it
collides with without firing DELETE triggers).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# 1916 days: keep in step with spaces.core.audit.FLOOR_DAYS (a migration never imports
# the code it migrates: the code changes, the migration stays). Written out in
# the statements, which are fixed text.


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_log_no_early_delete() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN "
            "IF OLD.at >= (now() AT TIME ZONE 'utc') - interval '1916 days' "
            "OR EXISTS (SELECT 1 FROM cfdi_holds h WHERE h.space_id = OLD.space_id "
            "AND h.lifted_at IS NULL) THEN "
            "RAISE EXCEPTION 'audit_log is append-only: records are deleted only after "
            "their keeping period'; "
            "END IF; RETURN OLD; END $$")
        op.execute("CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
                   "FOR EACH ROW EXECUTE FUNCTION audit_log_no_early_delete()")
        # audit_log_append_only() (0006) raises unconditionally.
        op.execute("CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
                   "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()")
    else:
        # Times are stored as 'YYYY-MM-DD HH:MM:SS[.ffffff]' (UTC): they compare as text.
        op.execute(
            "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
            "WHEN OLD.at >= datetime('now', '-1916 days') "
            "OR EXISTS (SELECT 1 FROM cfdi_holds h WHERE h.space_id = OLD.space_id "
            "AND h.lifted_at IS NULL) "
            "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: records are deleted only "
            "after their keeping period'); END")
        # REPLACE (and INSERT OR REPLACE) deletes the row it collides with without
        # firing DELETE triggers (SQLite fires them only with recursive_triggers):
        # an insert may never reuse an existing record's id.
        op.execute(
            "CREATE TRIGGER audit_log_no_replace BEFORE INSERT ON audit_log "
            "WHEN EXISTS (SELECT 1 FROM audit_log WHERE id = NEW.id) "
            "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_no_early_delete()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_replace")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
