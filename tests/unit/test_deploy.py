"""The deployment files agree with the code and with each other: every configured variable is a
setting smtpmatch reads, one port everywhere, secrets only in the Secret, and the pod runs as the
image's non-root user on a read-only root filesystem."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
#: Variables read by Python or the libraries rather than by Settings.
PROCESS_VARIABLES = {"TMPDIR", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"}
SECRET_NAMES = re.compile(r"TOKEN|SECRET|PASSWORD|DATABASE_URL")


def load(name: str) -> dict[str, Any]:
    document = yaml.safe_load((DEPLOY / "base" / name).read_text())
    assert isinstance(document, dict)
    return document


def container() -> dict[str, Any]:
    [only] = load("deployment.yaml")["spec"]["template"]["spec"]["containers"]
    return dict(only)


def dockerfile(instruction: str) -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return re.findall(rf"^{instruction}\s+(.*)$", text, re.MULTILINE)


def setting_names() -> set[str]:
    return {name.upper() for name in Settings.model_fields}


def test_every_configured_variable_is_a_setting_smtpmatch_reads() -> None:
    config = set(load("configmap.yaml")["data"])
    overlay = yaml.safe_load((DEPLOY / "overlays/example/kustomization.yaml").read_text())
    [generator] = overlay["configMapGenerator"]
    literals = {item.split("=", 1)[0] for item in generator["literals"]}
    secrets = {
        line.split("=", 1)[0]
        for line in (DEPLOY / "secrets.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    env = {item["name"] for item in container()["env"]}

    known = setting_names() | PROCESS_VARIABLES
    assert (config | literals | secrets | env) - known == set()


def test_secrets_are_referenced_from_the_secret_and_never_written_in_the_manifests() -> None:
    assert not [name for name in load("configmap.yaml")["data"] if SECRET_NAMES.search(name)]
    for path in DEPLOY.rglob("*.yaml"):
        assert "kind: Secret" not in path.read_text(), path
    spec = container()
    assert {"secretRef": {"name": "smtpmatch-secrets"}} in spec["envFrom"]
    [database] = [e for e in spec["env"] if e["name"] == "SMTPMATCH_DATABASE_URL"]
    assert database["valueFrom"]["secretKeyRef"]["name"] == "smtpmatch-secrets"
    assert "value" not in database


def test_one_port_for_the_server_the_probes_the_healthcheck_and_the_scrape() -> None:
    port = int(load("configmap.yaml")["data"]["SMTPMATCH_PORT"])
    spec = container()
    [declared] = spec["ports"]
    annotations = load("deployment.yaml")["spec"]["template"]["metadata"]["annotations"]
    assert declared["containerPort"] == port
    assert int(annotations["prometheus.io/port"]) == port
    assert dockerfile("EXPOSE") == [str(port)]
    assert f"SMTPMATCH_PORT={port}" in " ".join(dockerfile("ENV"))
    assert Settings.model_fields["smtpmatch_port"].default == port
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert spec[probe]["httpGet"]["port"] == declared["name"]
    assert spec["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert spec["livenessProbe"]["httpGet"]["path"] == "/healthz/live"


def test_two_replicas_in_http_mode_with_a_disruption_budget() -> None:
    assert load("deployment.yaml")["spec"]["replicas"] == 2
    assert load("poddisruptionbudget.yaml")["spec"]["minAvailable"] == 1
    assert container()["args"] == ["serve", "--http"]
    assert dockerfile("CMD")[-1] == '["serve", "--http"]'
    assert load("service.yaml")["spec"]["ports"][0]["targetPort"] == "http"


def test_the_pod_runs_as_the_images_user_on_a_read_only_root_filesystem() -> None:
    pod = load("deployment.yaml")["spec"]["template"]["spec"]
    user, group = dockerfile("USER")[0].split(":")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == user
    assert str(pod["securityContext"]["runAsGroup"]) == group
    security = container()["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"] for m in container()["volumeMounts"]}
    assert mounts == {"/tmp"}
    assert "PYTHONDONTWRITEBYTECODE=1" in " ".join(dockerfile("ENV"))


def test_memory_requests_cover_the_measured_idle_bot() -> None:
    resources = container()["resources"]
    requested = int(resources["requests"]["memory"].removesuffix("Mi"))
    limit = int(resources["limits"]["memory"].removesuffix("Mi"))
    measured_idle_mb = 94  # bench/idle_memory.py
    assert measured_idle_mb * 1.5 <= requested < limit
