from typing import Literal

from pydantic import PostgresDsn
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_ignore_empty=True, extra="ignore")

    API_V1_STR: str = "/api/v1"
    PROJECT_NAME: str = "Items"
    ENVIRONMENT: Literal["local", "staging", "production"] = "local"
    SECRET_KEY: str
    DATABASE_URL: PostgresDsn
    SENTRY_DSN: str | None = None
    EMAILS_FROM_EMAIL: str | None = None


settings = Settings()  # type: ignore[call-arg]
