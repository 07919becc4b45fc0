"""The FastAPI service shipped to AWS Lambda and Google Cloud Run."""
