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


class FakeGateway:
    """A gateway child that is dead until restarted, `dies` more times after that."""

    def __init__(self, dies: int):
        from types import SimpleNamespace

        self.dies, self.starts = dies, 0
        self.child = SimpleNamespace(process=SimpleNamespace(returncode=-9), log_file="gateway-0.log",
                                     is_running=lambda: False)

    def stop(self):
        pass

    def start(self):
        self.starts += 1
        alive = self.starts > self.dies
        self.child.is_running = lambda: alive

    def wait_ready(self, timeout=None):
        pass


def test_the_stack_restarts_a_dead_child_records_it_and_gives_up_on_a_crash_loop(tmp_path):
    import threading

    import pytest

    from djserve.stack import ChildCrashLoop, Stack
    from djserve.supervision import SUPERVISION_FILE, SupervisionRecord

    lines = []
    healing = FakeGateway(dies=1)
    stack = Stack([], [healing], tmp_path, log=lines.append, budget=lambda: RestartBudget(3, 60, (0.0,)))
    stop = threading.Event()
    threading.Timer(1.0, stop.set).start()
    stack.supervise(stop, poll_s=0.05)  # dead, restarted (dies again), restarted: alive
    assert healing.starts == 2 and healing.child.is_running()
    record = SupervisionRecord.read(tmp_path / SUPERVISION_FILE).children["gateway-0"]
    assert record.restarts == 2 and record.last_exit_code == -9
    assert any("gateway-0 exited (code -9)" in line for line in lines)

    looping = Stack([], [FakeGateway(dies=99)], tmp_path, log=lines.append, budget=lambda: RestartBudget(3, 60, (0.0,)))
    with pytest.raises(ChildCrashLoop, match="gateway-0 keeps crashing .*3 restarts.*gateway-0.log"):
        looping.supervise(threading.Event(), poll_s=0.01)
    assert SupervisionRecord.read(tmp_path / SUPERVISION_FILE).children["gateway-0"].restarts == 3
