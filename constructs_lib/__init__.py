"""Reusable constructs: the AWS L3 FastApiLambdaService and the Cloud Run construct."""
