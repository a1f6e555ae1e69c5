"""The admin key that restricts Triton's model-control API (load, unload, repository index).

One setting, `DJSERVE_TRITON_ADMIN_KEY`: the embedded Triton is started with it (see
`TritonSettings.admin_key`) and the promotion tooling sends it (`PromotionSettings.admin_key`).
Unset, Triton's model control is open to anyone who can reach its ports (loopback by default).

Triton 2.51 flags (checked on the embedded binary; the gRPC one is `-protocol`, not `-api`):

    --http-restricted-api=model-repository:admin-key=<key>
    --grpc-restricted-protocol=model-repository:admin-key=<key>

A restricted HTTP request must carry the header `admin-key: <key>` (else 403); a gRPC one
the metadata `triton-grpc-protocol-admin-key: <key>` (else UNAVAILABLE). Health, metadata,
config, statistics and inference stay open: the gateway needs no key.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, SecretStr

ADMIN_KEY_ENV = "DJSERVE_TRITON_ADMIN_KEY"
ADMIN_KEY_HEADER = "admin-key"
"""The header name (HTTP); lowercase, as gRPC metadata keys must be."""
GRPC_HEADER_PREFIX = "triton-grpc-protocol-"
"""Triton prefixes the key of every gRPC restriction with this (kRestrictedProtocolHeaderTemplate)."""
RESTRICTED_APIS = ("model-repository",)
"""Triton's category of `repository/index`, `repository/models/<m>/load` and `.../unload`."""
MIN_KEY_LENGTH = 16


def _check_key(value: SecretStr | None) -> SecretStr | None:
    """Empty means unset. The messages never contain the key (and the settings classes that use
    this type set `hide_input_in_errors`, so pydantic does not echo it either)."""
    if value is None or value.get_secret_value() == "":
        return None
    raw = value.get_secret_value()
    if len(raw) < MIN_KEY_LENGTH:
        raise ValueError(f"{ADMIN_KEY_ENV} must be at least {MIN_KEY_LENGTH} characters long")
    if not all("!" <= c <= "~" for c in raw):
        raise ValueError(f"{ADMIN_KEY_ENV} must be printable ASCII without spaces (it is sent as a header)")
    return value


AdminKey = Annotated[Optional[SecretStr], AfterValidator(_check_key)]
"""A validated admin key, or None (no restriction)."""


def _raw(key: SecretStr | str | None) -> str | None:
    if isinstance(key, SecretStr):
        key = key.get_secret_value()
    return key or None


def admin_headers(key: SecretStr | str | None, protocol: Literal["http", "grpc"] = "http") -> dict[str, str]:
    """The header a model-control request needs (`{}` when there is no key)."""
    raw = _raw(key)
    if raw is None:
        return {}
    return {(ADMIN_KEY_HEADER if protocol == "http" else GRPC_HEADER_PREFIX + ADMIN_KEY_HEADER): raw}


def restricted_api_args(key: SecretStr | str | None) -> list[str]:
    """The `tritonserver` flags that restrict the model-control API to holders of `key`."""
    raw = _raw(key)
    if raw is None:
        return []
    apis = ",".join(RESTRICTED_APIS)
    return [
        f"--http-restricted-api={apis}:{ADMIN_KEY_HEADER}={raw}",
        f"--grpc-restricted-protocol={apis}:{ADMIN_KEY_HEADER}={raw}",
    ]

