"""The restart budget of `djserve serve`'s supervision."""

from djserve.supervision import RestartBudget


def test_backoff_grows_and_a_crash_loop_gives_up():
    budget = RestartBudget(max_restarts=3, window_s=60, backoff_s=(1, 2, 4))
    assert [budget.next_delay(t) for t in (0, 5, 10)] == [1, 2, 4]
    assert budget.next_delay(15) is None  # a 4th crash within 60 s: not transient


def test_crashes_spread_out_keep_being_restarted():
    budget = RestartBudget(max_restarts=2, window_s=60, backoff_s=(1, 2))
    assert budget.next_delay(0) == 1 and budget.next_delay(30) == 2
    assert budget.next_delay(100) == 1  # the window moved on: the earlier crashes are forgotten
    assert budget.recent == 1
