"""What was allocated between two tracemalloc snapshots and is still alive (see sitecustomize.py).

    python -m loadtest.memtrace.compare BEFORE.pickle AFTER.pickle [--top 10] [--frames 8]
"""

from __future__ import annotations

import argparse
import tracemalloc

#: Tracebacks are grouped by the first of these they pass through (else "other").
GROUPS = ("opentelemetry", "bentoml", "bentos/predictions.py", "bentos/", "djserve/", "prometheus", "starlette",
          "uvicorn", "grpc")


def compare(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> tuple[list[tracemalloc.StatisticDiff], dict[str, list[int]]]:
    diff = after.compare_to(before, "traceback")
    groups: dict[str, list[int]] = {}
    for d in diff:
        files = [f.filename for f in d.traceback]
        key = next((g for g in GROUPS if any(g in f for f in files)), "other")
        total = groups.setdefault(key, [0, 0])
        total[0] += d.size_diff
        total[1] += d.count_diff
    return diff, groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--frames", type=int, default=8)
    args = parser.parse_args()
    diff, groups = compare(tracemalloc.Snapshot.load(args.before), tracemalloc.Snapshot.load(args.after))
    print(f"still allocated: {sum(d.size_diff for d in diff) / 2**20:+.2f} MiB in {sum(d.count_diff for d in diff):+d} blocks")
    for key, (size, count) in sorted(groups.items(), key=lambda kv: -kv[1][0]):
        print(f"{size / 1024:+10.1f} KiB {count:+8d} blocks  {key}")
    for d in diff[: args.top]:
        print(f"\n{d.size_diff / 1024:+.1f} KiB {d.count_diff:+d} blocks (now {d.size / 1024:.0f} KiB)")
        for line in d.traceback.format()[-args.frames * 2 :]:
            print("   ", line)


if __name__ == "__main__":
    main()
