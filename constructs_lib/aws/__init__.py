"""AWS constructs (CDK v2): the FastAPI Lambda service, its database and Docker-free bundling."""
