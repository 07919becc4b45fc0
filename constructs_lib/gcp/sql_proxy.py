"""The Cloud SQL Auth Proxy as a sidecar: a TCP address for apps that read the database in parts.

Such settings (the full-stack-fastapi-template's) build their URL from POSTGRES_SERVER and
POSTGRES_PORT and validate it: pydantic refuses Cloud Run's ``/cloudsql/<connection>`` socket
path as a host ("empty host"), so those apps could not start. Instead of the /cloudsql volume
they get the proxy in a second container of the same instance, listening on 127.0.0.1:5432
(containers of an instance share localhost), with POSTGRES_SERVER=127.0.0.1.

* Service: only the app's container has ``ports`` (the ingress); the app's container
  ``depends_on`` the proxy, which Cloud Run starts first and waits for until its startup probe
  passes (a container others depend on must have one). The probe asks the proxy's ``/startup``
  (``--health-check``), served on 0.0.0.0 so that Cloud Run's probe reaches it (nothing routes
  to it from outside: only the ingress port takes requests). ``--lazy-refresh``: the service's
  CPU is throttled outside requests, where the proxy's background certificate refresh would stall.
* Migration job: the same sidecar, plus its admin server's ``/quitquitquit`` and
  ``--exit-zero-on-sigterm``. The job's command runs under a small wrapper that, once the command
  has exited, asks the proxy to quit and exits with the command's code: the task ends with both
  containers done, and a SIGTERM to the proxy at the task's end exits 0, not 143 (the proxy
  maintainers' recipe for jobs, GoogleCloudPlatform/cloud-sql-proxy issue 1941).

The proxy authenticates as the container's service account (``roles/cloudsql.client`` on this
instance) and presents the short-lived client certificate the instance's ``ssl_mode``
(TRUSTED_CLIENT_CERTIFICATE_REQUIRED) demands; it connects over the instance's public IP.
"""

from __future__ import annotations

from collections.abc import Sequence

from cdktf_cdktf_provider_google import cloud_run_v2_job as run_job
from cdktf_cdktf_provider_google import cloud_run_v2_service as run

from constructs_lib.gcp import limits
from constructs_lib.gcp.cloud_sql import POSTGRES_PORT

# Pinned: update it on purpose (README of GoogleCloudPlatform/cloud-sql-proxy: "We recommend
# pinning to a specific version tag"). The default image: distroless, non-root.
SQL_PROXY_IMAGE = "gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.25.3"
SQL_PROXY_CONTAINER = "cloud-sql-proxy"
# The app's container, named once it has a neighbour (depends_on names containers).
APP_CONTAINER = "app"
SQL_PROXY_ADDRESS = "127.0.0.1"
SQL_PROXY_HEALTH_PORT = 9801
SQL_PROXY_ADMIN_PORT = 9091
QUIT_URL = f"http://localhost:{SQL_PROXY_ADMIN_PORT}/quitquitquit"

# Runs the job's command (its arguments), then asks the proxy to quit, then exits with the
# command's code. Standard library only: it runs on the app image's python.
QUIT_AFTER_SOURCE = f"""\
import subprocess, sys, urllib.request
code = subprocess.call(sys.argv[1:])
try:
    urllib.request.urlopen(urllib.request.Request({QUIT_URL!r}, data=b"", method="POST"), timeout=10).close()
except OSError as error:
    print(f"could not stop the Cloud SQL Auth Proxy: {{error}}", file=sys.stderr)
sys.exit(code if code >= 0 else 128 - code)
"""


def proxy_args(connection_name: str, *, job: bool) -> list[str]:
    """The proxy's arguments: the instance, its TCP listener, the health check for the probe;
    for a job the quit endpoint and a zero exit on SIGTERM, for a service a lazy refresh."""
    args = [
        connection_name,
        f"--address={SQL_PROXY_ADDRESS}",
        f"--port={POSTGRES_PORT}",
        "--health-check",
        "--http-address=0.0.0.0",
        f"--http-port={SQL_PROXY_HEALTH_PORT}",
        "--structured-logs",
    ]
    if job:
        return [*args, "--quitquitquit", f"--admin-port={SQL_PROXY_ADMIN_PORT}", "--exit-zero-on-sigterm"]
    return [*args, "--lazy-refresh"]


def quit_after(command: Sequence[str]) -> list[str]:
    """``command``, run by the wrapper that stops the proxy once it has exited."""
    return ["python", "-c", QUIT_AFTER_SOURCE, *command]


def service_proxy_container(connection_name: str) -> run.CloudRunV2ServiceTemplateContainers:
    return run.CloudRunV2ServiceTemplateContainers(
        name=SQL_PROXY_CONTAINER,
        image=SQL_PROXY_IMAGE,
        args=proxy_args(connection_name, job=False),
        resources=run.CloudRunV2ServiceTemplateContainersResources(
            limits={"cpu": limits.SQL_PROXY_SERVICE_CPU, "memory": f"{limits.SQL_PROXY_MEMORY_MIB}Mi"},
            cpu_idle=True,  # as the app's container: CPU only while serving requests
            startup_cpu_boost=True,
        ),
        startup_probe=run.CloudRunV2ServiceTemplateContainersStartupProbe(
            http_get=run.CloudRunV2ServiceTemplateContainersStartupProbeHttpGet(
                path="/startup", port=SQL_PROXY_HEALTH_PORT
            ),
            period_seconds=2,
            failure_threshold=30,
            timeout_seconds=1,
        ),
    )


def job_proxy_container(connection_name: str) -> run_job.CloudRunV2JobTemplateTemplateContainers:
    return run_job.CloudRunV2JobTemplateTemplateContainers(
        name=SQL_PROXY_CONTAINER,
        image=SQL_PROXY_IMAGE,
        args=proxy_args(connection_name, job=True),
        resources=run_job.CloudRunV2JobTemplateTemplateContainersResources(
            limits={"cpu": limits.SQL_PROXY_JOB_CPU, "memory": f"{limits.SQL_PROXY_MEMORY_MIB}Mi"}
        ),
        startup_probe=run_job.CloudRunV2JobTemplateTemplateContainersStartupProbe(
            http_get=run_job.CloudRunV2JobTemplateTemplateContainersStartupProbeHttpGet(
                path="/startup", port=SQL_PROXY_HEALTH_PORT
            ),
            period_seconds=2,
            failure_threshold=30,
            timeout_seconds=1,
        ),
    )
