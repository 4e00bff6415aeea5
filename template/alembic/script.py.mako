<%
    # `alembic -x phase=post-deploy revision ...` (make revision phase=post-deploy)
    x = dict(arg.split("=", 1) for arg in (getattr(config.cmd_opts, "x", None) or []) if "=" in arg)
%>"""${message}

Revision ID: ${up_revision}
% if down_revision:
Revises: ${down_revision | comma,n}
% endif
Create Date: ${create_date}

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}

# revision identifiers, used by Alembic.
revision: str = ${repr(up_revision)}
down_revision: str | Sequence[str] | None = ${repr(down_revision)}
branch_labels: str | Sequence[str] | None = ${repr(branch_labels)}
depends_on: str | Sequence[str] | None = ${repr(depends_on)}
# "pre-deploy" runs while the previous release still serves (expand); "post-deploy" once
# its rollout is complete (contract: drops, renames, NOT NULL). docs/rolling-deploys.md
deploy_phase = "${x.get("phase", "pre-deploy")}"


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
