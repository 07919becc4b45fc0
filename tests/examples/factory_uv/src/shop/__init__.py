"""A small shop: notes stored in PostgreSQL."""
