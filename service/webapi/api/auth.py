from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request, status

from webapi.api.responses import errors
from webapi.config import Platform, Settings
from webapi.deps import CacheDep, SessionDep, SettingsDep, unauthorized
from webapi.emails import canonical_email
from webapi.schemas import Token
from webapi.security import create_access_token
from webapi.services import users as users_service
from webapi.throttle import LoginThrottle, Throttled

router = APIRouter(prefix="/auth", tags=["auth"])


def client_address(request: Request, settings: Settings) -> str | None:
    """The address to throttle by. On Cloud Run the Google front end appends the address it saw
    to X-Forwarded-For, after whatever the client sent: the last entry is the one to trust (the
    first, which uvicorn reports as the client, is the client's own say). On Lambda, API Gateway's
    sourceIp arrives as the ASGI client; locally, the socket's peer."""
    if settings.platform is Platform.CLOUD_RUN:
        forwarded = request.headers.get("x-forwarded-for", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last[:64]
    return request.client.host if request.client else None


class PasswordForm:
    """The OAuth2 password grant's form (RFC 6749, 4.3.2), stated as it is validated. FastAPI
    takes an empty form field for an absent one: so ``grant_type=`` is allowed by the published
    pattern as well, and an empty username or password is refused by it (``minLength``), as the
    validation refuses them. (OAuth2PasswordRequestForm published neither.)"""

    def __init__(
        self,
        username: Annotated[str, Form(min_length=1, description="Your email address")],
        password: Annotated[str, Form(min_length=1, json_schema_extra={"format": "password"})],
        grant_type: Annotated[str | None, Form(pattern="^(password)?$")] = None,
    ) -> None:
        self.username = username
        self.password = password


@router.post(
    "/token",
    response_model=Token,
    summary="OAuth2 password flow: email as username, returns a bearer JWT",
    responses=errors(400, 401, 413, 429, 503),
)
async def login(
    request: Request,
    form: Annotated[PasswordForm, Depends()],
    session: SessionDep,
    settings: SettingsDep,
    cache: CacheDep,
) -> Token:
    if "\x00" in form.username:
        # No email holds a NUL (PostgreSQL text cannot), nor can a query parameter carry one.
        raise unauthorized("Incorrect email or password")
    throttle: LoginThrottle = request.app.state.login_throttle
    client = client_address(request, settings)
    email = canonical_email(form.username)  # the form sign-up stored: looked up and counted
    try:
        # Before the password is checked: a locked account stays locked for the right one too.
        counted = await throttle.attempt(cache, email=email, client=client)
    except Throttled as exc:
        raise too_many("Too many failed logins; try again later", exc) from None
    try:
        user = await users_service.authenticate(
            session=session,
            email=email,
            password=form.password,
            hash_concurrency=settings.password_hash_concurrency,
        )
    except BaseException:
        # Not judged (the database is down: 503): the attempt does not count against the user.
        await throttle.refund(cache, counted)
        raise
    if user is None:
        raise unauthorized("Incorrect email or password")  # the attempt stays counted
    await throttle.succeeded(cache, email=email, client=client)
    token, expires_in = create_access_token(user.id, settings)
    return Token(access_token=token, expires_in=expires_in)


def too_many(detail: str, exc: Throttled) -> HTTPException:
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS, detail, headers={"Retry-After": str(exc.retry_after_seconds)}
    )
