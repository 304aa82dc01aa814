"""The FastAPI side of auth: bearer token → :class:`Actor`, with a minimum role per route."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from wattwise.api.auth import TokenStore, Verdict
from wattwise.api.schemas import Actor, Role

logger = logging.getLogger(__name__)

bearer = HTTPBearer(auto_error=False, description="API token (viewer, operator or admin)")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


class Authenticator:
    """Makes route dependencies that demand a token of at least some role."""

    def __init__(self, tokens: TokenStore) -> None:
        self.tokens = tokens

    def require(self, role: Role) -> Callable[[HTTPAuthorizationCredentials | None], Awaitable[Actor]]:
        """A dependency returning the caller, or raising 401 (no/bad/expired token) or 403 (role too low)."""
        tokens = self.tokens

        async def dependency(creds: HTTPAuthorizationCredentials | None = Security(bearer)) -> Actor:  # noqa: B008
            if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
                raise HTTPException(401, "missing bearer token", headers=_CHALLENGE)
            verdict, record = tokens.check(creds.credentials)
            if verdict is Verdict.EXPIRED and record is not None:
                logger.info("expired token of %s refused", record.name)
                raise HTTPException(401, "token expired", headers=_CHALLENGE)
            if verdict is not Verdict.OK or record is None:
                raise HTTPException(401, "invalid token", headers=_CHALLENGE)
            if record.role.rank < role.rank:
                raise HTTPException(403, f"needs role {role.value} or higher; token has {record.role.value}")
            return Actor(name=record.name, role=record.role)

        return dependency


def _query_names(dependant: Dependant) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def reject_unknown_query(request: Request) -> None:
    """422 for query parameters a route does not declare (a typo must not be silently ignored)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params or not request.url.path.startswith("/api/"):
        return  # the dashboard page may carry whatever a bookmark added
    unknown = sorted(set(request.query_params.keys()) - _query_names(route.dependant))
    if unknown:
        raise HTTPException(422, f"unknown query parameter(s): {', '.join(repr(u) for u in unknown[:5])}")
