"""The backfill runner's throttle: the hold on a real standby's replication lag (its
replay paused, then resumed), and the numbers behind the batch size and the hold.

Shares test_backfill.py's service and helpers.
"""

from __future__ import annotations

import importlib.util
import time
from typing import TYPE_CHECKING

import pytest
from database import fresh_database
from helpers import ROOT, Service
from test_backfill import backfill_service, in_background, make_table, state

if TYPE_CHECKING:
    from conftest import ReplicaPair

__all__ = ["backfill_service"]  # the fixture, shared


@pytest.mark.xdist_group("replica")
def test_held_while_a_standby_lags_and_resumed_below_the_lower_bound(
    backfill_service: Service, replica_pair: ReplicaPair
) -> None:
    primary, standby = replica_pair.primary, replica_pair.standby
    with fresh_database(primary.url()) as url:
        make_table(url, 3000)
        standby.psql("SELECT pg_wal_replay_pause()")
        try:
            runner = in_background(
                backfill_service,
                url,
                "run",
                "fill",
                BACKFILL_MAX_LAG_SECONDS="0.5",
                BACKFILL_RESUME_LAG_SECONDS="0.1",
                BACKFILL_PAUSE_SECONDS="0.05",
            )
            runner.wait_for("held: a standby's replay lag is")
            held_at = state(url, "fill")
            time.sleep(1.0)  # held: nothing moves
            assert state(url, "fill") == held_at and held_at[0] == "held"
        finally:
            standby.psql("SELECT pg_wal_replay_resume()")
        code, lines, _ = runner.finish()
    assert code == 0, lines
    assert any("resumed: replay lag" in line for line in lines), lines
    assert 0 < held_at[1] < 3000


def test_batch_size_grows_slowly_shrinks_fast_and_the_hold_does_not_flap() -> None:
    """throttle.py alone (it imports only SQLAlchemy): the numbers behind the defaults."""
    path = ROOT / "template" / "{{package_name}}" / "infra" / "backfill" / "throttle.py"
    spec = importlib.util.spec_from_file_location("throttle", path)
    assert spec and spec.loader
    throttle = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(throttle)
    size = throttle.BatchSize(1000, 100, 1500, 0.2)
    size.after(0.001)  # far under the target: at most 1.2x
    assert size.value == 1200
    size.after(0.21)  # within 10 % of the target: kept
    assert size.value == 1200
    size.after(0.3)  # slow: shrunk toward the target
    assert size.value == 800
    size.after(10.0)  # very slow: at most halved
    assert size.value == 400
    for _ in range(10):
        size.after(0.001)
    assert size.value == 1500  # never above the maximum
    assert size.timed_out() and size.value == 750
    while size.timed_out():
        pass
    assert size.value == 100  # the minimum; timed_out() said it could shrink no more
    hold = throttle.LagHold(10.0, 2.0)
    assert [hold.update(lag) for lag in (5, 10.5, 9, 3, 1.9, 5, 10)] == [
        False, True, True, True, False, False, False,
    ]  # fmt: skip
    assert not throttle.LagHold(0.0, 0.0).enabled
