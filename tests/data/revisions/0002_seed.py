"""One row per time it is applied (test_migrate_step counts them).

In the database "concurrent" it keeps the migration lock until three steps are
connected there, and a second more: the other two must find it taken.
"""

from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.execute("""
        DO $$ BEGIN
            FOR i IN 1..200 LOOP
                PERFORM pg_stat_clear_snapshot();  -- else one snapshot per transaction
                EXIT WHEN current_database() <> 'concurrent' OR (
                    SELECT count(*) FROM pg_stat_activity WHERE datname = 'concurrent') >= 3;
                PERFORM pg_sleep(0.1);
            END LOOP;
        END $$
    """)
    op.execute("SELECT pg_sleep(1)")
    op.execute("INSERT INTO book (title) VALUES ('applied')")


def downgrade() -> None:
    op.execute("DELETE FROM book")
