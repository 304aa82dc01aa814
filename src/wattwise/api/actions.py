"""Mutating routes: arm/disarm, approve/deny, maintenance, what-if, tokens.

Each needs an operator (tokens: an admin) and is journaled with who did it: the backend
journals its own mutations, the API journals token management.
"""

import logging
from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Response

from wattwise.api.auth import TokenStore
from wattwise.api.base import ApiBackend
from wattwise.api.problems import problem_doc
from wattwise.api.schemas import (
    Actor,
    ApprovalRequest,
    ControllerStatus,
    MaintenanceRequest,
    MaintenanceView,
    ModeRequest,
    PlannedAction,
    Role,
    TokenInfo,
    TokenRequest,
    WhatIfRequest,
    WhatIfResult,
)
from wattwise.api.security import Authenticator

logger = logging.getLogger(__name__)


def action_router(backend: ApiBackend, auth: Authenticator) -> APIRouter:
    """Operator actions under ``/api/v1``."""
    operator = Annotated[Actor, Depends(auth.require(Role.OPERATOR))]
    router = APIRouter(prefix="/api/v1", tags=["operate"], responses=problem_doc(400, 401, 403, 413, 422, 429))

    @router.post("/mode", summary="Arm or disarm the controller", responses=problem_doc(409))
    async def set_mode(actor: operator, body: ModeRequest) -> ControllerStatus:
        logger.info("mode %s requested by %s", body.mode, actor.name)
        return await backend.set_mode(body.mode, actor, body.note)

    async def _decide(command_id: str, approve: bool, actor: Actor, body: ApprovalRequest | None) -> PlannedAction:
        note = body.note if body is not None else ""
        try:
            return await backend.decide_action(command_id, approve, actor, note)
        except KeyError as err:
            raise HTTPException(404, f"no planned action {command_id!r}") from err

    @router.post("/actions/{command_id}/approve", summary="Approve a pending action", responses=problem_doc(404, 409))
    async def approve(
        actor: operator, command_id: str, body: Annotated[ApprovalRequest | None, Body()] = None
    ) -> PlannedAction:
        return await _decide(command_id, True, actor, body)

    @router.post("/actions/{command_id}/deny", summary="Deny a pending action", responses=problem_doc(404, 409))
    async def deny(
        actor: operator, command_id: str, body: Annotated[ApprovalRequest | None, Body()] = None
    ) -> PlannedAction:
        return await _decide(command_id, False, actor, body)

    @router.post(
        "/devices/{device_id:path}/maintenance",
        summary="Mark a device as in (or out of) maintenance",
        responses=problem_doc(404, 409),
    )
    async def maintenance(actor: operator, device_id: str, body: MaintenanceRequest) -> MaintenanceView:
        try:
            return await backend.set_maintenance(device_id, body.on, actor, body.note)
        except KeyError as err:
            raise HTTPException(404, f"unknown device {device_id!r}") from err

    @router.post("/what-if", summary="Plan for a hypothetical loss (changes nothing)", responses=problem_doc(404))
    async def what_if(actor: operator, body: WhatIfRequest) -> WhatIfResult:
        try:
            return await backend.what_if(body.lose, actor)
        except KeyError as err:
            raise HTTPException(404, str(err.args[0]) if err.args else "unknown device") from err

    return router


def token_router(backend: ApiBackend, auth: Authenticator, tokens: TokenStore) -> APIRouter:
    """Token management (admin only)."""
    admin = Annotated[Actor, Depends(auth.require(Role.ADMIN))]
    router = APIRouter(prefix="/api/v1/tokens", tags=["admin"], responses=problem_doc(400, 401, 403, 413, 422, 429))

    @router.get("", summary="List tokens (never their secrets)")
    async def list_tokens(actor: admin) -> tuple[TokenInfo, ...]:
        return tuple(TokenInfo(name=r.name, role=r.role, expires_t_s=r.expires_t_s) for r in tokens.records())

    @router.post("", summary="Issue a token; the secret is returned once", status_code=201)
    async def issue(actor: admin, body: TokenRequest) -> TokenInfo:
        secret, record = tokens.issue(body.name, body.role, body.ttl_s)
        await backend.journal_api_event(actor, "token-issue", body.name, f"role {body.role.value}")
        return TokenInfo(name=record.name, role=record.role, expires_t_s=record.expires_t_s, token=secret)

    @router.delete("/{name}", summary="Revoke every token of a name", status_code=204, responses=problem_doc(404))
    async def revoke(actor: admin, name: str) -> Response:
        if not tokens.revoke(name):
            raise HTTPException(404, f"no token named {name!r}")
        await backend.journal_api_event(actor, "token-revoke", name, "revoked")
        return Response(status_code=204)

    return router
