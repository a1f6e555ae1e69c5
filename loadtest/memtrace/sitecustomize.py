"""Debug only: tracemalloc in a running gateway worker, driven by signals (no gateway code involved).

Start the stack with this folder first on the gateway's PYTHONPATH and a folder for the snapshots:

    PYTHONPATH=loadtest/memtrace:. DJSERVE_MEMTRACE_DIR=/tmp/snaps djserve serve

Every Python process started with that environment (the `bentoml serve` server and its workers)
then answers SIGUSR1 by starting tracemalloc (`DJSERVE_MEMTRACE_FRAMES` frames, 12) and SIGUSR2 by
writing a snapshot, `<dir>/snap-<pid>-<unix time>.pickle`. Under load (`djserve soak`): SIGUSR1
after the warm-up, SIGUSR2 a minute later and again minutes later; then

    python -m loadtest.memtrace.compare /tmp/snaps/snap-<pid>-<t1>.pickle /tmp/snaps/snap-<pid>-<t2>.pickle

lists what the requests in between left allocated. Tracing slows the worker (~30%) and adds to its
RSS; it measures Python allocations only (numpy's included), not native ones. How the soak's growth
was found with it: loadtest/RESULTS.md, "Soak".
"""

import os
import signal

if os.environ.get("DJSERVE_MEMTRACE_DIR"):

    def _start(*_):
        import tracemalloc

        tracemalloc.start(int(os.environ.get("DJSERVE_MEMTRACE_FRAMES", "12")))

    def _dump(*_):
        import gc
        import time
        import tracemalloc

        if not tracemalloc.is_tracing():
            return
        gc.collect()
        folder = os.environ["DJSERVE_MEMTRACE_DIR"]
        os.makedirs(folder, exist_ok=True)
        tracemalloc.take_snapshot().dump(os.path.join(folder, f"snap-{os.getpid()}-{int(time.time())}.pickle"))

    try:
        signal.signal(signal.SIGUSR1, _start)
        signal.signal(signal.SIGUSR2, _dump)
    except ValueError:  # not the main thread
        pass
