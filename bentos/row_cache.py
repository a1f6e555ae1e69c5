"""A per-row answer cache in the gateway, in front of the micro-batcher.

Triton's response cache is keyed by a whole call, and the gateway joins concurrent requests into one
call (bentos.batching): under load the same joined call rarely comes twice, so it rarely hits. Here
each row (one chat message) is its own entry: the rows of a request found in the cache are answered
at once, only the others go to Triton (as one request, in their order), and a request whose rows
are all known makes no Triton call at all.

An entry is keyed by model, version and, for each input in the spec's order, its dtype, row shape
and row bytes (hashed: a 512-token row is 8 KiB of key). A version never answers from another
version's entries, and versions never change once exported (as the gateway's tokenizer cache
assumes too). Errors are never stored. One instance per event loop: nothing awaits between a
lookup and its use, so no lock is needed.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Awaitable, Callable, Hashable, Mapping

import numpy as np

from bentos.metrics import row_cache_rows
from djserve.specs import ModelSpec

Arrays = Mapping[str, np.ndarray]
Row = dict[str, np.ndarray]


def serves(spec: ModelSpec) -> bool:
    """The model's answer is a pure function of each row (response_cache), its requests are rows the
    gateway may split and join (gateway_joins), and every input has plain bytes to key (not BYTES,
    whose numpy bytes are object pointers)."""
    return spec.response_cache and spec.batching.gateway_joins and all(t.dtype != "BYTES" for t in spec.inputs)


class RowCache:
    """Bounded LRU: row key -> that row's outputs (output name -> numpy row)."""

    def __init__(self, max_entries: int):
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.max_entries = max_entries
        self._rows: OrderedDict[Hashable, Row] = OrderedDict()

    def __len__(self) -> int:
        return len(self._rows)

    @staticmethod
    def key(spec: ModelSpec, version: int, inputs: Arrays, row: int) -> Hashable:
        h = hashlib.blake2b(digest_size=16)
        for name in spec.input_names:
            a = inputs[name]
            # dtype and shape first: with them, the bytes that follow have one reading
            h.update(f"{name}|{a.dtype.str}|{a.shape[1:]}|".encode())
            h.update(np.ascontiguousarray(a[row]).tobytes())
        return spec.name, version, h.digest()

    def get(self, key: Hashable) -> Row | None:
        row = self._rows.get(key)
        if row is not None:
            self._rows.move_to_end(key)
        return row

    def put(self, key: Hashable, row: Row) -> None:
        self._rows[key] = row
        self._rows.move_to_end(key)
        while len(self._rows) > self.max_entries:
            self._rows.popitem(last=False)

    async def answer(
        self, spec: ModelSpec, version: int, inputs: Arrays, call: Callable[[Arrays], Awaitable[dict[str, np.ndarray]]]
    ) -> dict[str, np.ndarray]:
        """The outputs of `inputs`, rows in order: known rows from the cache, the others from one
        `call` with just those rows (each distinct row once), stored when it succeeds."""
        sizes = {a.shape[0] for a in inputs.values()}
        n = sizes.pop() if len(sizes) == 1 else 0
        if not n:  # no rows, or inputs that disagree on them: the normal path reports it
            return await call(inputs)
        keys = [self.key(spec, version, inputs, i) for i in range(n)]
        found: list[Row | None] = [self.get(k) for k in keys]
        missing: dict[Hashable, int] = {}  # key -> first row with it (a repeat within a request goes once)
        for i, (k, row) in enumerate(zip(keys, found)):
            if row is None:
                missing.setdefault(k, i)
        counter = row_cache_rows()
        counter.labels(model=spec.name, outcome="hit").inc(n - len(missing))
        if not missing:
            return {name: np.stack([row[name] for row in found]) for name in found[0]}
        counter.labels(model=spec.name, outcome="miss").inc(len(missing))
        send = list(missing.values())
        out = await call(inputs if len(send) == n else {name: a[send] for name, a in inputs.items()})
        fresh = {k: {name: a[j].copy() for name, a in out.items()} for j, k in enumerate(missing)}  # copies: no view of `out`
        for k, row in fresh.items():
            self.put(k, row)
        if len(send) == n:
            return out
        rows = [row if row is not None else fresh[k] for k, row in zip(keys, found)]
        return {name: np.stack([row[name] for row in rows]) for name in out}
