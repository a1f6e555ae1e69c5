"""Where the Triton replicas are: one setting, read by the gateway and by promotion.

A replica setting is a comma-separated list of `host:port` entries; an entry `dns:///name:port`
stands for every address the name resolves to (a Kubernetes headless Service answers with one
address per ready pod). The gateway hands a `dns:///` entry to gRPC, which re-resolves it and
balances over the pods itself; promotion expands it here, at each step, because version fencing
must reach every pod by its own address.
"""

from __future__ import annotations

import socket

DNS_PREFIX = "dns:///"


def split(setting: str) -> list[str]:
    """The entries of a replica setting, in order, without blanks or repeats."""
    entries = [e.strip() for e in setting.split(",")]
    return list(dict.fromkeys(e for e in entries if e))


def _host_port(entry: str) -> tuple[str, int]:
    host, sep, port = entry.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"Triton replica {entry!r} is not host:port")
    return host.strip("[]"), int(port)


def expand(setting: str, scheme: str = "") -> list[str]:
    """Every replica's own address (`scheme` + host:port), `dns:///` entries resolved now.

    A name that resolves to nothing is an error naming it: a promotion must not silently skip pods."""
    replicas: list[str] = []
    for entry in split(setting):
        bare = entry.removeprefix("http://").removeprefix("https://")
        if bare.startswith(DNS_PREFIX):
            host, port = _host_port(bare.removeprefix(DNS_PREFIX))
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except socket.gaierror as exc:
                raise ValueError(f"Triton replicas {entry!r}: {host} does not resolve ({exc.strerror})") from None
            addresses = sorted({info[4][0] for info in infos})
            replicas += [f"{scheme}[{a}]:{port}" if ":" in a else f"{scheme}{a}:{port}" for a in addresses]
        else:
            _host_port(bare)
            replicas.append(f"{scheme}{bare}")
    if not replicas:
        raise ValueError(f"no Triton replica in {setting!r}")
    return list(dict.fromkeys(replicas))
