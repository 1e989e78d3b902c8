"""Lets the page check a supervisor token before the supervisor relies on it."""

from __future__ import annotations

from fastapi import APIRouter

from ..security import SupervisorDep

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.get(
    "",
    dependencies=[SupervisorDep],
    responses={401: {"description": "No or wrong supervisor token."}},
)
def check_token() -> dict[str, bool]:
    """``{"supervisor": true}`` when the bearer token is the supervisor token."""
    return {"supervisor": True}
