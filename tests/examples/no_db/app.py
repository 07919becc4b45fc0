"""A service without a database, served by gunicorn with uvicorn workers:

gunicorn app:application -k uvicorn_worker.UvicornWorker
"""

from fastapi import FastAPI

application = FastAPI(title="no-db")


@application.get("/status")
def status() -> dict[str, str]:
    return {"status": "ok"}


@application.get("/echo/{word}")
def echo(word: str) -> dict[str, str]:
    return {"word": word}
