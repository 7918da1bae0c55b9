"""FastAPI dependencies shared by the admin API routes: services and the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from api.authz import AccessDenied, tool_access
from api.ratelimit import RateLimited
from api.security import Principal
from api.services import Services


def get_services(request: Request) -> Services:
    return request.app.state.services


async def get_principal(request: Request) -> Principal:
    """Authenticate the bearer token and count the call against the caller's rate limit.

    401 with a ``WWW-Authenticate`` challenge naming the protected-resource metadata when the
    token is missing or invalid; 429 with ``Retry-After`` when the caller is over its limit.
    """
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    principal = None
    if scheme.lower() == "bearer" and token:
        principal = await request.app.state.authenticator.authenticate(token.strip())
    if principal is None:
        challenge = 'Bearer realm="tikflow"'
        metadata_url = getattr(request.app.state, "resource_metadata_url", None)
        if metadata_url:
            challenge += f', resource_metadata="{metadata_url}"'
        if token:
            challenge += ', error="invalid_token"'
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="authentication required",
                            headers={"WWW-Authenticate": challenge})
    request.state.principal = principal
    if not principal.roles:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            detail="your token grants no tikflow role; ask your identity provider "
                                   "administrator for one of: reader, operator, approver, admin")
    access = tool_access(request.app.state.services)
    try:
        await access.limiter.hit(f"caller:{principal.subject}",
                                 access.settings.auth.rate_limits.per_caller_per_minute,
                                 subject=f"caller {principal.subject}")
    except RateLimited as err:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, detail=str(err),
                            headers={"Retry-After": str(err.retry_after)}) from None
    return principal


def require_role(*roles: str):
    """Return a dependency that admits callers holding any of ``roles``."""

    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if not principal.roles & set(roles):
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                detail=f"this action needs one of the roles: {', '.join(roles)}")
        return principal

    return check


def require_tier(tier: str):
    """Return a dependency that admits callers whose roles grant ``tier`` in any environment.

    The same matrix as the MCP tools decides, so ``auth.matrix`` overrides apply to routes too.
    """

    async def check(request: Request,
                    principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        matrix = tool_access(request.app.state.services).matrix
        try:
            matrix.check(principal.roles, tier, what=f"{request.method} {request.url.path}")
        except AccessDenied as err:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=str(err)) from None
        return principal

    return check


ServicesDep = Annotated[Services, Depends(get_services)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
