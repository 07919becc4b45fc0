"""Developer tooling (local database, `make dev`). Never shipped with the service."""
