"""The Helm chart (helm/alis-import): linted and rendered with Helm's own code, every
manifest validated against the Kubernetes schemas, and the properties issue 7 asks for
asserted on what is rendered."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

import support
import values_doc
from support import deep_merge, pod_specs, render

# The value sets every structural test runs against.
VALUE_SETS = {
    "defaults": {},
    "production": support.production_values(),
    "tls-networkpolicy": {
        "tls": {"enabled": True, "existingSecret": "alis-import-tls"},
        "networkPolicy": {"enabled": True},
        "auth": {"keyType": "publicKey", "secretKey": "key.pem"},
    },
}


@pytest.fixture(scope="module", params=sorted(VALUE_SETS))
def rendered(request) -> support.Rendered:
    return render(VALUE_SETS[request.param])


# --- Helm: lint and render ----------------------------------------------------------


@pytest.mark.parametrize("kube_version", support.kube_versions())
@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_chart_lints_cleanly_in_strict_mode(value_set: str, kube_version: str) -> None:
    report = support.lint(VALUE_SETS[value_set], kube_version)
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # warning or error
    assert problems == [], problems


def test_chart_renders_every_resource_with_default_values() -> None:
    assert render().kinds() == [
        "ConfigMap",
        "CronJob",
        "Deployment",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    ]


def test_chart_renders_production_values_with_network_policies() -> None:
    kinds = render(support.production_values()).kinds()
    assert kinds.count("NetworkPolicy") == 2
    assert {"Deployment", "CronJob", "PodDisruptionBudget", "Service"} <= set(kinds)


@pytest.mark.parametrize("kube_version", support.kube_versions())
@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_manifest_validates_against_the_kubernetes_schema(
    value_set: str, kube_version: str
) -> None:
    rendered = render(VALUE_SETS[value_set])
    assert rendered.documents
    for template, doc in rendered.documents:
        try:
            support.validate(doc, kube_version)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            pytest.fail(f"{template} {doc['kind']}: {path}: {error.message}")


def test_schema_validation_has_teeth() -> None:
    deployment = render().one("Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["grpc"]["prot"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        support.validate(deployment, support.min_kube_version())
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        support.validate({"apiVersion": "example.org/v1", "kind": "Nothing"}, "1.30")


# --- Security ------------------------------------------------------------------------


def test_every_pod_runs_as_non_root_with_a_read_only_root_and_no_capabilities(
    rendered: support.Rendered,
) -> None:
    pods = list(pod_specs(rendered))
    assert {p.owner.split("/")[0] for p in pods} == {"Deployment", "CronJob"}
    for pod in pods:
        context = pod.spec["securityContext"]
        assert context["runAsNonRoot"] is True, pod.owner
        assert context["runAsUser"] > 0, pod.owner
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, pod.owner
        assert pod.spec["automountServiceAccountToken"] is False, pod.owner
        assert "hostNetwork" not in pod.spec and "hostPID" not in pod.spec, pod.owner
        for container in pod.containers():
            where = f"{pod.owner} container {container['name']}"
            security = container["securityContext"]
            assert security["runAsNonRoot"] is True, where
            assert security["runAsUser"] > 0, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["privileged"] is False, where
            assert security["capabilities"] == {"drop": ["ALL"]}, where
            assert "add" not in security["capabilities"], where
            assert security["seccompProfile"] == {"type": "RuntimeDefault"}, where


def test_the_server_writes_only_to_its_empty_dir_volumes(rendered: support.Rendered) -> None:
    deployment = rendered.one("Deployment")
    spec = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in spec["containers"][0]["volumeMounts"]}
    work_dir = rendered.one("ConfigMap")["data"]["ALIS_WORK_DIR"]
    for path in (work_dir, "/tmp"):
        assert "emptyDir" in volumes[mounts[path]["name"]], path
        assert volumes[mounts[path]["name"]]["emptyDir"]["sizeLimit"]
    for path, mount in mounts.items():
        if "emptyDir" not in volumes[mount["name"]]:
            assert mount.get("readOnly") is True, f"{path} must be read-only"


def test_root_user_is_refused() -> None:
    with pytest.raises(helm.HelmError, match="runAsUser must not be 0"):
        render({"securityContext": {"runAsUser": 0}})


# --- Secrets -------------------------------------------------------------------------


def test_no_secret_value_is_rendered_in_clear(rendered: support.Rendered) -> None:
    assert rendered.of_kind("Secret") == [], "the chart must only reference existing Secrets"
    text = rendered.text()
    assert not re.search(r"postgres(ql)?://[^\s\"']*:[^\s\"'@]*@", text), "a database password"
    assert "BEGIN" not in text and "PRIVATE KEY" not in text
    assert "eyJ" not in text, "something that looks like a JWT"

    credential = re.compile(r"^(DATABASE_URL|VAULT_TOKEN)$|PASSWORD|SECRET|_TOKEN$")
    for pod in pod_specs(rendered):
        for container in pod.containers():
            for env in container.get("env", []):
                if credential.search(env["name"]):
                    assert "value" not in env, f"{pod.owner} {env['name']} in clear"
    for configmap in rendered.of_kind("ConfigMap"):
        for name in configmap["data"]:
            assert not credential.search(name), f"ConfigMap key {name}"


def test_the_database_url_comes_from_the_named_secret() -> None:
    deployment = render({"database": {"existingSecret": "erp-db", "urlKey": "dsn"}}).one(
        "Deployment"
    )
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DATABASE_URL"] == {
        "name": "DATABASE_URL",
        "valueFrom": {"secretKeyRef": {"name": "erp-db", "key": "dsn"}},
    }


@pytest.mark.parametrize(
    "values, message",
    [
        ({"database": {"url": "postgres://alis:hunter2@db/erp"}}, "database.url is not a value"),
        ({"config": {"extra": {"VAULT_TOKEN": "hvs.x"}}}, "looks like a credential"),
        ({"config": {"extra": {"SFTP_PASSWORD": "x"}}}, "looks like a credential"),
        ({"extraEnv": [{"name": "DATABASE_URL", "value": "postgres://a:b@c/d"}]}, "secretKeyRef"),
        ({"auth": {"existingSecret": ""}}, "auth.existingSecret is required"),
        ({"database": {"existingSecret": ""}}, "database.existingSecret is required"),
    ],
)
def test_values_that_would_expose_or_drop_a_credential_are_refused(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmError, match=re.escape(message)):
        render(values)


def test_every_configured_file_is_mounted(rendered: support.Rendered) -> None:
    """Each *_FILE / VAULT_CACERT path the service or client is told about lies in a
    volume mounted into that container."""
    settings = rendered.one("ConfigMap")["data"]
    for pod in pod_specs(rendered):
        for container in pod.containers():
            paths = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
            if any(ref.get("configMapRef") for ref in container.get("envFrom", [])):
                paths.update(settings)
            args = container.get("args", [])
            for flag in ("--ca", "--cert", "--key"):
                if flag in args:
                    paths[flag] = args[args.index(flag) + 1]
            files = {
                k: v for k, v in paths.items() if k.endswith("_FILE") or k in ("VAULT_CACERT", "--ca", "--cert", "--key")
            }
            assert files, f"{pod.owner}: no files configured?"
            mounts = [m["mountPath"] for m in container["volumeMounts"]]
            for name, path in files.items():
                assert any(path.startswith(m.rstrip("/") + "/") for m in mounts), (
                    f"{pod.owner}: {name}={path} is not under a mount"
                )


# --- Server: settings, probes, labels -------------------------------------------------


def test_settings_are_production_safe_by_default() -> None:
    settings = render().one("ConfigMap")["data"]
    assert settings["ALIS_LISTEN"] == "0.0.0.0:50051"
    assert settings["ALIS_MANAGE_ERP_SCHEMA"] == "false"
    assert settings["ALIS_DEMO_DATA"] == "false"
    assert settings["ALIS_LOG_FORMAT"] == "json"
    assert settings["ALIS_TIME_ZONE"] == "America/New_York"
    assert settings["ALIS_SOURCE"] == "sftp"
    assert settings["ALIS_VAULT_AUTH"] == "kubernetes"
    # A non-loopback listener needs authentication: a key file, an audience, a roles claim.
    assert settings["ALIS_AUTH_JWKS_FILE"].startswith("/etc/alis-import/auth/")
    assert settings["ALIS_AUTH_AUDIENCE"] and settings["ALIS_AUTH_ROLES_CLAIM"]
    # Left out when empty, so the service's own default applies.
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in settings
    assert "ALIS_DISTRICT_NAME" not in settings


def test_production_settings_reach_the_config_map() -> None:
    settings = render(support.production_values()).one("ConfigMap")["data"]
    assert settings["ALIS_AUTH_ISSUER"] == "https://login.district.example/realms/erp"
    assert settings["ALIS_DISTRICT_NAME"] == "Green Mountain Unified School District"
    assert settings["ALIS_TLS_CLIENT_CA_FILE"] == "/etc/alis-import/client-ca/ca.crt"
    assert settings["VAULT_ADDR"] == "https://vault.vault.svc:8200"
    assert settings["OTEL_EXPORTER_OTLP_ENDPOINT"].endswith(":4317")
    assert settings["ALIS_BUSY_WAIT"] == "30m"


def test_server_probes_are_native_grpc_health_checks_on_the_grpc_port() -> None:
    deployment = render().one("Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    port = container["ports"][0]
    assert port == {"name": "grpc", "containerPort": 50051, "protocol": "TCP"}
    assert container["startupProbe"]["grpc"] == {"port": 50051, "service": ""}
    assert container["livenessProbe"]["grpc"] == {"port": 50051, "service": ""}
    # Readiness asks about the API service, which goes NOT_SERVING when shutdown begins.
    assert container["readinessProbe"]["grpc"] == {
        "port": 50051,
        "service": "alis.certimport.v1.CertImportService",
    }
    assert container["args"] == ["serve"]


def test_with_tls_the_probes_check_the_tcp_port_and_grpc_mode_is_refused() -> None:
    tls = {"tls": {"enabled": True, "existingSecret": "alis-import-tls"}}
    container = render(tls).one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["tcpSocket"] == {"port": "grpc"}, probe
        assert "grpc" not in container[probe]
    with pytest.raises(helm.HelmError, match="does not speak TLS"):
        render(deep_merge(tls, {"probes": {"mode": "grpc"}}))


def test_replicas_resources_and_config_checksum() -> None:
    deployment = render({"replicaCount": 4}).one("Deployment")
    assert deployment["spec"]["replicas"] == 4
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]

    def checksum(values: dict[str, Any]) -> str:
        template = render(values).one("Deployment")["spec"]["template"]
        return template["metadata"]["annotations"]["checksum/config"]

    assert checksum({}) == checksum({})
    assert checksum({}) != checksum({"config": {"districtName": "Another District"}})


def test_resources_carry_the_helm_recommended_labels(rendered: support.Rendered) -> None:
    chart = support.chart_metadata()
    for _, doc in rendered.documents:
        labels = doc["metadata"]["labels"]
        assert labels["helm.sh/chart"] == f"{chart['name']}-{chart['version']}"
        assert labels["app.kubernetes.io/name"] == "alis-import"
        assert labels["app.kubernetes.io/instance"] == support.RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/version"]
        assert doc["metadata"]["namespace"] == support.NAMESPACE


def test_service_and_budget_select_the_server_pods_only(rendered: support.Rendered) -> None:
    server_labels = rendered.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    cron_labels = rendered.one("CronJob")["spec"]["jobTemplate"]["spec"]["template"]["metadata"][
        "labels"
    ]
    selectors = {
        "Deployment": rendered.one("Deployment")["spec"]["selector"]["matchLabels"],
        "Service": rendered.one("Service")["spec"]["selector"],
        "PodDisruptionBudget": rendered.one("PodDisruptionBudget")["spec"]["selector"][
            "matchLabels"
        ],
    }
    for kind, selector in selectors.items():
        assert selector.items() <= server_labels.items(), kind
        assert not selector.items() <= cron_labels.items(), kind
    service_port = rendered.one("Service")["spec"]["ports"][0]
    assert service_port["targetPort"] == "grpc" and service_port["appProtocol"] == "grpc"


def test_pod_disruption_budget_is_present_and_configurable() -> None:
    assert render().one("PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    production = render(support.production_values()).one("PodDisruptionBudget")["spec"]
    assert production["minAvailable"] == 2 and "maxUnavailable" not in production
    assert render({"podDisruptionBudget": {"enabled": False}}).of_kind("PodDisruptionBudget") == []


def test_vault_kubernetes_auth_uses_an_audience_bound_projected_token() -> None:
    rendered = render(support.production_values())
    spec = rendered.one("Deployment")["spec"]["template"]["spec"]
    (token,) = [v for v in spec["volumes"] if v["name"] == "vault-token"]
    source = token["projected"]["sources"][0]["serviceAccountToken"]
    assert source == {"audience": "vault", "expirationSeconds": 900, "path": "token"}
    assert spec["serviceAccountName"] == rendered.one("ServiceAccount")["metadata"]["name"]
    assert rendered.one("ConfigMap")["data"]["ALIS_VAULT_KUBERNETES_TOKEN_FILE"] == (
        "/var/run/secrets/vault/token"
    )


# --- CronJob ---------------------------------------------------------------------------


def test_cronjob_runs_one_import_at_a_time_on_a_time_zone_schedule(
    rendered: support.Rendered,
) -> None:
    cronjob = rendered.one("CronJob")
    spec = cronjob["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["timeZone"] == "America/New_York"
    assert spec["startingDeadlineSeconds"] == 43200
    assert spec["jobTemplate"]["spec"]["backoffLimit"] == 2
    assert spec["jobTemplate"]["spec"]["activeDeadlineSeconds"] > 0
    assert spec["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_cronjob_runs_run_now_with_wait_and_an_idempotency_key(rendered: support.Rendered) -> None:
    pod = rendered.one("CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == rendered.one("Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]["image"], "the CronJob runs the server's image"
    args = container["args"]
    assert args[:6] == ["run-now", "--task", "1", "--wait", "--idempotency-key", "$(JOB_NAME)"]
    env = {e["name"]: e for e in container["env"]}
    assert env["JOB_NAME"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/job-name']"}
    }
    # $(JOB_NAME) is expanded by the kubelet only from a variable defined before use.
    assert list(env).index("JOB_NAME") == 0
    assert env["ALIS_TOKEN_FILE"]["value"] == "/etc/alis-import/client/token"
    assert env["ALIS_SERVER"]["value"].endswith(".erp.svc:50051")


def test_cronjob_task_and_schedule_come_from_values() -> None:
    cronjob = render(
        {"cronJob": {"taskId": 42, "schedule": "15 4 * * 2", "timeZone": "UTC", "dryRun": True}}
    ).one("CronJob")
    assert cronjob["spec"]["schedule"] == "15 4 * * 2"
    assert cronjob["spec"]["timeZone"] == "UTC"
    args = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[1:3] == ["--task", "42"] and "--dry-run" in args
    assert render({"cronJob": {"enabled": False}}).of_kind("CronJob") == []


def _job_name(cronjob_name: str, scheduled: dt.datetime) -> str:
    """How the CronJob controller names a slot's Job (getJobName in
    pkg/controller/cronjob/utils.go): the scheduled time in minutes since the epoch."""
    return f"{cronjob_name}-{int(scheduled.timestamp()) // 60}"


def _expand(argument: str, env: dict[str, str]) -> str:
    """The kubelet's $(VAR) expansion of container args."""
    return re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), argument)


def test_idempotency_key_is_the_scheduled_slot() -> None:
    cronjob = render().one("CronJob")
    args = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    key_arg = args[args.index("--idempotency-key") + 1]
    name = cronjob["metadata"]["name"]
    new_york = dt.timezone(dt.timedelta(hours=-5))
    monday = dt.datetime(2025, 12, 1, 6, 0, tzinfo=new_york)

    def key(scheduled: dt.datetime) -> str:
        return _expand(key_arg, {"JOB_NAME": _job_name(name, scheduled)})

    assert key(monday) == "alis-import-29409780"
    # Every pod of one slot (first try and retries) sends the same key ...
    assert key(monday) == key(monday.astimezone(dt.timezone.utc))
    # ... and the next slot another one.
    assert key(monday) != key(monday + dt.timedelta(days=7))


def test_cronjob_name_leaves_room_for_the_job_suffix() -> None:
    long_release = "district-certification-import-production-blue"
    rendered = render(release=long_release)
    name = rendered.one("CronJob")["metadata"]["name"]
    assert len(name) <= 52
    job_name = _job_name(name, dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc))
    assert len(job_name) <= 63, "a Job name (and its pods' label value) must fit in 63"
    for _, doc in rendered.documents:
        assert len(doc["metadata"]["name"]) <= 63


def test_cronjob_client_uses_tls_and_client_certificates_when_the_server_does() -> None:
    rendered = render(support.production_values())
    pod = rendered.one("CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["ALIS_SERVER"] == "https://alis-import.erp.svc:50051"
    args = container["args"]
    assert args[args.index("--ca") + 1] == "/etc/alis-import/server-ca/ca.crt"
    assert args[args.index("--cert") + 1] == "/etc/alis-import/client-tls/tls.crt"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["client-tls"]["secret"]["secretName"] == "alis-import-cronjob-client-tls"
    assert volumes["server-ca"]["secret"]["secretName"] == "erp-internal-ca"
    without_client_cert = deep_merge(
        support.production_values(), {"cronJob": {"tls": {"clientCertSecret": ""}}}
    )
    with pytest.raises(helm.HelmError, match="clientCertSecret is required"):
        render(without_client_cert)


# --- NetworkPolicy -----------------------------------------------------------------------


def test_network_policy_is_toggled_by_a_value() -> None:
    assert render().of_kind("NetworkPolicy") == []
    assert render({"networkPolicy": {"enabled": False}}).of_kind("NetworkPolicy") == []
    policies = render({"networkPolicy": {"enabled": True}}).of_kind("NetworkPolicy")
    assert len(policies) == 2


def test_network_policy_admits_grpc_from_the_erp_and_the_cronjob_only() -> None:
    rendered = render(support.production_values())
    server_labels = rendered.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    cron_labels = rendered.one("CronJob")["spec"]["jobTemplate"]["spec"]["template"]["metadata"][
        "labels"
    ]
    by_target = {}
    for policy in rendered.of_kind("NetworkPolicy"):
        selector = policy["spec"]["podSelector"]["matchLabels"]
        target = "server" if selector.items() <= server_labels.items() else "cronjob"
        assert selector.items() <= (server_labels if target == "server" else cron_labels).items()
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        by_target[target] = policy["spec"]

    (ingress,) = by_target["server"]["ingress"]
    assert ingress["ports"] == [{"port": 50051, "protocol": "TCP"}]
    peers = ingress["from"]
    assert any(
        p.get("podSelector", {}).get("matchLabels", {}).items() <= cron_labels.items()
        and "namespaceSelector" not in p
        for p in peers
    ), "the CronJob may call the server"
    assert any(
        p.get("namespaceSelector") == {"matchLabels": {"kubernetes.io/metadata.name": "erp"}}
        for p in peers
    ), "the ERP may call the server"

    egress_ports = {
        (port["port"], port["protocol"])
        for rule in by_target["server"]["egress"]
        for port in rule["ports"]
    }
    assert egress_ports == {(53, "UDP"), (53, "TCP"), (5432, "TCP"), (8200, "TCP"), (22, "TCP"), (4317, "TCP")}
    assert all(rule.get("to") for rule in by_target["server"]["egress"]), "production narrows every rule"

    assert by_target["cronjob"]["ingress"] == []
    to_server = [r for r in by_target["cronjob"]["egress"] if r["ports"] == [{"port": 50051, "protocol": "TCP"}]]
    assert to_server and to_server[0]["to"][0]["podSelector"]["matchLabels"].items() <= server_labels.items()


def test_network_policy_egress_rules_can_be_switched_off() -> None:
    values = {"networkPolicy": {"enabled": True, "egress": {"otlp": {"enabled": False}, "sftp": {"enabled": False}}}}
    policies = render(values).of_kind("NetworkPolicy")
    server = next(p for p in policies if p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "server")
    ports = {port["port"] for rule in server["spec"]["egress"] for port in rule["ports"]}
    assert ports == {53, 5432, 8200}


# --- Documentation -------------------------------------------------------------------------


def test_every_value_is_documented_in_values_yaml_and_the_readme() -> None:
    text = support.CHART.joinpath("values.yaml").read_text()
    entries = values_doc.entries(text)
    assert len(entries) > 50
    undocumented = [e.path for e in entries if not e.description]
    assert undocumented == [], f"values.yaml keys without a `# --` comment: {undocumented}"

    # Every leaf of the parsed values is one of those entries (nothing hides in a list).
    def leaves(node: Any, prefix: str = "") -> list[str]:
        if isinstance(node, dict) and node:
            return [p for k, v in node.items() for p in leaves(v, f"{prefix}{k}.")]
        return [prefix.rstrip(".")]

    assert set(leaves(yaml.safe_load(text))) <= {e.path for e in entries}

    readme = support.CHART.joinpath("README.md").read_text()
    assert values_doc.readme_with_table(readme, text) == readme, (
        "README.md's values table is stale: python3 tests/deploy/values_doc.py --write"
    )
    for path in leaves(yaml.safe_load(text)):
        assert f"| `{path}` |" in readme, path


def test_every_value_the_templates_read_exists_in_values_yaml() -> None:
    """A template reading .Values.x that values.yaml lacks is an undocumented value."""
    defaults = support.chart_defaults()
    for template in support.CHART.joinpath("templates").iterdir():
        for path in re.findall(r"\.Values\.([A-Za-z0-9_.]+)", template.read_text()):
            node: Any = defaults
            for part in path.split("."):
                assert isinstance(node, dict) and part in node, f"{template.name}: .Values.{path}"
                node = node[part]
