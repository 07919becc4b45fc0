from fastapi import FastAPI
from shared import SERVICE_NAME, greeting

from app.db import connect

app = FastAPI(title=SERVICE_NAME)


@app.get("/ping")
def ping() -> dict[str, str]:
    return {"ping": "pong", "message": greeting(SERVICE_NAME)}


@app.post("/visits", status_code=201)
def add_visit() -> dict[str, int]:
    # No migrations: the table is made on first use.
    with connect() as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS visits (id serial PRIMARY KEY, at timestamptz)")
        cursor.execute("INSERT INTO visits (at) VALUES (now()) RETURNING id")
        row = cursor.fetchone()
    return {"id": row[0] if row else 0}


@app.get("/visits")
def count_visits() -> dict[str, int]:
    with connect() as conn, conn.cursor() as cursor:
        cursor.execute("SELECT to_regclass('visits') IS NOT NULL")
        exists = cursor.fetchone()
        if not exists or not exists[0]:
            return {"visits": 0}
        cursor.execute("SELECT count(*) FROM visits")
        count = cursor.fetchone()
    return {"visits": count[0] if count else 0}
