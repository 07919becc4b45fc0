import logging

from fastapi import FastAPI

from app.api.main import api_router
from app.core.config import settings

logger = logging.getLogger(__name__)
# How many times startup ran in this process (the tests check it runs once).
STARTUPS = {"count": 0}

app = FastAPI(
    title=settings.PROJECT_NAME,
    openapi_url=f"{settings.API_V1_STR}/openapi.json",
)


@app.on_event("startup")
def on_startup() -> None:
    STARTUPS["count"] += 1
    logger.info("%s starting (%s)", settings.PROJECT_NAME, settings.ENVIRONMENT)


@app.get(f"{settings.API_V1_STR}/utils/startups")
def startups() -> dict[str, int]:
    return {"startups": STARTUPS["count"]}


app.include_router(api_router, prefix=settings.API_V1_STR)
