"""Code shared by the services of this repository (copied into each image by its Dockerfile)."""

SERVICE_NAME = "visits"


def greeting(name: str) -> str:
    return f"hello from {name}"
