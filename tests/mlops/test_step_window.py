"""What the online gates see of a version: only what happened since the step began."""

from djserve.live_stats import FamilyStats, LabelStats, VersionStats
from djserve.mlops.promotion import _since, step_arms
from djserve.traffic import FamilyPolicy


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


def two_versions(stable_requests: int, canary_requests: int) -> FamilyStats:
    def v(version: int, n: int) -> VersionStats:
        return VersionStats(version=version, requests_total=n, errors_total=0, latencies_s=[0.01] * min(n, 1000),
                            values=[0.5] * min(n, 1000), labels=LabelStats(total=0, scores=[]))
    return FamilyStats(family="judge", versions={"1": v(1, stable_requests), "2": v(2, canary_requests)})


def test_a_100_percent_step_judges_the_canary_against_the_stable_over_the_ramp():
    """At 100% the stable gets at most a straggler routed before the switch: judging against that
    one request would leave the gates without a verdict until the step times out."""
    ramp_start, step_start = two_versions(1000, 0), two_versions(1400, 400)
    now = two_versions(1401, 1400)  # one straggler reached the stable during the 100% step
    stable, canary = step_arms(now, FamilyPolicy(stable=1, canary=2, canary_percent=100), step_start, ramp_start)
    assert (stable.requests, canary.requests) == (401, 1000)
    stable, canary = step_arms(now, FamilyPolicy(stable=1, canary=2, canary_percent=50), step_start, ramp_start)
    assert (stable.requests, canary.requests) == (1, 1000)  # below 100% each arm is its own step's
