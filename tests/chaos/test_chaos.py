"""Chaos at CI size: kills, a broker restart, dropped DB connections, a poison job, a slow job.

Each scenario checks the platform's guarantees under damage: no job lost, nothing
applied twice, no job's processor running in two places at once. The same scenarios
run at full size with ``python -m bench.chaos --jobs 2000`` (docs/reliability-chaos.md).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.chaos import scenarios
from tests.chaos.scenarios import Chaos

pytestmark = [pytest.mark.integration]
CI = scenarios.Sizes()


def test_worker_kills_lose_nothing_and_grade_each_sheet_once(chaos: Chaos, record: Any) -> None:
    figures = record(scenarios.scenario_worker_kills(chaos, jobs=CI.kill_jobs, sheets=CI.sheets))
    assert figures.kills + figures.worker_restarts >= 3, figures.line()
    assert figures.problems == [], figures.line()


def test_a_broker_restart_loses_nothing_and_every_pool_consumes_again(chaos: Chaos, record: Any) -> None:
    # 3 s down: past kombu's publish retries (~2 s), so the sweeper's re-publishes fail for
    # a while and must leave their jobs waiting, not FAILED (docs/reliability-chaos.md,
    # finding 1). A worker that exits is restarted, as its supervisor would (finding 2).
    figures = record(scenarios.scenario_broker_restart(chaos, jobs=CI.broker_jobs, down_s=3))
    assert figures.problems == [], figures.line()


def test_dropped_database_connections_lose_nothing(chaos: Chaos, record: Any) -> None:
    figures = record(scenarios.scenario_db_drops(chaos, jobs=CI.db_jobs))
    assert sum(figures.extra["connections_terminated"]) > 0, figures.line()
    assert figures.problems == [], figures.line()


def test_a_poison_job_stops_at_max_attempts_while_pings_flow(chaos: Chaos, record: Any) -> None:
    figures = record(scenarios.scenario_poison(chaos, pings=CI.poison_pings))
    assert figures.problems == [], figures.line()


def test_a_job_slower_than_the_visibility_timeout_runs_once(chaos: Chaos, record: Any) -> None:
    figures = record(scenarios.scenario_slow(chaos, sleep=CI.slow_sleep))
    assert figures.problems == [], figures.line()
