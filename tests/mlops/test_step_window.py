"""What the online gates see of a version: only what happened since the step began."""

from djserve.live_stats import FamilyStats, LabelStats, VersionStats
from djserve.mlops.promotion import _since


def stats(requests: int, errors: int, labels: int) -> FamilyStats:
    ok = requests - errors
    v = VersionStats(version=2, requests_total=requests, errors_total=errors,
                     latencies_s=[0.001 * i for i in range(requests)][-1000:], values=[float(i) for i in range(ok)][-1000:],
                     labels=LabelStats(total=labels, scores=[float(i) for i in range(labels)][-1000:]))
    return FamilyStats(family="judge", versions={"2": v})


def test_counts_and_lists_are_cut_to_the_step():
    then, now = stats(300, 3, 10), stats(350, 5, 14)
    arm = _since(now, then, 2)
    assert (arm.requests, arm.errors) == (50, 2)
    assert arm.latencies_s == now.version(2).latencies_s[-50:] and len(arm.values) == 48
    assert arm.labels == [10.0, 11.0, 12.0, 13.0]


def test_an_unseen_version_or_no_snapshot():
    assert _since(stats(10, 0, 0), None, 7).requests == 0  # never observed: no data, the gates wait
    arm = _since(stats(10, 1, 2), None, 2)
    assert (arm.requests, arm.errors, len(arm.values), len(arm.labels)) == (10, 1, 9, 2)
