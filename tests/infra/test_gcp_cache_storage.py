"""The cache (Memorystore behind Direct VPC egress) and the uploads bucket on Google Cloud.

``gcp_variant`` is prod with both on (and a CORS origin); ``gcp_dev`` and ``gcp_prod`` have
both off. ``dev_existing_vpc`` (this module) is dev with both on in an existing VPC: once the
provider bindings are loaded, one more synth costs a fraction of a second.
"""

from __future__ import annotations

import json
import re
from typing import Any

import cdktf
import pytest

from tests.infra.gcp_synth import SynthesizedGcp, synth_gcp
from tests.infra.test_gcp_stack import (
    ACCESSOR,
    JOB,
    PROJECT,
    PROJECT_GRANT,
    REGION,
    SECRET_GRANT,
    SERVICE,
    VERSION,
    address_of,
    container,
    has,
    member,
    ref,
    sample_arguments,
    secret_address,
    service_account,
)

REDIS = "google_redis_instance"
NETWORK = "google_compute_network"
SUBNET = "google_compute_subnetwork"
BUCKET = "google_storage_bucket"
BUCKET_GRANT = "google_storage_bucket_iam_member"
ACCOUNT_GRANT = "google_service_account_iam_member"
TOKEN_CREATOR = "roles/iam.serviceAccountTokenCreator"
NEW_APIS = {"compute.googleapis.com", "redis.googleapis.com", "iamcredentials.googleapis.com"}
CACHE_ENV = {"REDIS_URL", "REDIS_CA_CERT"}
STORAGE_ENV = {
    "STORAGE_BACKEND",
    "UPLOADS_BUCKET",
    "UPLOADS_PREFIX",
    "UPLOAD_MAX_BYTES",
    "UPLOAD_URL_EXPIRY_SECONDS",
    "SIGNING_SERVICE_ACCOUNT",
}
EXISTING_VPC = {
    "spec.cache.enabled": "true",
    "spec.storage.enabled": "true",
    "spec.gcp.network": "shared-vpc",
    "spec.gcp.subnetwork": "shared-vpc-run",
}


@pytest.fixture(scope="module")
def dev_existing_vpc() -> SynthesizedGcp:
    return synth_gcp("dev", EXISTING_VPC)


def env_of(synth: SynthesizedGcp, kind: str) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container(synth, kind)["env"]}


def uploads_bucket(synth: SynthesizedGcp) -> tuple[str, dict[str, Any]]:
    """The bucket that is not the build staging bucket."""
    found = [
        (f"{BUCKET}.{name}", props)
        for name, props in synth.resources(BUCKET).items()
        if props["name"].endswith("-uploads")
    ]
    assert len(found) == 1, found
    return found[0]


def release_wait(synth: SynthesizedGcp) -> str:
    """The terraform_data that waits, on destroy, for Cloud Run to release the subnet."""
    found = [
        f"terraform_data.{name}"
        for name, props in synth.resources("terraform_data").items()
        if "subnetwork" in props.get("input", {})
    ]
    assert len(found) == 1, found
    return found[0]


# --- Memorystore for Redis ----------------------------------------------------------


def test_memorystore_instance_with_auth_and_tls_from_the_spec(gcp_variant: SynthesizedGcp) -> None:
    cache = gcp_variant.spec.cache
    assert (cache.gcp_tier, cache.gcp_memory_gb, cache.gcp_redis_version) == ("BASIC", 1, "REDIS_7_2")
    _, instance = gcp_variant.single(REDIS)
    assert {key: value for key, value in instance.items() if key != "depends_on"} == {
        "name": "fastapi-svc-prod-cache",
        "display_name": "Cache of fastapi-svc-prod",
        "project": PROJECT,
        "region": REGION,
        "tier": "BASIC",
        "memory_size_gb": 1,
        "redis_version": "REDIS_7_2",
        "auth_enabled": True,
        "transit_encryption_mode": "SERVER_AUTHENTICATION",  # TLS on 6378
        # Peers with the VPC itself: no private services access range to reserve.
        "connect_mode": "DIRECT_PEERING",
        "authorized_network": ref(address_of(gcp_variant, NETWORK), "id"),
        "labels": {"app": "fastapi-svc-prod"},
    }


def test_the_spec_chooses_tier_size_and_version() -> None:
    synth = synth_gcp(
        "prod",
        {
            "spec.cache.enabled": "true",
            "spec.cache.gcp_tier": "STANDARD_HA",
            "spec.cache.gcp_memory_gb": "5",
            "spec.cache.gcp_redis_version": "REDIS_7_0",
        },
    )
    has(synth, REDIS, {"tier": "STANDARD_HA", "memory_size_gb": 5, "redis_version": "REDIS_7_0"})
    # The cache alone: no bucket, no signing grant, no IAM Credentials API.
    assert uploads_bucket_absent(synth)
    assert not synth.resources(ACCOUNT_GRANT)
    enabled = {p["service"] for p in synth.resources("google_project_service").values()}
    assert enabled & NEW_APIS == {"compute.googleapis.com", "redis.googleapis.com"}


def uploads_bucket_absent(synth: SynthesizedGcp) -> bool:
    return not [p for p in synth.resources(BUCKET).values() if p["name"].endswith("-uploads")]


# --- The VPC path -------------------------------------------------------------------


def test_a_new_custom_mode_network_and_subnet_for_direct_vpc_egress(gcp_variant: SynthesizedGcp) -> None:
    assert gcp_variant.spec.gcp.network is None
    network = address_of(gcp_variant, NETWORK)
    has(
        gcp_variant,
        NETWORK,
        {"name": "fastapi-svc-prod", "project": PROJECT, "auto_create_subnetworks": False},
    )
    _, subnet = gcp_variant.single(SUBNET)
    assert subnet["network"] == ref(network, "id")
    assert subnet["region"] == REGION
    assert subnet["ip_cidr_range"] == "10.8.0.0/24" == gcp_variant.spec.gcp.subnet_cidr
    assert subnet["private_ip_google_access"] is True
    assert subnet["log_config"]["aggregation_interval"] == "INTERVAL_10_MIN"  # flow logs, sampled


def test_service_egresses_to_private_ranges_through_the_subnet(gcp_variant: SynthesizedGcp) -> None:
    _, service = gcp_variant.single(SERVICE)
    assert service["template"]["vpc_access"] == {
        "egress": "PRIVATE_RANGES_ONLY",
        "network_interfaces": [
            {
                "network": ref(address_of(gcp_variant, NETWORK), "name"),
                # The subnet's name, read through the destroy-time wait (test_gcp_runtime_paths.py).
                "subnetwork": ref(release_wait(gcp_variant), "output.subnetwork"),
            }
        ],
    }
    assert "connector" not in service["template"]["vpc_access"]  # Direct VPC egress, no connector


def test_an_existing_network_is_used_not_created(dev_existing_vpc: SynthesizedGcp) -> None:
    assert not dev_existing_vpc.resources(NETWORK)
    assert not dev_existing_vpc.resources(SUBNET)
    has(
        dev_existing_vpc,
        SERVICE,
        {
            "template": {
                "vpc_access": {
                    "egress": "PRIVATE_RANGES_ONLY",
                    "network_interfaces": [{"network": "shared-vpc", "subnetwork": "shared-vpc-run"}],
                }
            }
        },
    )
    has(
        dev_existing_vpc,
        REDIS,
        {
            "authorized_network": f"projects/{PROJECT}/global/networks/shared-vpc",
            "name": "fastapi-svc-dev-cache",
        },
    )


def test_the_migration_job_gets_no_vpc_path_and_no_cache_or_storage(gcp_variant: SynthesizedGcp) -> None:
    _, job = gcp_variant.single(JOB)
    assert "vpc_access" not in job["template"]["template"]
    assert not set(env_of(gcp_variant, JOB)) & (CACHE_ENV | STORAGE_ENV)
    # Nor does it wait for them (Memorystore takes minutes to create).
    waits_for = gcp_variant.dependencies(address_of(gcp_variant, JOB))
    assert address_of(gcp_variant, REDIS) not in waits_for
    assert uploads_bucket(gcp_variant)[0] not in waits_for


# --- How the service finds the cache ------------------------------------------------


def test_redis_url_comes_from_secret_manager(gcp_variant: SynthesizedGcp) -> None:
    redis = address_of(gcp_variant, REDIS)
    secret = secret_address(gcp_variant, "REDIS_URL")
    assert env_of(gcp_variant, SERVICE)["REDIS_URL"] == {
        "name": "REDIS_URL",
        "value_source": {"secret_key_ref": {"secret": ref(secret, "secret_id"), "version": "latest"}},
    }
    versions = {
        f"{VERSION}.{name}": props
        for name, props in gcp_variant.resources(VERSION).items()
        if props["secret"] == ref(secret, "id")
    }
    assert len(versions) == 1
    ((version, props),) = versions.items()
    url = f"rediss://:${{urlencode({redis}.auth_string)}}@{ref(redis, 'host')}:{ref(redis, 'port')}/0"
    assert props["secret_data_wo"] == url
    assert props["secret_data_wo_version"] == 1
    # Written once (write-only): a new instance (new host, new AUTH string) writes it again.
    # A bare address: Terraform refuses "${...}" in replace_triggered_by.
    assert props["lifecycle"] == {"replace_triggered_by": [redis]}
    has(
        gcp_variant,
        SECRET_GRANT,
        {"secret_id": ref(secret, "secret_id"), "role": ACCESSOR, "member": member(gcp_variant, "run")},
    )
    _, service = gcp_variant.single(SERVICE)
    assert version in service["depends_on"]


def test_the_auth_string_is_only_in_the_secret_version(gcp_variant: SynthesizedGcp) -> None:
    holders = [
        address for address, props in gcp_variant.all_resources() if "auth_string" in json.dumps(props)
    ]
    secret = secret_address(gcp_variant, "REDIS_URL")
    assert len(holders) == 1
    assert gcp_variant.json["resource"][VERSION][holders[0].split(".")[1]]["secret"] == ref(secret, "id")
    assert "auth_string" not in json.dumps(gcp_variant.json["output"])
    plain = {item["name"]: item["value"] for item in env_of(gcp_variant, SERVICE).values() if "value" in item}
    assert not [name for name, value in plain.items() if "auth_string" in value or "rediss://" in value]


def test_redis_ca_certificate_is_a_plain_variable(gcp_variant: SynthesizedGcp) -> None:
    redis = address_of(gcp_variant, REDIS)
    assert env_of(gcp_variant, SERVICE)["REDIS_CA_CERT"] == {
        "name": "REDIS_CA_CERT",
        # All of them: during a CA rotation, the old and the new CA are both valid.
        "value": '${join("\\n", ' + redis + ".server_ca_certs[*].cert)}",
    }


def test_redis_host_output(gcp_variant: SynthesizedGcp) -> None:
    assert gcp_variant.json["output"]["redis_host"]["value"] == ref(address_of(gcp_variant, REDIS), "host")


# --- The uploads bucket -------------------------------------------------------------


def test_uploads_bucket_is_private_versioned_and_tidied_in_prod(gcp_variant: SynthesizedGcp) -> None:
    storage = gcp_variant.spec.storage
    assert (storage.versioned, storage.noncurrent_days) == (True, 90)
    _, bucket = uploads_bucket(gcp_variant)
    assert bucket["name"] == "my-gcp-project-fastapi-svc-prod-uploads"
    assert bucket["location"] == REGION
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert bucket["versioning"] == {"enabled": True}
    assert bucket["force_destroy"] is False  # prod: destroy never deletes attachments
    assert bucket["labels"] == {"app": "fastapi-svc-prod"}
    assert bucket["lifecycle_rule"] == [
        {
            "action": {"type": "Delete"},
            "condition": {"days_since_noncurrent_time": 90, "with_state": "ARCHIVED"},
        },
        {"action": {"type": "AbortIncompleteMultipartUpload"}, "condition": {"age": 1}},
    ]
    assert "logging" not in bucket  # see CKV_GCP_62 in .checkov-gcp.yaml


def test_uploads_bucket_cors_from_the_spec(
    gcp_variant: SynthesizedGcp, dev_existing_vpc: SynthesizedGcp
) -> None:
    assert gcp_variant.spec.cors_origins == ("https://app.example.com",)
    _, bucket = uploads_bucket(gcp_variant)
    assert bucket["cors"] == [
        {
            "origin": ["https://app.example.com"],
            "method": ["PUT", "GET", "HEAD", "POST"],
            "response_header": ["Content-Type", "x-goog-content-length-range", "ETag"],
            "max_age_seconds": 3600,
        }
    ]
    assert dev_existing_vpc.spec.cors_origins == ()
    assert "cors" not in uploads_bucket(dev_existing_vpc)[1]  # no origin, no CORS rule


def test_dev_uploads_bucket_is_unversioned_and_destroyable(dev_existing_vpc: SynthesizedGcp) -> None:
    _, bucket = uploads_bucket(dev_existing_vpc)
    assert bucket["versioning"] == {"enabled": False}
    assert bucket["force_destroy"] is True
    assert bucket["lifecycle_rule"][0]["condition"]["days_since_noncurrent_time"] == 30


def test_service_environment_for_signed_urls(gcp_variant: SynthesizedGcp) -> None:
    env = env_of(gcp_variant, SERVICE)
    bucket, _ = uploads_bucket(gcp_variant)
    assert {name: env[name].get("value") for name in STORAGE_ENV} == {
        "STORAGE_BACKEND": "gcs",
        "UPLOADS_BUCKET": ref(bucket, "name"),
        "UPLOADS_PREFIX": "uploads/",
        "UPLOAD_MAX_BYTES": str(10 * 1024 * 1024),
        "UPLOAD_URL_EXPIRY_SECONDS": "900",
        "SIGNING_SERVICE_ACCOUNT": ref(service_account(gcp_variant, "run"), "email"),
    }
    assert gcp_variant.json["output"]["uploads_bucket"]["value"] == ref(bucket, "name")


def test_runtime_uses_objects_under_the_prefix_of_this_bucket_only(gcp_variant: SynthesizedGcp) -> None:
    runtime = member(gcp_variant, "run")
    bucket, props = uploads_bucket(gcp_variant)
    grants = [p for p in gcp_variant.resources(BUCKET_GRANT).values() if p["member"] == runtime]
    objects = f"projects/_/buckets/{props['name']}/objects/uploads/"
    assert grants == [
        {
            "bucket": ref(bucket, "name"),
            "role": "roles/storage.objectUser",
            "member": runtime,
            "condition": {
                "title": "only uploads/",
                "description": f"Objects under uploads/ of {props['name']}",
                "expression": f'resource.name.startsWith("{objects}")',
            },
        }
    ]
    project_roles = {p["role"] for p in gcp_variant.resources(PROJECT_GRANT).values()}
    assert not {role for role in project_roles if role.startswith("roles/storage.")}


def test_runtime_may_sign_as_itself_and_no_one_else(gcp_variant: SynthesizedGcp) -> None:
    runtime = service_account(gcp_variant, "run")
    _, grant = gcp_variant.single(ACCOUNT_GRANT)
    assert grant == {
        "service_account_id": ref(runtime, "name"),
        "role": TOKEN_CREATOR,
        "member": member(gcp_variant, "run"),
    }
    assert TOKEN_CREATOR not in {p["role"] for p in gcp_variant.resources(PROJECT_GRANT).values()}
    _, service = gcp_variant.single(SERVICE)
    assert f"{ACCOUNT_GRANT}.{gcp_variant.single(ACCOUNT_GRANT)[0]}" in service["depends_on"]


# --- APIs ---------------------------------------------------------------------------


def test_their_apis_are_enabled_and_waited_for(gcp_variant: SynthesizedGcp) -> None:
    enabled = {p["service"] for p in gcp_variant.resources("google_project_service").values()}
    assert enabled >= NEW_APIS
    apis = {f"google_project_service.{name}" for name in gcp_variant.resources("google_project_service")}
    for kind in (REDIS, NETWORK, SUBNET, BUCKET_GRANT, ACCOUNT_GRANT, VERSION):
        for name in gcp_variant.resources(kind):
            missing = apis - gcp_variant.dependencies(f"{kind}.{name}")
            assert not missing, f"{kind}.{name} may start before {sorted(missing)}"


# --- Both off: nothing of it --------------------------------------------------------


def test_features_off_add_nothing(gcp_dev: SynthesizedGcp, gcp_prod: SynthesizedGcp) -> None:
    for synth in (gcp_dev, gcp_prod):
        assert not synth.spec.cache.enabled and not synth.spec.storage.enabled
        for kind in (REDIS, NETWORK, SUBNET, ACCOUNT_GRANT):
            assert not synth.resources(kind), kind
        assert uploads_bucket_absent(synth)
        assert len(synth.resources(BUCKET)) == 1  # the build staging bucket
        enabled = {p["service"] for p in synth.resources("google_project_service").values()}
        assert not enabled & NEW_APIS
        _, service = synth.single(SERVICE)
        assert "vpc_access" not in service["template"]
        assert not set(env_of(synth, SERVICE)) & (CACHE_ENV | STORAGE_ENV)
        assert not {"redis_host", "uploads_bucket"} & set(synth.json["output"])
        assert "redis" not in synth.synth.lower()


# --- The constructs' inputs ---------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"existing_network": "vpc"}, "existing_network and existing_subnetwork go together"),
        ({"existing_network": "Bad", "existing_subnetwork": "s"}, "existing_network must be a network name"),
        ({"subnet_cidr": "10.8.0.0/27"}, "subnet_cidr must be /26 or larger"),
        ({"subnet_cidr": "8.8.8.0/24"}, "subnet_cidr must be a private range"),
        ({"subnet_cidr": "10.8.0.1/26"}, "subnet_cidr must be an IPv4 network"),
        # The smallest accepted; its size against the instances is the service's to check.
        ({"subnet_cidr": "10.8.0.0/26"}, None),
    ],
)
def test_network_options_reject_invalid_input(options: dict[str, Any], message: str | None) -> None:
    from constructs_lib.gcp.network import NetworkOptions

    if message is None:
        assert NetworkOptions(**options).subnet_cidr == options["subnet_cidr"]
        return
    with pytest.raises(ValueError, match=re.escape(message)):
        NetworkOptions(**options)


def test_the_service_refuses_a_subnet_too_small_for_its_instances() -> None:
    from constructs_lib.gcp.cache import CacheOptions
    from constructs_lib.gcp.cloud_run_service import CloudSqlOptions
    from constructs_lib.gcp.network import NetworkOptions

    with pytest.raises(ValueError, match=re.escape("subnet_cidr 10.8.0.0/26 has 60 usable addresses")):
        _service(
            "small-subnet",
            network=NetworkOptions(subnet_cidr="10.8.0.0/26"),
            cache=CacheOptions(),
            max_instances=40,
            database=CloudSqlOptions(tier="db-custom-2-8192"),
        )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"memory_gb": 0}, "memory_gb must be 1..300, got 0"),
        ({"memory_gb": 301}, "memory_gb must be 1..300, got 301"),
        ({"redis_version": "REDIS_5_0"}, "redis_version must be one of"),
        ({"tier": "STANDARD"}, "tier must be one of ['BASIC', 'STANDARD_HA']"),
    ],
)
def test_cache_options_reject_invalid_input(options: dict[str, Any], message: str) -> None:
    from constructs_lib.gcp.cache import CacheOptions

    with pytest.raises(ValueError, match=re.escape(message)):
        CacheOptions(**options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"prefix": "uploads"}, "prefix must look like 'uploads/'"),
        ({"prefix": 'up"loads/'}, "prefix must look like 'uploads/'"),  # pasted into an IAM condition
        ({"prefix": "Uploads/"}, "prefix must look like 'uploads/'"),  # the service's UPLOADS_PREFIX pattern
        (
            {"prefix": "a" * 64 + "/"},
            "prefix must look like 'uploads/'",
        ),  # 65 characters: the service caps it at 64
        ({"max_upload_mib": 0}, "max_upload_mib must be 1..5120"),
        ({"url_expiry_seconds": 59}, "url_expiry_seconds must be 60..3600"),  # the service's bounds
        ({"url_expiry_seconds": 3601}, "url_expiry_seconds must be 60..3600"),
        ({"noncurrent_days": 0}, "noncurrent_days must be 1..3650"),
    ],
)
def test_uploads_options_reject_invalid_input(options: dict[str, Any], message: str) -> None:
    from constructs_lib.gcp.storage import StorageOptions

    with pytest.raises(ValueError, match=re.escape(message)):
        StorageOptions(**options)


def test_uploads_options_accept_the_service_bounds() -> None:
    from constructs_lib.gcp.storage import StorageOptions

    for seconds in (60, 3600):
        assert StorageOptions(url_expiry_seconds=seconds).url_expiry_seconds == seconds
    assert StorageOptions(prefix="a/b_c-d/").prefix == "a/b_c-d/"


def test_the_object_condition_cannot_be_quoted_out_of() -> None:
    """The bucket name and prefix go into a CEL string literal: a quote is refused at synth."""
    from cdktf_cdktf_provider_google.service_account import ServiceAccount

    from constructs_lib.gcp.storage import StorageOptions, UploadsBucket

    stack = cdktf.TerraformStack(cdktf.Testing.app(), "quoted")
    runtime = ServiceAccount(stack, "runtime", project=PROJECT, account_id="svc-test-run")
    with pytest.raises(ValueError, match="the IAM condition cannot quote"):
        UploadsBucket(
            stack,
            "uploads",
            project=PROJECT,
            region=REGION,
            name='svc") || true || ("',
            runtime=runtime,
            options=StorageOptions(),
            depends_on=[],
        )


def _service(stack_name: str, **options: Any) -> None:
    """A CloudRunService in a stack of its own, with the given optional parts."""
    from constructs_lib.gcp.cloud_run_service import CloudRunService

    stack = cdktf.TerraformStack(cdktf.Testing.app(), stack_name)
    CloudRunService(
        stack,
        "service",
        project=PROJECT,
        region=REGION,
        name="svc-test",
        **sample_arguments(),
        **options,
    )


def test_a_cache_needs_a_network() -> None:
    from constructs_lib.gcp.cache import CacheOptions

    with pytest.raises(ValueError, match="cache needs network"):
        _service("no-network", cache=CacheOptions())


def test_redis_url_is_not_also_an_extra_secret() -> None:
    from constructs_lib.gcp.cache import CacheOptions
    from constructs_lib.gcp.network import NetworkOptions

    with pytest.raises(ValueError, match="extra_secrets: REDIS_URL comes from the cache"):
        _service("clash", network=NetworkOptions(), cache=CacheOptions(), extra_secrets=["REDIS_URL"])
