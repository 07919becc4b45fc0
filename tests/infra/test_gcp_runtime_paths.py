"""Every runtime call has a path and a grant; every stage has a lifecycle that works.

a. For each call the service and the migration job make (Cloud SQL, Secret Manager,
   Memorystore, Cloud Storage, signBlob), with the cache and storage both off (``gcp_dev``,
   ``gcp_prod``) and both on (``gcp_variant``, prod; ``dev_on``, dev): a network path and an
   identity allowed to make exactly that call. The calls come from the service's settings
   (service/webapi/config.py): a new backend setting without a path here fails
   ``test_every_backend_setting_has_a_path_on_cloud_run``. The metadata server (the
   service's own token for signBlob, the project id) needs neither: Cloud Run serves it to
   every instance, with no VPC or IAM setting involved.
b. The lifecycle per stage and option set: deletion protection, force_destroy, what destroy
   keeps, what each deploy step waits for, and names that never collide.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.infra.gcp_synth import SynthesizedGcp, referenced, synth_gcp
from tests.infra.test_gcp_cache_storage import BUCKET, NETWORK, REDIS, SUBNET, release_wait
from tests.infra.test_gcp_stack import (
    ACCESSOR,
    JOB,
    PROJECT,
    PROJECT_GRANT,
    SECRET_GRANT,
    SERVICE,
    SQL,
    VERSION,
    address_of,
    container,
    ref,
    service_account,
)

BOTH_ON = {"spec.cache.enabled": "true", "spec.storage.enabled": "true"}
IDENTITY = {SERVICE: "run", JOB: "migrate"}

# Settings that name a backend or carry its credentials (by their names' shape), and what
# each is on Cloud Run: a call path this module checks, or a form another platform uses.
BACKEND_SETTING = re.compile(
    r"(_url|_secret_arn|_host|_bucket|_password|_user|_account|_backend|^secret_key)$"
)
CLOUD_RUN_PATHS = {
    "database_url": "cloud_sql",
    "app_db_user": "cloud_sql",
    "app_db_password": "cloud_sql",
    "redis_url": "memorystore",
    "secret_key": "secret_manager",
    "storage_backend": "cloud_storage",
    "uploads_bucket": "cloud_storage",
    "signing_service_account": "sign_blob",
}
# Lambda's forms (Secrets Manager ARNs, RDS Proxy and ElastiCache endpoints): unset on Cloud Run.
OTHER_PLATFORMS = {
    "database_secret_arn",
    "database_host",
    "app_db_secret_arn",
    "redis_secret_arn",
    "redis_host",
    "secret_key_secret_arn",
}


@pytest.fixture(scope="module")
def dev_on() -> SynthesizedGcp:
    """dev with the cache and the uploads bucket on (a new VPC): one more synth, a second."""
    return synth_gcp("dev", BOTH_ON)


@pytest.fixture
def every(
    gcp_dev: SynthesizedGcp, gcp_prod: SynthesizedGcp, gcp_variant: SynthesizedGcp, dev_on: SynthesizedGcp
) -> list[SynthesizedGcp]:
    """Each stage with everything off and with everything on."""
    return [gcp_dev, gcp_prod, dev_on, gcp_variant]


def env_of(synth: SynthesizedGcp, kind: str) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container(synth, kind)["env"]}


def address(synth: SynthesizedGcp, kind: str, **properties: Any) -> str:
    """The one resource of ``kind`` whose properties include ``properties``."""
    found = [
        f"{kind}.{name}"
        for name, props in synth.resources(kind).items()
        if all(props.get(key) == value for key, value in properties.items())
    ]
    assert len(found) == 1, (kind, properties, found)
    return found[0]


def props_of(synth: SynthesizedGcp, resource: str) -> dict[str, Any]:
    kind, name = resource.split(".")
    found: dict[str, Any] = synth.json["resource"][kind][name]
    return found


def identity(synth: SynthesizedGcp, kind: str) -> str:
    return f"serviceAccount:{ref(service_account(synth, IDENTITY[kind]), 'email')}"


def secret_refs(synth: SynthesizedGcp, kind: str) -> dict[str, str]:
    """Env var -> address of the secret it reads, for the container of ``kind``."""
    found = {}
    for name, item in env_of(synth, kind).items():
        if "value_source" in item:
            secret = item["value_source"]["secret_key_ref"]["secret"]
            match = re.fullmatch(r"\$\{(google_secret_manager_secret\.[\w-]+)\.secret_id\}", secret)
            assert match, secret
            found[name] = match[1]
    return found


def version_value(synth: SynthesizedGcp, secret: str) -> str | None:
    values = [
        p["secret_data_wo"] for p in synth.resources(VERSION).values() if p["secret"] == ref(secret, "id")
    ]
    assert len(values) <= 1
    return values[0] if values else None


# --- a. every call has a path and a grant -------------------------------------------------


def test_every_backend_setting_has_a_path_on_cloud_run() -> None:
    from webapi.config import Settings

    backends = {name for name in Settings.model_fields if BACKEND_SETTING.search(name)}
    unknown = backends - set(CLOUD_RUN_PATHS) - OTHER_PLATFORMS
    assert not unknown, f"new backend settings {sorted(unknown)}: give them a Cloud Run path and test it here"
    assert set(CLOUD_RUN_PATHS) <= set(Settings.model_fields)  # nothing stale here either
    assert set(CLOUD_RUN_PATHS.values()) == {
        "cloud_sql",
        "memorystore",
        "secret_manager",
        "cloud_storage",
        "sign_blob",
    }


def test_the_containers_set_exactly_the_backend_settings_they_use(every: list[SynthesizedGcp]) -> None:
    for synth in every:
        for kind in (SERVICE, JOB):
            names = {name.lower() for name in env_of(synth, kind)}
            assert not names & OTHER_PLATFORMS, (synth.spec.stage, kind)
            used = {name for name in CLOUD_RUN_PATHS if name in names}
            expected = {"database_url", "secret_key"}
            if kind == JOB:
                expected |= {"app_db_user", "app_db_password"}  # the job creates the service's role
            else:
                if synth.spec.cache.enabled:
                    expected |= {"redis_url"}
                if synth.spec.storage.enabled:
                    expected |= {"storage_backend", "uploads_bucket", "signing_service_account"}
            assert used == expected, (synth.spec.stage, kind)


def test_cloud_sql_a_socket_and_a_client_grant_for_each_container(every: list[SynthesizedGcp]) -> None:
    for synth in every:
        instance = address_of(synth, SQL)
        name = props_of(synth, instance)["name"]
        assert name == f"{synth.spec.name}-pg"
        connection = ref(instance, "connection_name")
        for kind in (SERVICE, JOB):
            _, resource = synth.single(kind)
            template = resource["template"] if kind == SERVICE else resource["template"]["template"]
            assert template["volumes"] == [
                {"name": "cloudsql", "cloud_sql_instance": {"instances": [connection]}}
            ]
            assert {"name": "cloudsql", "mount_path": "/cloudsql"} in container(synth, kind)["volume_mounts"]
            grant = address(synth, PROJECT_GRANT, member=identity(synth, kind), role="roles/cloudsql.client")
            expression = props_of(synth, grant)["condition"]["expression"]
            assert expression == f'resource.name == "projects/{PROJECT}/instances/{name}"'
            # The URL it reads goes through that socket.
            url = version_value(synth, secret_refs(synth, kind)["DATABASE_URL"])
            assert url is not None and url.endswith(f"?host=/cloudsql/{connection}")
            assert grant in resource["depends_on"]


def test_secret_manager_each_secret_read_by_its_container_identity(every: list[SynthesizedGcp]) -> None:
    """Each secret a container reads: an accessor grant for that container's account, and a
    version there before the container starts (from scratch, nothing read is missing)."""
    for synth in every:
        user_provided = set()
        for kind in (SERVICE, JOB):
            _, resource = synth.single(kind)
            for env_name, secret in secret_refs(synth, kind).items():
                grant = address(
                    synth,
                    SECRET_GRANT,
                    secret_id=ref(secret, "secret_id"),
                    member=identity(synth, kind),
                    role=ACCESSOR,
                )
                assert grant in resource["depends_on"], (kind, env_name)
                versions = [
                    f"{VERSION}.{n}"
                    for n, p in synth.resources(VERSION).items()
                    if p["secret"] == ref(secret, "id")
                ]
                if versions:
                    assert versions[0] in resource["depends_on"], (kind, env_name)
                else:
                    user_provided.add(env_name)
        # Only the spec's extra secrets wait for a value from the user (docs/gcp.md: add a version).
        assert user_provided == set(synth.spec.secrets)


def test_memorystore_reached_through_direct_vpc_egress_with_auth_and_tls(
    gcp_variant: SynthesizedGcp, dev_on: SynthesizedGcp
) -> None:
    for synth in (gcp_variant, dev_on):
        network = address_of(synth, NETWORK)
        subnet = address_of(synth, SUBNET)
        _, service = synth.single(SERVICE)
        access = service["template"]["vpc_access"]
        # Only private destinations go through the VPC: Memorystore's address is one of them,
        # since DIRECT_PEERING allocates it from RFC 1918 space when no reserved_ip_range is given.
        assert access["egress"] == "PRIVATE_RANGES_ONLY"
        assert access["network_interfaces"] == [
            {"network": ref(network, "name"), "subnetwork": ref(release_wait(synth), "output.subnetwork")}
        ]
        assert props_of(synth, release_wait(synth))["input"]["subnetwork"] == ref(subnet, "name")
        assert props_of(synth, subnet)["network"] == ref(network, "id")
        _, redis = synth.single(REDIS)
        assert redis["authorized_network"] == ref(network, "id")  # the network the service egresses into
        assert redis["connect_mode"] == "DIRECT_PEERING" and "reserved_ip_range" not in redis
        assert redis["auth_enabled"] is True and redis["transit_encryption_mode"] == "SERVER_AUTHENTICATION"
        url = version_value(synth, secret_refs(synth, SERVICE)["REDIS_URL"])
        assert url is not None and url.startswith("rediss://:")  # TLS, with the AUTH string
        assert env_of(synth, SERVICE)["REDIS_CA_CERT"]["value"].startswith("${join(")
        # The job neither reaches nor waits for it.
        assert "vpc_access" not in synth.single(JOB)[1]["template"]["template"]


def test_cloud_storage_objects_and_sign_blob_for_the_runtime_only(
    gcp_variant: SynthesizedGcp, dev_on: SynthesizedGcp
) -> None:
    for synth in (gcp_variant, dev_on):
        runtime = service_account(synth, "run")
        bucket = address(synth, BUCKET, name=f"{PROJECT}-{synth.spec.name}-uploads")
        env = env_of(synth, SERVICE)
        assert env["UPLOADS_BUCKET"]["value"] == ref(bucket, "name")
        assert env["STORAGE_BACKEND"]["value"] == "gcs"
        object_grant = address(synth, "google_storage_bucket_iam_member", bucket=ref(bucket, "name"))
        assert props_of(synth, object_grant)["member"] == identity(synth, SERVICE)
        # signBlob: its API on, and the runtime may sign as itself (the token comes from the
        # metadata server, which every Cloud Run instance reaches without any setting).
        apis = {p["service"] for p in synth.resources("google_project_service").values()}
        assert "iamcredentials.googleapis.com" in apis
        signer = address(synth, "google_service_account_iam_member", service_account_id=ref(runtime, "name"))
        assert props_of(synth, signer)["role"] == "roles/iam.serviceAccountTokenCreator"
        assert props_of(synth, signer)["member"] == identity(synth, SERVICE)
        assert env["SIGNING_SERVICE_ACCOUNT"]["value"] == ref(runtime, "email")
        _, service = synth.single(SERVICE)
        assert {object_grant, signer} <= set(service["depends_on"])
        # The migration job gets none of it.
        assert not {"UPLOADS_BUCKET", "SIGNING_SERVICE_ACCOUNT"} & set(env_of(synth, JOB))


def test_with_both_off_no_path_is_opened(gcp_dev: SynthesizedGcp, gcp_prod: SynthesizedGcp) -> None:
    for synth in (gcp_dev, gcp_prod):
        assert not synth.resources(REDIS) and not synth.resources(NETWORK)
        assert not synth.resources("google_service_account_iam_member")
        assert "vpc_access" not in synth.single(SERVICE)[1]["template"]


# --- b. the lifecycle ----------------------------------------------------------------------


def test_deletion_protection_and_force_destroy_per_stage(every: list[SynthesizedGcp]) -> None:
    for synth in every:
        prod = synth.spec.stage.value == "prod"
        _, instance = synth.single(SQL)
        assert instance["deletion_protection"] is prod
        assert instance["settings"]["deletion_protection_enabled"] is prod
        for kind in (SERVICE, JOB):
            # No data in them, and protection would block replacing a failed first revision.
            assert synth.single(kind)[1]["deletion_protection"] is False, kind
        for props in synth.resources(BUCKET).values():
            if props["name"].endswith("-uploads"):
                assert props["force_destroy"] is not prod  # dev's destroy empties it; prod keeps it
            else:
                assert props["force_destroy"] is True  # build sources: disposable in both stages
        # The owner of the tables cannot be dropped while they exist: destroy abandons it
        # (the instance takes it along).
        assert synth.single("google_sql_user")[1]["deletion_policy"] == "ABANDON"
        # APIs stay on: other stacks in the project may use them.
        assert all(
            p["disable_on_destroy"] is False for p in synth.resources("google_project_service").values()
        )


def test_deploy_order_migrations_before_the_service(every: list[SynthesizedGcp]) -> None:
    for synth in every:
        job = address_of(synth, JOB)
        run = [
            f"terraform_data.{name}"
            for name, props in synth.resources("terraform_data").items()
            if "gcloud run jobs execute" in str(props.get("provisioner"))
        ]
        assert len(run) == 1
        assert job in props_of(synth, run[0])["depends_on"]
        _, service = synth.single(SERVICE)
        assert run[0] in service["depends_on"]
        waits = synth.dependencies(job)
        assert {address_of(synth, "google_sql_database"), address_of(synth, "google_sql_user")} <= waits
        # The job's identity, its grants and every version it reads come before the job.
        assert service_account(synth, "migrate") in waits


def test_destroy_waits_for_cloud_run_to_release_the_subnet(
    gcp_variant: SynthesizedGcp, dev_on: SynthesizedGcp
) -> None:
    """Destroy order is the reverse of the references: the service (which reads the subnet's
    name through the wait) goes first, then the wait's destroy-time provisioner runs, then
    Terraform deletes the subnet (already gone: a 404 counts as deleted)."""
    for synth in (gcp_variant, dev_on):
        wait = release_wait(synth)
        props = props_of(synth, wait)
        service = address_of(synth, SERVICE)
        assert wait in referenced(props_of(synth, service))
        assert address_of(synth, SUBNET) in referenced(props)
        (provisioner,) = props["provisioner"]
        local = provisioner["local-exec"]
        assert local["when"] == "destroy"
        # A destroy-time provisioner may read only self.
        assert set(re.findall(r"\$\{([^}]*)\}", local["command"])) == {
            "self.input.subnetwork",
            "self.input.project",
            "self.input.region",
        }
        assert "gcloud compute networks subnets delete" in local["command"]
        assert "sleep 60" in local["command"] and "-ge 180" in local["command"]  # up to 3 hours
        assert props["input"] == {
            "project": PROJECT,
            "region": synth.spec.gcp.region,
            "subnetwork": ref(address_of(synth, SUBNET), "name"),
        }


def test_names_never_collide_between_stages_or_within_one(every: list[SynthesizedGcp]) -> None:
    """Fixed names are what a retried create could collide with. Terraform keeps what a
    failed apply created in its state and reuses it on the retry; what it did not record
    (nothing, with these resources) would collide. So: every fixed name carries the stack's
    name, once, and dev and prod share none."""
    keys = {"name", "account_id", "secret_id", "repository_id"}
    by_stage: dict[tuple[str, bool], set[str]] = {}
    for synth in every:
        names: list[str] = []
        for resource, props in synth.all_resources():
            kind = resource.split(".")[0]
            if kind.endswith(("_iam_member", "_version")) or kind in {
                "google_sql_database",
                "google_sql_user",
            }:
                continue  # not globally named, or named inside a parent
            for key in keys & set(props):
                value = props[key]
                if isinstance(value, str) and "${" not in value:
                    names.append(f"{kind}:{value}")
                    assert synth.spec.name in value, (resource, value)
        assert len(names) == len(set(names)), names
        by_stage[(synth.spec.stage.value, synth.spec.cache.enabled)] = set(names)
    for on in (False, True):
        assert not by_stage[("dev", on)] & by_stage[("prod", on)]
