"""Attachments end to end over HTTP, with the local backend (the app plays the object store)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from alembic import command
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker

from tests.conftest import PostgresForTests
from tests.service.conftest import API, SignedUp, SignUp, make_settings, sign_up
from webapi.config import Settings
from webapi.db import Database
from webapi.main import create_app
from webapi.migrate import alembic_config, downgrade, upgrade
from webapi.storage import StorageError, UploadTicket, build_storage, content_disposition
from webapi.storage.local import LocalStorage

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 4


@pytest.fixture
def storage_dir(tmp_path: Path) -> Path:
    return tmp_path / "storage"


@pytest.fixture
def settings(database_url: str, storage_dir: Path) -> Settings:
    return make_settings(
        database_url, storage_backend="local", local_storage_dir=str(storage_dir), upload_max_bytes=4096
    )


@pytest.fixture
def app(app: FastAPI, settings: Settings) -> FastAPI:
    app.state.storage = build_storage(settings)  # what startup() does once per process
    return app


@pytest.fixture
def storage(app: FastAPI) -> LocalStorage:
    assert isinstance(app.state.storage, LocalStorage)
    return app.state.storage


async def new_item(client: httpx.AsyncClient, user: SignedUp) -> str:
    created = await client.post(f"{API}/items", json={"title": "with files"}, headers=user.headers)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def request_upload(
    client: httpx.AsyncClient,
    user: SignedUp,
    item_id: str,
    *,
    filename: str = "report é.pdf",
    content_type: str = "application/pdf",
    size: int = len(PDF),
) -> httpx.Response:
    return await client.post(
        f"{API}/items/{item_id}/attachments",
        json={"filename": filename, "content_type": content_type, "size": size},
        headers=user.headers,
    )


async def send_form(
    client: httpx.AsyncClient, upload: dict[str, Any], body: bytes = PDF, **field_overrides: str
) -> httpx.Response:
    """What a browser does with the upload instructions: fields first, the file last."""
    assert upload["method"] == "POST"
    fields = {**upload["fields"], **field_overrides}
    return await client.post(upload["url"], data=fields, files={"file": ("ignored.bin", body)})


def stored_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def assert_json_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail
    return detail


async def test_upload_list_download_round_trip(
    client: httpx.AsyncClient, user: SignedUp, storage_dir: Path
) -> None:
    item_id = await new_item(client, user)
    created = await request_upload(client, user, item_id)
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == {"id", "item_id", "filename", "content_type", "size", "created_at", "upload"}
    assert (body["item_id"], body["filename"], body["content_type"], body["size"]) == (
        item_id,
        "report é.pdf",
        "application/pdf",
        len(PDF),
    )
    upload = body["upload"]
    assert upload["url"] == f"http://testserver{API}/storage/local/upload"
    assert set(upload["fields"]) == {"key", "Content-Type", "policy", "signature"}
    assert upload["headers"] == {}
    assert upload["fields"]["key"] == f"uploads/{user.id}/{item_id}/{body['id']}"

    sent = await send_form(client, upload)
    assert sent.status_code == 204, sent.text
    stored = storage_dir / "uploads" / user.id / item_id / body["id"]
    assert stored.read_bytes() == PDF
    assert [p.name for p in stored.parent.iterdir()] == [body["id"]]  # no temporary file left

    listed = await client.get(f"{API}/items/{item_id}/attachments", headers=user.headers)
    assert listed.status_code == 200
    [entry] = listed.json()
    assert entry["id"] == body["id"] and entry["expires_at"] > body["created_at"]
    assert entry["download_url"].startswith(f"http://testserver{API}/storage/local/")

    downloaded = await client.get(entry["download_url"])  # the link is the credential: no token
    assert downloaded.status_code == 200
    assert downloaded.content == PDF
    assert downloaded.headers["content-type"] == "application/pdf"
    assert downloaded.headers["content-disposition"] == (
        "attachment; filename=\"report _.pdf\"; filename*=UTF-8''report%20%C3%A9.pdf"
    )
    assert downloaded.headers["x-content-type-options"] == "nosniff"


async def test_object_keys_never_come_from_the_filename(
    client: httpx.AsyncClient, user: SignedUp, connection: AsyncConnection, storage_dir: Path
) -> None:
    item_id = await new_item(client, user)
    for name in ("../../etc/passwd", "..\\..\\boot.ini", "..", "a\nb", "x\x00"):
        refused = await request_upload(client, user, item_id, filename=name)
        assert refused.status_code == 422, name

    # Lookalike slashes (U+2215) are a legal name: kept as metadata, never in the key.
    tricky = "..\u2215..\u2215etc\u2215passwd"
    created = await request_upload(client, user, item_id, filename=tricky)
    assert created.status_code == 201, created.text
    body = created.json()
    key = body["upload"]["fields"]["key"]
    assert key == f"uploads/{user.id}/{item_id}/{body['id']}"
    row = (
        await connection.execute(
            text("SELECT object_key, filename FROM attachments WHERE id = :id"), {"id": body["id"]}
        )
    ).one()
    assert tuple(row) == (key, tricky)
    assert (await send_form(client, body["upload"])).status_code == 204
    assert stored_files(storage_dir) == [key]


async def test_uploads_that_break_the_policy_are_refused(
    client: httpx.AsyncClient, user: SignedUp, storage: LocalStorage, storage_dir: Path
) -> None:
    item_id = await new_item(client, user)
    upload = (await request_upload(client, user, item_id)).json()["upload"]
    fields = upload["fields"]

    assert "exactly" in assert_json_error(await send_form(client, upload, body=PDF[:-1]), 400)
    assert "exactly" in assert_json_error(await send_form(client, upload, body=PDF + b"!"), 400)
    wrong_type = await client.post(
        upload["url"], data={**fields, "Content-Type": "text/html"}, files={"file": ("a", PDF)}
    )
    assert "Content-Type" in assert_json_error(wrong_type, 403)
    assert_json_error(await send_form(client, upload, signature="0" * 64), 403)
    other_key = f"uploads/{user.id}/{item_id}/{uuid.uuid4()}"
    assert_json_error(await send_form(client, upload, key=other_key), 403)
    # A policy re-encoded with a bigger size but the old signature.
    bigger, _, _ = storage.policy(key=fields["key"], content_type="application/pdf", size=len(PDF) + 1)
    assert_json_error(await send_form(client, upload, body=PDF + b"!", policy=bigger), 403)
    missing_file = await client.post(upload["url"], data=fields)
    assert_json_error(missing_file, 400)

    real_clock = storage.clock
    storage.clock = lambda: real_clock() + storage.expiry_seconds + 1
    try:
        assert "expired" in assert_json_error(await send_form(client, upload), 403)
    finally:
        storage.clock = real_clock
    assert stored_files(storage_dir) == []  # nothing written, no temporary file left

    assert (await send_form(client, upload)).status_code == 204  # the genuine one still works


async def test_download_links_are_checked(
    client: httpx.AsyncClient, user: SignedUp, storage: LocalStorage
) -> None:
    item_id = await new_item(client, user)
    upload = (await request_upload(client, user, item_id)).json()["upload"]
    [entry] = (await client.get(f"{API}/items/{item_id}/attachments", headers=user.headers)).json()
    url = entry["download_url"]
    assert "Not uploaded" in assert_json_error(await client.get(url), 404)
    assert (await send_form(client, upload)).status_code == 204

    signature = url.rpartition(".")[2]
    tampered = url.replace(signature, signature[::-1])
    assert_json_error(await client.get(tampered), 403)
    real_clock = storage.clock
    storage.clock = lambda: real_clock() + storage.expiry_seconds + 1
    try:
        assert_json_error(await client.get(url), 403)
    finally:
        storage.clock = real_clock
    assert (await client.get(url)).content == PDF


async def test_request_validation(client: httpx.AsyncClient, user: SignedUp) -> None:
    item_id = await new_item(client, user)
    too_big = await request_upload(client, user, item_id, size=4097)
    assert too_big.status_code == 422
    assert too_big.json()["detail"] == [
        {
            "type": "less_than_equal",
            "loc": ["body", "size"],
            "msg": "size 4097 exceeds the upload limit of 4096 bytes",
        }
    ]
    schema = (await client.get("/openapi.json")).json()["paths"][f"{API}/items/{{item_id}}/attachments"][
        "post"
    ]
    assert (
        schema["requestBody"]["content"]["application/json"]["schema"]["properties"]["size"]["maximum"]
        == 4096
    )
    assert (await request_upload(client, user, item_id, size=4096)).status_code == 201
    for bad in ({"size": 0}, {"content_type": "pdf"}, {"content_type": "text/plain; charset=utf-8"}):
        response = await request_upload(client, user, item_id, **bad)
        assert response.status_code == 422, bad
    extra = await client.post(
        f"{API}/items/{item_id}/attachments",
        json={"filename": "a", "content_type": "text/plain", "size": 1, "key": "mine"},
        headers=user.headers,
    )
    assert extra.status_code == 422
    anonymous = await client.get(f"{API}/items/{item_id}/attachments")
    assert assert_json_error(anonymous, 401)


async def test_another_users_item_is_404(client: httpx.AsyncClient, user_factory: SignUp) -> None:
    owner, intruder = await user_factory(), await user_factory()
    item_id = await new_item(client, owner)
    attachment = (await request_upload(client, owner, item_id)).json()
    base = f"{API}/items/{item_id}/attachments"

    assert "Item not found" in assert_json_error(await request_upload(client, intruder, item_id), 404)
    assert_json_error(await client.get(base, headers=intruder.headers), 404)
    assert_json_error(await client.delete(f"{base}/{attachment['id']}", headers=intruder.headers), 404)
    # The intruder's own item does not reach the owner's attachment either.
    their_item = await new_item(client, intruder)
    theirs = f"{API}/items/{their_item}/attachments/{attachment['id']}"
    assert_json_error(await client.delete(theirs, headers=intruder.headers), 404)
    assert len((await client.get(base, headers=owner.headers)).json()) == 1


async def test_delete_removes_row_and_object(
    client: httpx.AsyncClient, user: SignedUp, storage_dir: Path
) -> None:
    item_id = await new_item(client, user)
    body = (await request_upload(client, user, item_id)).json()
    assert (await send_form(client, body["upload"])).status_code == 204
    url = f"{API}/items/{item_id}/attachments/{body['id']}"

    assert (await client.delete(url, headers=user.headers)).status_code == 204
    assert (await client.get(f"{API}/items/{item_id}/attachments", headers=user.headers)).json() == []
    assert not (storage_dir / body["upload"]["fields"]["key"]).exists()
    assert "Attachment not found" in assert_json_error(await client.delete(url, headers=user.headers), 404)


async def test_deleting_the_item_deletes_its_attachment_rows_and_objects(
    client: httpx.AsyncClient, user: SignedUp, connection: AsyncConnection, storage_dir: Path
) -> None:
    item_id, other_item = await new_item(client, user), await new_item(client, user)
    keys = []
    for item in (item_id, item_id, other_item):
        body = (await request_upload(client, user, item)).json()
        assert (await send_form(client, body["upload"])).status_code == 204
        keys.append(body["upload"]["fields"]["key"])
    assert (await client.delete(f"{API}/items/{item_id}", headers=user.headers)).status_code == 204
    count = await connection.scalar(
        text("SELECT count(*) FROM attachments WHERE item_id = :id"), {"id": item_id}
    )
    assert count == 0
    assert [(storage_dir / key).exists() for key in keys] == [False, False, True]  # the other item's stays


async def test_deleting_the_account_deletes_its_objects(
    client: httpx.AsyncClient, user_factory: SignUp, storage_dir: Path
) -> None:
    owner, other = await user_factory(), await user_factory()
    keys = {}
    for who in (owner, other):
        body = (await request_upload(client, who, await new_item(client, who))).json()
        assert (await send_form(client, body["upload"])).status_code == 204
        keys[who.id] = body["upload"]["fields"]["key"]
    assert (await client.delete(f"{API}/users/{owner.id}", headers=owner.headers)).status_code == 204
    assert not (storage_dir / keys[owner.id]).exists()
    assert (storage_dir / keys[other.id]).exists()


async def test_an_object_that_cannot_be_deleted_does_not_fail_the_delete(
    app: FastAPI, client: httpx.AsyncClient, user: SignedUp, caplog: pytest.LogCaptureFixture
) -> None:
    item_id = await new_item(client, user)
    await request_upload(client, user, item_id)
    app.state.storage = StorageDown()
    assert (await client.delete(f"{API}/items/{item_id}", headers=user.headers)).status_code == 204
    assert "attachment object not deleted" in caplog.text


class StorageDown:
    async def presign_upload(self, **kwargs: object) -> UploadTicket:
        raise StorageError("signBlob: 503")

    async def presign_download(self, **kwargs: object) -> tuple[str, Any]:
        raise StorageError("signBlob: 503")

    async def delete(self, key: str) -> None:
        raise StorageError("DeleteObject: 503")


async def test_storage_outage_answers_503_and_leaves_no_row(
    client: httpx.AsyncClient, user: SignedUp, app: FastAPI, connection: AsyncConnection
) -> None:
    item_id = await new_item(client, user)
    existing = (await request_upload(client, user, item_id)).json()
    app.state.storage = StorageDown()
    base = f"{API}/items/{item_id}/attachments"

    refused = await request_upload(client, user, item_id)
    assert "Storage unavailable" in assert_json_error(refused, 503)
    assert refused.headers["retry-after"] == "5"
    assert_json_error(await client.get(base, headers=user.headers), 503)
    count = await connection.scalar(
        text("SELECT count(*) FROM attachments WHERE item_id = :id"), {"id": item_id}
    )
    assert count == 1  # the refused upload left nothing behind
    # Deleting still removes the row; the object left behind is logged, not an error.
    assert (await client.delete(f"{base}/{existing['id']}", headers=user.headers)).status_code == 204


async def test_feature_off_answers_404_not_enabled(
    database_url: str, engine: AsyncEngine, connection: AsyncConnection, user: SignedUp
) -> None:
    off = create_app(make_settings(database_url))  # STORAGE_BACKEND unset
    sessions = async_sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    off.state.db = Database(engine=engine, sessionmaker=sessions)
    off.state.storage = build_storage(off.state.settings)
    assert off.state.storage is None
    transport = httpx.ASGITransport(app=off, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        item_id = await new_item(client, user)
        base = f"{API}/items/{item_id}/attachments"
        for response in (
            await request_upload(client, user, item_id),
            await client.get(base, headers=user.headers),
            await client.delete(f"{base}/{uuid.uuid4()}", headers=user.headers),
            await client.get(base),  # whoever asks
        ):
            assert assert_json_error(response, 404) == "attachments are not enabled"
        assert (await client.post(f"{API}/storage/local/upload")).status_code == 404
        paths = (await client.get("/openapi.json")).json()["paths"]
    assert set(paths[f"{API}/items/{{item_id}}/attachments"]) == {"get", "post"}
    assert "404" in paths[f"{API}/items/{{item_id}}/attachments"]["post"]["responses"]
    assert not any(path.startswith(f"{API}/storage") for path in paths)


@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_cloud_backends_need_a_bucket(backend: str) -> None:
    with pytest.raises(ValidationError, match="UPLOADS_BUCKET is required"):
        make_settings("postgresql://db/app", storage_backend=backend)
    assert make_settings("postgresql://db/app", storage_backend=backend, uploads_bucket="b").uploads_bucket


def test_migration_0002_up_and_down(postgres: PostgresForTests) -> None:
    url = postgres.database("app_attachments_migration")

    def attachments_table() -> str | None:
        async def query() -> str | None:
            conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
            try:
                return await conn.fetchval("SELECT to_regclass('attachments')::text")  # type: ignore[no-any-return]
            finally:
                await conn.close()

        return asyncio.run(query())

    upgrade("0001", database_url=url)
    assert attachments_table() is None
    upgrade(database_url=url)
    assert attachments_table() == "attachments"
    downgrade("0001", database_url=url)
    assert attachments_table() is None
    upgrade(database_url=url)
    command.check(alembic_config(url))


async def test_local_uploads_may_exceed_the_general_body_limit(
    database_url: str, engine: AsyncEngine, connection: AsyncConnection, tmp_path: Path
) -> None:
    """UPLOAD_MAX_BYTES (here 200 kB) holds for the local upload route; MAX_REQUEST_BODY_BYTES
    (64 KiB in these tests) for every other route, as before."""
    settings = make_settings(
        database_url, storage_backend="local", local_storage_dir=str(tmp_path), upload_max_bytes=200_000
    )
    assert settings.max_request_body_bytes < 150_000
    app = create_app(settings)
    sessions = async_sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False, autoflush=False
    )
    app.state.db = Database(engine=engine, sessionmaker=sessions)
    app.state.storage = build_storage(settings)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        user = await sign_up(client)
        item_id = await new_item(client, user)
        body = b"x" * 150_000
        created = await request_upload(client, user, item_id, content_type="text/plain", size=len(body))
        assert created.status_code == 201, created.text
        sent = await send_form(client, created.json()["upload"], body=body)
        assert sent.status_code == 204, sent.text
        assert (tmp_path / created.json()["upload"]["fields"]["key"]).read_bytes() == body
        too_big = await send_form(client, created.json()["upload"], body=b"x" * 300_000)
        assert_json_error(too_big, 413)
        other = await client.post(f"{API}/items", content=b"x" * 100_000, headers=user.headers)
        assert_json_error(other, 413)


async def test_an_item_holds_a_bounded_number_of_attachments(
    client: httpx.AsyncClient, user: SignedUp, monkeypatch: pytest.MonkeyPatch
) -> None:
    from webapi.services import attachments as attachments_service

    monkeypatch.setattr(attachments_service, "MAX_ATTACHMENTS_PER_ITEM", 2)
    item_id = await new_item(client, user)
    for _ in range(2):
        assert (await request_upload(client, user, item_id)).status_code == 201
    detail = assert_json_error(await request_upload(client, user, item_id), 409)
    assert detail == "An item holds at most 2 attachments"
    assert (await request_upload(client, user, await new_item(client, user))).status_code == 201


def test_format_characters_never_reach_content_disposition() -> None:
    """Right-to-left overrides would make "invoice<RLO>fdp.exe" look like "invoiceexe.pdf"."""
    header = content_disposition("invoice\u202efdp.exe")
    assert "\u202e" not in header and "%E2%80%AE" not in header
    assert header == "attachment; filename=\"invoicefdp.exe\"; filename*=UTF-8''invoicefdp.exe"


async def test_non_ascii_tokens_and_policies_are_refused_not_crashed(client: httpx.AsyncClient) -> None:
    assert_json_error(await client.get(f"{API}/storage/local/%C3%A9.abc"), 403)
    assert_json_error(await client.get(f"{API}/storage/local/abc.%C3%A9"), 403)
