"""book"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "book", sa.Column("id", sa.Integer, primary_key=True), sa.Column("title", sa.Text)
    )


def downgrade() -> None:
    op.drop_table("book")
