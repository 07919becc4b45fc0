from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm

from webapi.api.responses import errors
from webapi.deps import SessionDep, SettingsDep, unauthorized
from webapi.schemas import Token
from webapi.security import create_access_token
from webapi.services import users as users_service

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/token",
    response_model=Token,
    summary="OAuth2 password flow: email as username, returns a bearer JWT",
    responses=errors(400, 401, 413, 503),
)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    settings: SettingsDep,
) -> Token:
    if "\x00" in form.username:
        # No email holds a NUL (PostgreSQL text cannot), nor can a query parameter carry one.
        raise unauthorized("Incorrect email or password")
    user = await users_service.authenticate(
        session=session,
        email=form.username,
        password=form.password,
        hash_concurrency=settings.password_hash_concurrency,
    )
    if user is None:
        raise unauthorized("Incorrect email or password")
    token, expires_in = create_access_token(user.id, settings)
    return Token(access_token=token, expires_in=expires_in)
