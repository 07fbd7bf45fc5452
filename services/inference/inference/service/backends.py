"""Backend use cases: list and get with live health, drain and undrain, the node catalog of a backend."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from inference.domain.backends import BackendState, backend_id_from_name
from inference.domain.catalog import NodeSpec
from inference.service.pool import Pool
from servicekit import auth, context, errors

OPERATOR_SCOPE = "inference.operate"
MAX_DRAIN_REASON = 200


def decode_page_token(token: str) -> int:
    """The offset a page token stands for; INVALID_ARGUMENT reason PAGE_TOKEN_INVALID otherwise."""
    if not token:
        return 0
    try:
        offset = int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("o:"))
    except (ValueError, UnicodeDecodeError):
        offset = -1
    if offset < 0:
        raise errors.InvalidArgument(
            "page_token is not a token this service issued",
            reason="PAGE_TOKEN_INVALID",
            violations=(errors.FieldViolation("page_token", "not a token this service issued"),),
        )
    return offset


def encode_page_token(offset: int) -> str:
    """The page token for `offset`."""
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def page_bounds(page_size: int, default: int, maximum: int) -> int:
    """The effective page size."""
    return default if page_size <= 0 else min(page_size, maximum)


@dataclass(frozen=True)
class NodeTypePage:
    """One page of node types of one backend."""

    backend_id: str
    nodes: list[NodeSpec]
    next_page_token: str


def require_operator() -> None:
    """PERMISSION_DENIED reason OPERATOR_REQUIRED unless the caller is a service or an operator."""
    caller = context.principal()
    if caller is not None and (auth.is_service(caller) or caller.has_scope(OPERATOR_SCOPE)):
        return
    raise errors.PermissionDenied(
        f"draining a backend needs an operator (scope {OPERATOR_SCOPE!r}) or a service principal",
        reason="OPERATOR_REQUIRED",
    )


class Backends:
    """Reading and operating the pool."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def page(self, page_size: int, page_token: str) -> tuple[list[BackendState], str]:
        """A page of backends ordered by name."""
        offset = decode_page_token(page_token)
        size = page_bounds(page_size, 100, 100)
        ids = sorted(self.pool.members)
        page = [self.pool.view(i) for i in ids[offset : offset + size]]
        more = offset + size < len(ids)
        return page, encode_page_token(offset + size) if more else ""

    def get(self, name: str) -> BackendState:
        """One backend."""
        return self.pool.view(backend_id_from_name(name))

    async def drain(self, name: str, reason: str) -> BackendState:
        """Stops scheduling new work on a backend; idempotent."""
        require_operator()
        backend_id = backend_id_from_name(name)
        self.pool.get(backend_id)
        if len(reason) > MAX_DRAIN_REASON:
            raise errors.InvalidArgument(
                f"reason: at most {MAX_DRAIN_REASON} characters",
                reason="DRAIN_REASON_TOO_LONG",
                violations=(errors.FieldViolation("reason", f"at most {MAX_DRAIN_REASON} characters"),),
            )
        await self.pool.drains.set(backend_id, reason)
        state = self.pool.view(backend_id)
        state.draining, state.drain_reason = True, reason
        await self.pool.notify()
        return state

    async def undrain(self, name: str) -> BackendState:
        """Lets a backend receive new work again; idempotent."""
        require_operator()
        backend_id = backend_id_from_name(name)
        self.pool.get(backend_id)
        await self.pool.drains.clear(backend_id)
        state = self.pool.view(backend_id)
        state.draining, state.drain_reason = False, ""
        await self.pool.notify()
        return state

    async def node_types(
        self, parent: str, page_size: int, page_token: str, class_types: list[str], category_prefix: str
    ) -> NodeTypePage:
        """A page of the node classes a backend offers, ordered by class type."""
        offset = decode_page_token(page_token)
        size = page_bounds(page_size, 100, 500)
        if parent == "backends/-":
            healthy = [
                m for m in self.pool.sorted_members() if m.state.schedulable and m.client.cached_catalog
            ]
            if not healthy:
                raise errors.Unavailable("no healthy backend", reason="BACKEND_UNAVAILABLE", retry_after=2.0)
            member = healthy[0]
        else:
            member = self.pool.get(backend_id_from_name(parent))
        catalog = member.client.cached_catalog
        if catalog is None:
            raise errors.Unavailable(
                f"the catalog of {member.state.name} was never fetched",
                reason="BACKEND_UNAVAILABLE",
                retry_after=2.0,
            )
        wanted: set[str] = set(class_types)
        specs = [
            spec
            for key, spec in sorted(catalog.nodes.items())
            if (not wanted or key in wanted) and spec.category.startswith(category_prefix)
        ]
        more = offset + size < len(specs)
        return NodeTypePage(
            member.state.backend_id,
            specs[offset : offset + size],
            encode_page_token(offset + size) if more else "",
        )
