from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException, Request, Response, status
from starlette.convertors import StringConvertor, register_url_convertor

from webapi.api.auth import client_address, too_many
from webapi.api.responses import errors
from webapi.deps import CacheDep, CurrentUser, OptionalStorageDep, PaginationDep, SessionDep, SettingsDep
from webapi.schemas import Page, UserCreate, UserProfile, UserPublic
from webapi.services import users as users_service
from webapi.throttle import SignUpThrottle, Throttled

router = APIRouter(prefix="/users", tags=["users"])


class NotMeConvertor(StringConvertor):
    """A path segment other than ``me``: /users/me is a resource of its own, so DELETE on it
    gets 405 (GET only), instead of passing for DELETE /users/{user_id} with a malformed id."""

    regex = "(?!me$)[^/]+"


register_url_convertor("not_me", NotMeConvertor())


@router.post(
    "",
    response_model=UserPublic,
    status_code=status.HTTP_201_CREATED,
    summary="Sign up",
    responses=errors(400, 409, 413, 429, 503),
)
async def sign_up(
    request: Request, data: UserCreate, session: SessionDep, settings: SettingsDep, cache: CacheDep
) -> UserPublic:
    throttle: SignUpThrottle = request.app.state.signup_throttle
    try:
        # Every sign-up counts, a duplicate too (409s would otherwise test addresses for free).
        counted = await throttle.attempt(cache, client=client_address(request, settings))
    except Throttled as exc:
        raise too_many("Too many sign-ups; try again later", exc) from None
    try:
        user = await users_service.create_user(
            session=session, data=data, hash_concurrency=settings.password_hash_concurrency
        )
    except users_service.EmailAlreadyRegisteredError:
        raise HTTPException(status.HTTP_409_CONFLICT, "Email already registered") from None
    except BaseException:
        await throttle.refund(cache, counted)  # our failure (503), not the client's
        raise
    return UserPublic.model_validate(user)


@router.get(
    "",
    response_model=Page[UserProfile],
    summary="List users (no email addresses)",
    responses=errors(401, 503),
)
async def list_users(session: SessionDep, _user: CurrentUser, pagination: PaginationDep) -> Page[UserProfile]:
    users, total = await users_service.list_users(
        session=session, page=pagination.page, per_page=pagination.per_page
    )
    return Page[UserProfile](
        items=[UserProfile.model_validate(u) for u in users],
        total=total,
        page=pagination.page,
        per_page=pagination.per_page,
    )


@router.get("/me", response_model=UserPublic, summary="The signed-in user", responses=errors(401, 503))
async def read_me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user)


@router.get(
    "/{user_id}",
    response_model=UserProfile,
    summary="One user (no email address)",
    responses=errors(401, 404, 503),
)
async def read_user(user_id: uuid.UUID, session: SessionDep, _user: CurrentUser) -> UserProfile:
    user = await users_service.get_user(session=session, user_id=user_id)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "User not found")
    return UserProfile.model_validate(user)


@router.delete(
    "/{user_id:not_me}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete your own account (and its items)",
    responses=errors(401, 403, 503),
)
async def delete_user(
    *,
    user_id: uuid.UUID,
    session: SessionDep,
    user: CurrentUser,
    cache: CacheDep,
    storage: OptionalStorageDep,
    settings: SettingsDep,
) -> Response:
    if user_id != user.id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "You can only delete your own account")
    await users_service.delete_account(
        session=session,
        user=user,
        storage=storage,
        cache=cache,
        cache_ttl_seconds=settings.user_cache_ttl_seconds,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
