"""Traffic policies: which Triton model version each request of a model family goes to.

A policy is data that changes while the gateway runs. It lives in a JSON file:

    {"families": {"judge": {"stable": 1, "canary": 2, "canary_percent": 10}, ...},
     "sentiment": {"stable": 1, "shadow": 2, "shadow_percent": 25}},
     "updated_at": "2025-01-01T12:00:00Z", "updated_by": "ops"}

`PolicyStore.current()` is cheap enough to call on every request (one `os.stat` while the file is
unchanged) and re-reads the file when it changes; a bad file never breaks requests (the last good
policy keeps serving). `route()` sends a key (a battle id, a user id) to the canary or the stable
version by a stable hash, so the same key always gets the same version and raising the canary share
only moves keys from stable to canary. A shadow version never answers anyone: the gateway mirrors the
requests of `shadow_percent` of the keys to it after the caller has its answer, and compares.

The policy is the contract between MLOps (which writes it) and the gateway (which reads it).

    store = PolicyStore(Path("policy.json"), default=lambda: TrafficPolicy.all_stable(FAMILIES))
    r = route(store.current(), "judge", key=battle_id, pinned=header_version)
    r.version, r.canary, r.pinned
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from djserve.files import atomic_write_text
from djserve.specs import EXPORTED

log = logging.getLogger(__name__)

FAMILIES: tuple[str, ...] = tuple(EXPORTED)
"""Model families the gateway routes: the exported models."""

BUCKETS = 10_000
"""A key hashes to a bucket in [0, BUCKETS); a canary_percent of p takes buckets < p * 100."""


class FamilyPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stable: int = Field(ge=1, description="the version every request gets unless canaried or pinned")
    canary: Optional[int] = Field(None, ge=1, description="the version under trial, if any")
    canary_percent: float = Field(0.0, ge=0.0, le=100.0, description="share of keys sent to the canary")
    previous_stable: Optional[int] = Field(None, ge=1, description="the champion before the last promotion (rollback target)")
    shadow: Optional[int] = Field(None, ge=1, description="a candidate that gets mirrored requests; its answers are never returned")
    shadow_percent: float = Field(0.0, ge=0.0, le=100.0, description="share of keys whose requests are mirrored to the shadow")

    @model_validator(mode="after")
    def _check(self) -> "FamilyPolicy":
        if self.canary_percent > 0 and self.canary is None:
            raise ValueError(f"canary_percent is {self.canary_percent:g} but no canary version is set")
        if self.canary is not None and self.canary == self.stable:
            raise ValueError(f"canary and stable are both version {self.stable}")
        if self.shadow_percent > 0 and self.shadow is None:
            raise ValueError(f"shadow_percent is {self.shadow_percent:g} but no shadow version is set")
        if self.shadow is not None and self.shadow == self.stable:
            raise ValueError(f"shadow and stable are both version {self.stable}")
        return self

    @property
    def candidate(self) -> Optional[int]:
        """The version under trial, in shadow or as the canary."""
        return self.canary or self.shadow

    def serving(self) -> list[int]:
        """Every version this family needs loaded: stable, canary, shadow and the rollback target."""
        return sorted({self.stable, *(v for v in (self.canary, self.shadow, self.previous_stable) if v)})


class TrafficPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    families: dict[str, FamilyPolicy]
    updated_at: Optional[str] = None
    updated_by: Optional[str] = None

    @classmethod
    def all_stable(cls, families: Iterable[str] | Mapping[str, int] = FAMILIES, version: int = 1) -> "TrafficPolicy":
        """Every family on one stable version and no canary; a mapping gives each family its version."""
        if isinstance(families, Mapping):
            return cls(families={f: FamilyPolicy(stable=v) for f, v in families.items()})
        return cls(families={f: FamilyPolicy(stable=version) for f in families})


@dataclass(frozen=True)
class Route:
    family: str
    version: int
    canary: bool
    """The version is the family's canary."""
    pinned: bool
    """The caller asked for this version (X-Model-Version)."""
    shadow: Optional[int] = None
    """Mirror this request to that version once the caller is answered (never for pinned requests)."""


def bucket(family: str, key: str) -> int:
    """The key's bucket in [0, BUCKETS): a stable hash, the same in every process and every run."""
    digest = hashlib.blake2b(f"{family}:{key}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def route(policy: TrafficPolicy, family: str, key: str, pinned: int | None = None) -> Route:
    """The version this request of `family` goes to. A pinned version wins over the policy."""
    try:
        fp = policy.families[family]
    except KeyError:
        known = ", ".join(sorted(policy.families)) or "none"
        raise KeyError(f"no traffic policy for model family {family!r}; known: {known}") from None
    if pinned is not None:
        if isinstance(pinned, bool) or not isinstance(pinned, int) or pinned < 1:
            raise ValueError(f"pinned version must be an integer >= 1, got {pinned!r}")
        return Route(family, pinned, canary=fp.canary is not None and pinned == fp.canary, pinned=True)
    b = bucket(family, key)
    if fp.canary is not None and fp.canary_percent > 0 and b < fp.canary_percent * (BUCKETS / 100):
        return Route(family, fp.canary, canary=True, pinned=False)
    # The shadow mirrors the keys a canary takes first: its comparison is about the same traffic.
    shadow = fp.shadow if fp.shadow is not None and b < fp.shadow_percent * (BUCKETS / 100) else None
    return Route(family, fp.stable, canary=False, pinned=False, shadow=shadow)


def newest_versions(repository: Path) -> TrafficPolicy:
    """The policy without a policy file: every family on its newest exported version (1 if none)."""
    from djserve.repository import ModelRepository

    repo = ModelRepository(repository)
    return TrafficPolicy.all_stable({f: repo.latest(f) or 1 for f in FAMILIES})


_Signature = tuple[int, int, int, int]


def _signature(st: os.stat_result) -> _Signature:
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)


class PolicyStore:
    """The traffic policy in a JSON file, re-read when the file changes (no restart).

    Families missing from the file fall back to the default policy's entries. A missing file means
    the default policy; an unreadable or invalid file keeps the last good policy serving and logs one
    warning per bad file version. `current()` never raises.
    """

    def __init__(self, path: Path | str, default: Callable[[], TrafficPolicy]):
        self.path = Path(path)
        self._default = default
        self._lock = threading.Lock()
        self._cached: Optional[tuple[Optional[_Signature], TrafficPolicy]] = None
        """(signature of the file version it reflects, None for an absent file; the policy in use)"""
        self._from_file = False
        self._warned: Optional[tuple[Optional[_Signature], str]] = None
        self.last_error: Optional[str] = None
        """Why the current file version was rejected; None when it was accepted or is absent."""

    @property
    def from_file(self) -> bool:
        """The policy in use came from the file (False: the default)."""
        return self._from_file

    def current(self) -> TrafficPolicy:
        """The policy in force now; one os.stat while the file is unchanged. Never raises once a
        policy (file or default) has been served."""
        try:
            sig: Optional[_Signature] = _signature(os.stat(self.path))
        except FileNotFoundError:
            sig = None
        except OSError as e:  # permissions, a broken mount: keep serving what we have
            with self._lock:
                return self._keep_last(None, f"cannot stat {self.path}: {e}")
        cached = self._cached
        if cached is not None and cached[0] == sig:
            return cached[1]
        with self._lock:
            cached = self._cached
            if cached is not None and cached[0] == sig:
                return cached[1]
            if sig is None:
                return self._use_default()
            return self._load()

    def write(self, policy: TrafficPolicy) -> None:
        """Write the policy atomically (a temp file in the same folder, then os.replace)."""
        policy = TrafficPolicy.model_validate(policy.model_dump())
        atomic_write_text(self.path, policy.model_dump_json(indent=2) + "\n")

    # --- internals (called under the lock) ---------------------------------------------------

    def _use_default(self) -> TrafficPolicy:
        try:
            policy = self._default()
        except Exception as e:  # noqa: BLE001 - never raise on the request path if we can serve
            return self._keep_last(None, f"the default traffic policy failed: {e}")
        self._cached, self._from_file, self.last_error = (None, policy), False, None
        return policy

    def _load(self) -> TrafficPolicy:
        try:
            with open(self.path, "rb") as f:
                sig = _signature(os.fstat(f.fileno()))  # what we actually read, not what we stat'ed
                raw = f.read()
        except FileNotFoundError:  # removed between stat and open
            return self._use_default()
        except OSError as e:
            return self._keep_last(None, f"cannot read {self.path}: {e}")
        if self._cached is not None and self._cached[0] == sig:
            return self._cached[1]
        try:
            from_file = TrafficPolicy.model_validate_json(raw)
            default = self._default()
            policy = from_file.model_copy(update={"families": {**default.families, **from_file.families}})
        except ValidationError as e:
            return self._keep_last(sig, f"invalid traffic policy {self.path}: {_short(e)}")
        except Exception as e:  # noqa: BLE001
            return self._keep_last(sig, f"cannot load traffic policy {self.path}: {e}")
        self._cached, self._from_file, self.last_error = (sig, policy), True, None
        log.info("traffic policy loaded from %s (updated_at=%s, updated_by=%s)", self.path,
                 policy.updated_at, policy.updated_by)
        return policy

    def _keep_last(self, sig: Optional[_Signature], why: str) -> TrafficPolicy:
        """Serve the last good policy (or the default if there is none); warn once per bad file version.

        With a signature (a bad file version), that version is remembered so it is not re-read on
        every request; without one (stat/read failures) the file is tried again next time."""
        if self._warned != (sig, why):
            log.warning("%s; keeping the last good traffic policy", why)
            self._warned = (sig, why)
        self.last_error = why
        if self._cached is not None:
            policy = self._cached[1]
        else:
            try:
                policy, self._from_file = self._default(), False
            except Exception as e:  # noqa: BLE001 - nothing to serve at all
                raise RuntimeError(f"{why}; and the default traffic policy failed: {e}") from e
        if sig is not None:
            self._cached = (sig, policy)
        return policy


def _short(e: ValidationError) -> str:
    parts = []
    for err in e.errors()[:5]:
        loc = ".".join(str(x) for x in err.get("loc", ())) or "<root>"
        parts.append(f"{loc}: {err.get('msg')}")
    more = f" (+{e.error_count() - 5} more)" if e.error_count() > 5 else ""
    return "; ".join(parts) + more
