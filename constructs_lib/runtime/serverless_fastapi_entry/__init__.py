"""The runtime entry of a FastAPI app deployed by serverless-fastapi: no Lambda or container
code for the app's authors to write.

* ``serverless_fastapi_entry.lambda_api.handler``: the API function (Mangum), the app's
  lifespan run once per execution environment, the API Gateway stage prefix handled.
* ``serverless_fastapi_entry.lambda_migrate.handler``: the migration function run at deploy.
* ``python -m serverless_fastapi_entry serve`` / ``migrate``: the generated container's command
  and the migration job's.

Configured by the constructs through environment variables (``FASTAPI_DEPLOY_*``); each is
read before the app is imported, so the app's settings see the variables it expects.
"""

ENTRYPOINT_VARIABLE = "FASTAPI_DEPLOY_ENTRYPOINT"
FACTORY_VARIABLE = "FASTAPI_DEPLOY_FACTORY"
SOURCE_ROOT_VARIABLE = "FASTAPI_DEPLOY_SOURCE_ROOT"
SECRETS_VARIABLE = "FASTAPI_DEPLOY_SECRETS"
DATABASE_VARIABLE = "FASTAPI_DEPLOY_DATABASE"
MIGRATIONS_VARIABLE = "FASTAPI_DEPLOY_MIGRATIONS"
