"""FastAPI dependencies shared by the admin API routes: services and the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from api.security import Principal
from api.services import Services


def get_services(request: Request) -> Services:
    return request.app.state.services


async def get_principal(request: Request) -> Principal:
    """Authenticate the bearer token; 401 with a ``WWW-Authenticate`` challenge otherwise."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    principal = None
    if scheme.lower() == "bearer" and token:
        principal = await request.app.state.authenticator.authenticate(token.strip())
    if principal is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="authentication required",
                            headers={"WWW-Authenticate": 'Bearer realm="tikflow"'})
    request.state.principal = principal
    return principal


def require_role(*roles: str):
    """Return a dependency that admits callers holding any of ``roles``."""

    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if not principal.roles & set(roles):
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                detail=f"this action needs one of the roles: {', '.join(roles)}")
        return principal

    return check


ServicesDep = Annotated[Services, Depends(get_services)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
