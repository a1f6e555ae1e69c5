"""Soak test: the platform's Locust mix for a long time, every stack process's memory sampled.

A service that runs for days must not grow. `djserve soak` (registered in djserve/cli.py) runs the
gateway scenario (`loadtest/gateway_locustfile.py`, through the Locust CLI as `loadtest.locust_run`
does) for a given duration and, every `sample_every_s` seconds, records the resident memory (RSS) of
every process of the running stack:

    role            what                                                    found by
    gateway-server  `bentoml serve` (its workers hold the listening socket)  the gateway URL's port
    gateway-worker  its worker processes (`_bentoml_impl.worker.service`)    children of the server
    tritonserver    the Triton server                                       its gRPC port (the worker's
                                                                            DJSERVE_GATEWAY_TRITON_URL)
    triton-stub     Triton's python-backend stubs, one per model instance    children of tritonserver

The samples go to `memory.csv` as they are taken (one row per process per sample), the verdict to
`soak.json` (a `SoakReport`). The verdict: every gateway process's RSS at the end is less than
`max_growth` (5%) above its RSS when the warm-up (10 minutes) ended, no gateway process died or was
replaced during the run, and every SLO of `loadtest.slo` held over the whole run. Triton's figures
are reported, not judged (its stubs' memory is ONNX Runtime's arenas, sized by the batches).

A level is a median of `level_samples` (3) consecutive samples, so one sample taken during a judge
upload's window (tens of MiB for a moment) does not decide the verdict. `slope_mib_per_min` is the
least-squares slope after the warm-up: what a longer run would add.

    report = soak(SoakSettings(host="http://127.0.0.1:3000", duration_s=3600))
    report.passed, report.processes, report.slo
"""

from __future__ import annotations

import csv
import re
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Literal, Mapping, Optional
from urllib.parse import urlsplit

import psutil
from pydantic import BaseModel, Field

from djserve.settings import settings
from loadtest.locust_run import LoadTestError, RunResult, run, scenario
from loadtest.slo import SloPolicy, SloReport

Role = Literal["gateway-server", "gateway-worker", "tritonserver", "triton-stub"]
GATEWAY_ROLES: tuple[str, ...] = ("gateway-server", "gateway-worker")
"""The processes the memory verdict judges."""
TRITON_URL_ENV = "DJSERVE_GATEWAY_TRITON_URL"
CSV_COLUMNS = ("elapsed_s", "time", "label", "role", "pid", "rss_bytes")
MiB = 2**20


class SoakError(LoadTestError):
    """The soak could not run: the stack's processes were not found, or Locust failed."""


# --- models --------------------------------------------------------------------------------------


class StackProcess(BaseModel):
    pid: int
    role: Role
    label: str
    """Unique within a run: `gateway-server`, `gateway-worker-1`, `tritonserver`, `stub:judge/1`, ..."""
    command: str = ""


class MemorySample(BaseModel):
    elapsed_s: float
    time: float
    """Unix time of the sample."""
    label: str
    role: Role
    pid: int
    rss_bytes: int


class ProcessGrowth(BaseModel):
    label: str
    role: Role
    pid: int
    samples: int
    start_rss: int
    """Level at the start of the run (median of the first samples)."""
    base_rss: Optional[int] = None
    """Level when the warm-up ended; None when no sample was taken after it."""
    end_rss: int
    """Level at the end of the run (median of the last samples)."""
    growth: Optional[float] = None
    """(end - base) / base; None without a base."""
    slope_mib_per_min: Optional[float] = None
    """Least-squares slope of RSS after the warm-up (at least 3 samples), MiB per minute."""
    first_s: float
    last_s: float
    """Elapsed seconds of this process's first and last sample (a process that died stops early)."""

    @property
    def judged(self) -> bool:
        return self.role in GATEWAY_ROLES


class SoakSettings(BaseModel):
    host: str = "http://127.0.0.1:3000"
    """The gateway's URL (Locust's target; its port finds the gateway's processes)."""
    triton: Optional[str] = None
    """Triton's gRPC `host:port`; default: the gateway worker's DJSERVE_GATEWAY_TRITON_URL."""
    users: int = Field(4, ge=1)
    spawn_rate: Optional[float] = Field(None, gt=0)
    duration_s: int = Field(3600, ge=1)
    warmup_s: float = Field(600.0, ge=0)
    """Growth is measured from the end of the warm-up (caches, pools and arenas fill first)."""
    sample_every_s: float = Field(10.0, gt=0)
    max_growth: float = Field(0.05, gt=0)
    """Largest allowed (end - base) / base of every gateway process."""
    level_samples: int = Field(3, ge=1)
    policy: SloPolicy = Field(default_factory=lambda: SloPolicy(realtime=scenario("gateway").realtime))
    weights: Optional[dict[str, int]] = None
    out: Optional[Path] = None


class MemoryCheck(BaseModel):
    label: str
    passed: bool
    message: str


class SoakReport(BaseModel):
    settings: SoakSettings
    started_at: str
    """ISO time the load started."""
    duration_s: float
    """Load actually run (from Locust's start to its end)."""
    out_dir: Path
    processes: list[ProcessGrowth]
    memory_checks: list[MemoryCheck]
    events: list[str] = []
    """Processes that appeared or disappeared during the run."""
    slo: Optional[SloReport] = None
    requests: int = 0
    failures: int = 0

    @property
    def memory_passed(self) -> bool:
        return bool(self.memory_checks) and all(c.passed for c in self.memory_checks)

    @property
    def slo_passed(self) -> bool:
        return self.slo is not None and self.slo.passed

    @property
    def passed(self) -> bool:
        return self.memory_passed and self.slo_passed

    @property
    def failed(self) -> list[str]:
        out = [c.message for c in self.memory_checks if not c.passed]
        if not self.memory_checks:
            out.append("no gateway process was sampled")
        if self.slo is None:
            out.append("no SLO report (the load did not run)")
        else:
            out += [c.message for c in self.slo.failed]
        return out


# --- finding the stack's processes ---------------------------------------------------------------


def _port(url: str, default: int) -> tuple[str, int]:
    parts = urlsplit(url if "://" in url else f"//{url}")
    return parts.hostname or "127.0.0.1", parts.port or default


def listeners(port: int) -> list[psutil.Process]:
    """Processes with a TCP socket listening on `port` (a forked worker holding the server's socket too)."""
    pids: set[int] = set()
    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:  # not root on some systems: ask process by process
        conns = []
        for proc in psutil.process_iter():
            try:
                conns += [c._replace(pid=proc.pid) for c in proc.net_connections(kind="tcp")]
            except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
    for c in conns:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
            pids.add(c.pid)
    procs = []
    for pid in sorted(pids):
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    return procs


def _topmost(procs: list[psutil.Process]) -> psutil.Process | None:
    """The one process of `procs` none of whose ancestors is in `procs`."""
    pids = {p.pid for p in procs}
    for p in procs:
        try:
            if not any(a.pid in pids for a in p.parents()):
                return p
        except psutil.NoSuchProcess:
            continue
    return None


def _server_of(listener: psutil.Process) -> psutil.Process:
    """The `bentoml serve` process above a listening worker (BentoML hands the socket to its workers),
    else the listener itself."""
    proc = listener
    while True:
        try:
            parent = proc.parent()
        except psutil.NoSuchProcess:
            return proc
        command = _command(parent) if parent is not None else ""
        if "bentoml serve" not in command and "_bentoml_impl" not in command:
            return proc
        proc = parent


def _command(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
        return ""


def _worker_label(command: str, pid: int) -> str:
    m = re.search(r"--worker-id[ =](\d+)", command)
    return f"gateway-worker-{m.group(1)}" if m else f"gateway-worker-{pid}"


def _stub_label(command: str, pid: int) -> str:
    """`stub:judge/1` from the stub's first argument (`<repository>/<model>/<version>/model.*`)."""
    m = re.search(r"/([^/\s]+)/(\d+)/model\.\w+", command)
    return f"stub:{m.group(1)}/{m.group(2)}" if m else f"stub:{pid}"


def _unique(label: str, seen: set[str]) -> str:
    out, n = label, 1
    while out in seen:
        n += 1
        out = f"{label}#{n}"
    seen.add(out)
    return out


class StackProcesses:
    """The processes of one running gateway and its Triton, re-read on every `refresh()` (a worker
    or stub that is replaced shows up as a new label with its own pid)."""

    def __init__(self, gateway_url: str, triton_url: str | None = None) -> None:
        self.gateway_url = gateway_url
        self.triton_url = triton_url
        self.gateway_root: psutil.Process | None = None
        self.triton_roots: list[psutil.Process | None] = []
        self._triton_urls: list[str] = []
        self._labels: dict[int, str] = {}
        """pid -> label, stable for a pid's life"""
        self._seen: set[str] = set()
        self.events: list[str] = []

    def find(self) -> list[StackProcess]:
        """Locate the roots (listening sockets) and list every process; SoakError without a gateway."""
        _, port = _port(self.gateway_url, 80)
        listener = _topmost(listeners(port))
        if listener is None:
            raise SoakError(f"no process listens on port {port} ({self.gateway_url}): is the gateway running?")
        self.gateway_root = _server_of(listener)
        triton = self.triton_url or self._triton_from_gateway()
        self._triton_urls = [u.strip() for u in (triton or "").split(",") if u.strip()]
        self.triton_roots = []
        for url in self._triton_urls:
            root = _topmost(listeners(_port(url, 8001)[1]))
            if root is None:
                self.events.append(f"no process listens on Triton's {url}: it is not sampled")
            self.triton_roots.append(root)
        return self.refresh()

    def _revive(self) -> None:
        """A root that died (a supervisor restarted it): look for its successor on the same port."""
        if self.gateway_root is not None and not self.gateway_root.is_running():
            listener = _topmost(listeners(_port(self.gateway_url, 80)[1]))
            if listener is not None:
                self.gateway_root = _server_of(listener)
        for i, root in enumerate(self.triton_roots):
            if root is not None and not root.is_running():
                self.triton_roots[i] = _topmost(listeners(_port(self._triton_urls[i], 8001)[1])) or root

    def _triton_from_gateway(self) -> str | None:
        for proc in [self.gateway_root, *self._children(self.gateway_root)]:
            try:
                url = proc.environ().get(TRITON_URL_ENV)
            except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
            if url:
                return url
        return None

    @staticmethod
    def _children(proc: psutil.Process | None) -> list[psutil.Process]:
        if proc is None:
            return []
        try:
            return proc.children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def refresh(self) -> list[StackProcess]:
        self._revive()
        found: list[StackProcess] = []
        groups = [(self.gateway_root, "gateway-server", "gateway-worker")] + [(t, "tritonserver", "triton-stub") for t in self.triton_roots]
        for index, (root, root_role, child_role) in enumerate(groups):
            if root is None or not root.is_running():
                continue
            for proc in [root, *self._children(root)]:
                command = _command(proc)
                if proc is root:
                    role, base = root_role, root_role if root_role == "gateway-server" or len(self.triton_roots) == 1 \
                        else f"tritonserver-{index - 1}"
                elif child_role == "gateway-worker":
                    if "python" not in command and "bentoml" not in command:  # e.g. a shell helper
                        continue
                    role, base = child_role, _worker_label(command, proc.pid)
                else:
                    role, base = child_role, _stub_label(command, proc.pid)
                label = self._labels.get(proc.pid)
                if label is None:
                    label = self._labels[proc.pid] = _unique(base, self._seen)
                found.append(StackProcess(pid=proc.pid, role=role, label=label, command=command[:300]))
        return found


# --- sampling --------------------------------------------------------------------------------------


def rss(pid: int) -> int | None:
    try:
        return psutil.Process(pid).memory_info().rss
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return None


class MemorySampler:
    """Samples every stack process's RSS; each sample is appended to `csv_path` at once."""

    def __init__(self, processes: StackProcesses, csv_path: Path | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.processes = processes
        self.samples: list[MemorySample] = []
        self.csv_path = csv_path
        self._clock = clock
        self._t0 = clock()
        self._known: dict[int, StackProcess] = {}
        if csv_path is not None:
            csv_path.parent.mkdir(parents=True, exist_ok=True)
            with open(csv_path, "w", newline="") as f:
                csv.writer(f).writerow(CSV_COLUMNS)

    def restart_clock(self) -> None:
        self._t0 = self._clock()

    @property
    def elapsed_s(self) -> float:
        return self._clock() - self._t0

    def sample(self) -> list[MemorySample]:
        now, elapsed = round(time.time(), 3), round(self.elapsed_s, 3)
        current = {p.pid: p for p in self.processes.refresh()}
        for pid in set(current) - set(self._known):
            if self._known:  # not at the first sample
                p = current[pid]
                self.processes.events.append(f"{elapsed:.0f} s: {p.label} (pid {pid}) appeared")
        for pid in set(self._known) - set(current):
            p = self._known[pid]
            self.processes.events.append(f"{elapsed:.0f} s: {p.label} (pid {pid}) is gone")
        self._known = current
        batch = []
        for p in current.values():
            value = rss(p.pid)
            if value is not None:
                batch.append(MemorySample(elapsed_s=elapsed, time=now, label=p.label, role=p.role, pid=p.pid, rss_bytes=value))
        batch.sort(key=lambda s: (s.role, s.label))
        self.samples += batch
        if self.csv_path is not None and batch:
            with open(self.csv_path, "a", newline="") as f:
                w = csv.writer(f)
                for s in batch:
                    w.writerow([s.elapsed_s, s.time, s.label, s.role, s.pid, s.rss_bytes])
        return batch

    def latest(self, roles: Iterable[str] = GATEWAY_ROLES) -> dict[str, int]:
        """label -> RSS of the last sample of each process of these roles."""
        roles = set(roles)
        out: dict[str, int] = {}
        for s in self.samples:
            if s.role in roles:
                out[s.label] = s.rss_bytes
        return out


def read_samples(csv_path: Path) -> list[MemorySample]:
    with open(csv_path, newline="") as f:
        return [MemorySample(elapsed_s=float(r["elapsed_s"]), time=float(r["time"]), label=r["label"], role=r["role"],
                             pid=int(r["pid"]), rss_bytes=int(r["rss_bytes"])) for r in csv.DictReader(f)]


# --- the verdict ------------------------------------------------------------------------------------


def _level(values: list[int]) -> int:
    return int(statistics.median(values))


def _slope_per_min(points: list[tuple[float, int]]) -> float | None:
    if len(points) < 3:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var * 60 / MiB


def growth(samples: Iterable[MemorySample], warmup_s: float, level_samples: int = 3) -> list[ProcessGrowth]:
    """Per process (label and pid): its levels at the start, at the end of the warm-up and at the end,
    the growth from the warm-up's end, and the slope after it. A level is the median of
    `level_samples` consecutive samples: the first ones, the first ones at or after `warmup_s`, the
    last ones (fewer when the process has fewer)."""
    series: dict[tuple[str, int], list[MemorySample]] = {}
    for s in samples:
        series.setdefault((s.label, s.pid), []).append(s)
    out = []
    for (label, pid), points in series.items():
        points.sort(key=lambda s: s.elapsed_s)
        values = [s.rss_bytes for s in points]
        after = [s for s in points if s.elapsed_s >= warmup_s]
        # The base and end levels never share a sample: with few samples after the warm-up, each
        # level takes half of them (none: no base, no growth).
        k = min(level_samples, len(after) // 2)
        base_rss = _level([s.rss_bytes for s in after[:k]]) if k else None
        end_rss = _level(values[-(k or level_samples):])
        out.append(ProcessGrowth(
            label=label, role=points[0].role, pid=pid, samples=len(points),
            start_rss=_level(values[:level_samples]), base_rss=base_rss, end_rss=end_rss,
            growth=None if not base_rss else (end_rss - base_rss) / base_rss,
            slope_mib_per_min=_slope_per_min([(s.elapsed_s, s.rss_bytes) for s in after]),
            first_s=points[0].elapsed_s, last_s=points[-1].elapsed_s,
        ))
    return sorted(out, key=lambda g: (g.role, g.label, g.first_s))


def memory_checks(processes: list[ProcessGrowth], max_growth: float, run_s: float, sample_every_s: float,
                  roles: Iterable[str] = GATEWAY_ROLES) -> list[MemoryCheck]:
    """One check per judged process: growth below `max_growth`, and alive from start to end (a
    process that died or was replaced hides its own growth, so it fails the soak)."""
    roles = set(roles)
    checks = []
    slack = 2 * sample_every_s
    for g in processes:
        if g.role not in roles:
            continue
        name = f"{g.label} (pid {g.pid})"
        if g.first_s > slack or g.last_s < run_s - slack:
            checks.append(MemoryCheck(label=g.label, passed=False, message=(
                f"{name} lived only from {g.first_s:.0f} s to {g.last_s:.0f} s of {run_s:.0f} s (died or was replaced)")))
            continue
        if g.growth is None:
            checks.append(MemoryCheck(label=g.label, passed=False, message=(
                f"{name}: too few samples after the warm-up to measure growth (run longer than the warm-up)")))
            continue
        rule = f"RSS {g.base_rss / MiB:.0f} -> {g.end_rss / MiB:.0f} MiB after the warm-up"
        passed = g.growth < max_growth
        checks.append(MemoryCheck(label=g.label, passed=passed, message=(
            f"{name} {rule}: growth {g.growth:+.1%} {'<' if passed else '>='} {max_growth:.0%}")))
    return checks


def report_from(samples: list[MemorySample], cfg: SoakSettings, run_s: float, out_dir: Path, started_at: str,
                slo: SloReport | None, events: list[str] | None = None) -> SoakReport:
    processes = growth(samples, cfg.warmup_s, cfg.level_samples)
    report = SoakReport(
        settings=cfg, started_at=started_at, duration_s=round(run_s, 1), out_dir=out_dir, processes=processes,
        memory_checks=memory_checks(processes, cfg.max_growth, run_s, cfg.sample_every_s),
        events=list(events or []), slo=slo,
    )
    if slo is not None:
        report.requests = sum(e.requests for e in slo.endpoints)
        report.failures = sum(e.failures for e in slo.endpoints)
    return report


# --- the run ------------------------------------------------------------------------------------------


def default_out_dir() -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out, n = settings().state_dir / "soak" / stamp, 1
    while out.exists():
        n += 1
        out = settings().state_dir / "soak" / f"{stamp}-{n}"
    return out


Progress = Callable[[float, Mapping[str, int]], None]
"""(elapsed seconds, label -> latest RSS of every gateway process)"""


def soak(cfg: SoakSettings, progress: Progress | None = None) -> SoakReport:
    """Run the gateway scenario for `cfg.duration_s`, sampling memory; write memory.csv and soak.json."""
    out = Path(cfg.out) if cfg.out else default_out_dir()
    out.mkdir(parents=True, exist_ok=True)
    procs = StackProcesses(cfg.host, cfg.triton)
    procs.find()
    sampler = MemorySampler(procs, out / "memory.csv")
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    sampler.sample()  # t = 0: before the first request
    next_at = cfg.sample_every_s

    def tick(elapsed: float) -> None:
        nonlocal next_at
        if sampler.elapsed_s >= next_at and elapsed <= cfg.duration_s:
            sampler.sample()
            next_at += cfg.sample_every_s
            while next_at <= sampler.elapsed_s:  # a long stall: do not burst to catch up
                next_at += cfg.sample_every_s
        if progress:
            progress(min(sampler.elapsed_s, cfg.duration_s), sampler.latest())

    slo: SloReport | None = None
    result: RunResult | None = None
    try:
        result = run("gateway", cfg.host, cfg.users, cfg.spawn_rate, cfg.duration_s, out, cfg.policy, cfg.weights,
                     progress=tick)
        slo = result.report
    finally:
        run_s = min(sampler.elapsed_s, float(cfg.duration_s))
        if sampler.samples and sampler.samples[-1].elapsed_s < run_s - 1:
            sampler.sample()  # the level at the end of the load
        report = report_from(sampler.samples, cfg, run_s, out, started_at, slo, procs.events)
        (out / "soak.json").write_text(report.model_dump_json(indent=2) + "\n")
    return report
