"""The replica setting shared by the gateway and promotion, and the gateway's retry on another replica."""

from __future__ import annotations

import asyncio

import pytest

from bentos.replicas import ReplicaPool
from djserve.triton.replicas import expand, split


def test_a_list_keeps_its_order_without_blanks_or_repeats():
    assert split(" a:8001, b:8001,,a:8001 ") == ["a:8001", "b:8001"]
    assert expand("http://a:8000,b:8000", scheme="http://") == ["http://a:8000", "http://b:8000"]


def test_a_dns_entry_stands_for_every_address_of_the_name():
    assert expand("dns:///localhost:8000") in (["127.0.0.1:8000"], ["127.0.0.1:8000", "[::1]:8000"], ["[::1]:8000"])


@pytest.mark.parametrize("bad", ["", "a", "a:port", "dns:///no-such-host.invalid:8000"])
def test_a_bad_setting_is_refused_by_name(bad):
    with pytest.raises(ValueError):
        expand(bad)


class Unavailable(Exception):
    def __init__(self, status: str = "StatusCode.UNAVAILABLE"):
        super().__init__(status)
        self._status = status

    def status(self) -> str:
        return self._status


class Replica:
    def __init__(self, name: str, fail: Exception | None = None):
        self.name, self.fail, self.calls = name, fail, 0

    async def infer(self, model, inputs, version=None):
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        return {"replica": self.name}

    async def is_ready(self, model=None, version=None):
        if self.fail is not None:
            raise self.fail
        return True


def run(coro):
    return asyncio.run(coro)


def test_calls_go_round_robin():
    a, b = Replica("a"), Replica("b")
    pool = ReplicaPool([a, b], ["a:1", "b:1"])
    answers = [run(pool.infer("judge", {}))["replica"] for _ in range(4)]
    assert answers == ["a", "b", "a", "b"]


def test_an_unavailable_replica_costs_no_request():
    a, b = Replica("a", Unavailable()), Replica("b")
    pool = ReplicaPool([a, b], ["a:1", "b:1"])
    assert [run(pool.infer("judge", {}))["replica"] for _ in range(4)] == ["b"] * 4
    assert a.calls == 2 and b.calls == 4  # a's two turns were retried once each on b
    assert run(pool.is_ready())  # one replica serving is enough to be ready


def test_a_model_error_is_not_retried_and_one_replica_is_not_retried_at_all():
    a, b = Replica("a", Unavailable("StatusCode.INTERNAL")), Replica("b")
    with pytest.raises(Unavailable):
        run(ReplicaPool([a, b], ["a:1", "b:1"]).infer("judge", {}))
    assert b.calls == 0
    lonely = Replica("a", Unavailable())
    with pytest.raises(Unavailable):
        run(ReplicaPool([lonely], ["a:1"]).infer("judge", {}))
    assert lonely.calls == 1


def test_both_replicas_down_is_an_error_and_not_ready():
    pool = ReplicaPool([Replica("a", Unavailable()), Replica("b", Unavailable())], ["a:1", "b:1"])
    with pytest.raises(Unavailable):
        run(pool.infer("judge", {}))
    assert not run(pool.is_ready())
