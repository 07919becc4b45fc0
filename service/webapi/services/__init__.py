"""Business operations, keyword-only and HTTP-agnostic: no SQL in routes."""
