"""microwizard.yml as Kubernetes manifests, validated offline and strictly with
kubernetes-validate against the Kubernetes version the export targets."""

from __future__ import annotations

import copy

import pytest
import yaml

from mwkit import contract
from mwkit.errors import InvalidName
from mwkit.kubernetes import (
    DATABASE_SECRET,
    DIRECTORY_SERVICE,
    KUBERNETES_VERSION,
    manifests,
    to_yaml,
    validate,
)
from mwkit.wizard.spec import load_spec
from mwkit.wizard.wizard import SERVICE_GRACE, STOP_MARGIN
from tests.unit.test_spec import MINIMAL, make_service

COMMIT = "0123456789abcdef0123456789abcdef01234567"
MONOLITH = """service_name: lobsters
service_port: 5000
service_links: [directory, database]
health_check: {path: /health, period: 2.5, timeout: 0.5, rise: 2, fall: 3}
env: {GREETING: hello}
"""


def exported(tmp_path, yml: str = MONOLITH, **options) -> list[dict]:
    make_service(tmp_path, yml)  # its datawire.conf drains 0.5 s
    return manifests(load_spec(tmp_path), COMMIT, tag="v1", **options)


def parts(documents: list[dict]) -> tuple[dict, dict, dict]:
    """The Deployment, its pod spec and its container."""
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    return deployment, pod, pod["containers"][0]


def env_of(container: dict) -> dict[str, dict]:
    return {entry["name"]: entry for entry in container["env"]}


@pytest.mark.parametrize("yml", [MINIMAL, MONOLITH, MINIMAL + "limits: {memory: 1g, pids: 64, "
                                                               "read_only_root: false}\n"])
def test_every_document_is_valid_for_the_stated_version_strictly(tmp_path, yml):
    documents = exported(tmp_path, yml, replicas=3)
    assert [d["kind"] for d in documents] == ["Deployment", "Service"]
    assert validate(documents) == []
    assert KUBERNETES_VERSION == "1.30"


def test_the_validation_rejects_a_broken_manifest(tmp_path):
    """The check can fail: an unknown field (a typo), a wrong type, a missing field."""
    documents = exported(tmp_path)
    typo, wrong, missing = (copy.deepcopy(documents) for _ in range(3))
    parts(typo)[2]["readinessProbes"] = parts(typo)[2].pop("readinessProbe")
    parts(wrong)[0]["spec"]["replicas"] = "two"
    del parts(missing)[2]["name"]
    assert validate(typo) == [
        "Deployment/lobsters: spec.template.spec.containers.0: Additional properties are not "
        "allowed ('readinessProbes' was unexpected)"]
    assert validate(wrong) == ["Deployment/lobsters: spec.replicas: 'two' is not of type "
                               "'integer', 'null'"]
    assert validate(missing) == ["Deployment/lobsters: spec.template.spec.containers.0: "
                                 "'name' is a required property"]


def test_the_sleep_action_is_unknown_before_kubernetes_1_29(tmp_path):
    """lifecycle.preStop.sleep came in 1.29 (alpha; beta and on by default in 1.30): the
    schemas of 1.28 do not know it, which is why the export states its version."""
    documents = exported(tmp_path)
    assert validate(documents, "1.28") == [
        "Deployment/lobsters: spec.template.spec.containers.0.lifecycle.preStop: Additional "
        "properties are not allowed ('sleep' was unexpected)"]
    assert parts(documents)[0]["metadata"]["annotations"]["mwkit/requires"] == (
        "Kubernetes >= 1.30 (lifecycle.preStop.sleep)")


def test_probes_are_watsons_check_rounded_up_to_whole_seconds(tmp_path):
    deployment, _, container = parts(exported(tmp_path))
    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    assert readiness == {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 3,
                         "timeoutSeconds": 1, "successThreshold": 2, "failureThreshold": 3}
    assert liveness["periodSeconds"] == 3 and liveness["timeoutSeconds"] == 1
    assert liveness["successThreshold"] == 1  # Kubernetes allows no other for liveness
    assert liveness["failureThreshold"] > readiness["failureThreshold"]  # more patient
    assert deployment["metadata"]["annotations"]["mwkit/rounded"] == (
        "health_check.period 2.5 s -> 3 s; health_check.timeout 0.5 s -> 1 s; "
        "drain (Watson's, before SIGTERM) 0.5 s -> 1 s")


def test_whole_seconds_are_not_said_to_be_rounded(tmp_path):
    yml = MINIMAL + "health_check: {period: 2, timeout: 1}\n"
    documents = exported(tmp_path, yml)
    assert parts(documents)[2]["readinessProbe"]["periodSeconds"] == 2
    assert "health_check" not in parts(documents)[0]["metadata"]["annotations"]["mwkit/rounded"]


def test_drain_then_the_services_grace_fit_in_the_pods_grace(tmp_path):
    _, pod, container = parts(exported(tmp_path))
    sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert sleep == 1  # Watson's 0.5 s, rounded up (a zero sleep needs Kubernetes 1.33)
    assert pod["terminationGracePeriodSeconds"] == sleep + SERVICE_GRACE + STOP_MARGIN


def test_the_image_is_tagged_by_the_commit_and_the_pods_labelled(tmp_path):
    deployment, pod, container = parts(exported(tmp_path, image_prefix="registry.example/t/"))
    assert container["image"] == f"registry.example/t/lobsters:{COMMIT[:12]}"
    assert pod["initContainers"][0]["image"] == container["image"]
    assert pod["initContainers"][0]["command"] == ["microwizard/mw.sh", "init"]
    assert deployment["spec"]["template"]["metadata"]["labels"] == {
        "mwkit/service": "lobsters", "mwkit/tag": "v1", "mwkit/commit": COMMIT}
    # the selector leaves out tag and commit: a rollout to another commit keeps the pods' set
    assert deployment["spec"]["selector"] == {"matchLabels": {"mwkit/service": "lobsters"}}


def test_the_service_sends_to_the_pods_on_the_port(tmp_path):
    service = exported(tmp_path)[1]
    assert service["spec"] == {"type": "ClusterIP", "selector": {"mwkit/service": "lobsters"},
                               "ports": [{"name": "http", "port": 5000, "targetPort": "http"}]}


def test_links_become_env_entries_and_no_secret_value(tmp_path):
    env = env_of(parts(exported(tmp_path))[2])
    assert env[contract.DIRECTORY_URL] == {"name": contract.DIRECTORY_URL,
                                           "value": f"http://{DIRECTORY_SERVICE}:5353"}
    assert env[contract.DATABASE_URL] == {"name": contract.DATABASE_URL, "valueFrom": {
        "secretKeyRef": {"name": DATABASE_SECRET, "key": "url"}}}
    assert env["HOST"]["value"] == "0.0.0.0" and env["PORT"]["value"] == "5000"
    assert env["GREETING"]["value"] == "hello"
    assert env[contract.INSTANCE_ID]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    no_links = env_of(parts(exported(tmp_path / "plain", MINIMAL))[2])
    assert contract.DIRECTORY_URL not in no_links and contract.DATABASE_URL not in no_links


def test_the_container_is_locked_down_with_a_writable_tmp_only(tmp_path):
    _, pod, container = parts(exported(tmp_path))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"] == {"allowPrivilegeEscalation": False,
                                            "capabilities": {"drop": ["ALL"]},
                                            "readOnlyRootFilesystem": True}
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"][0]["emptyDir"] == {"sizeLimit": "64Mi"}


def test_limits_become_the_memory_request_and_limit(tmp_path):
    yml = MINIMAL + "limits: {memory: 512m, pids: 64, read_only_root: false}\n"
    deployment, _, container = parts(exported(tmp_path, yml))
    assert container["resources"] == {"requests": {"memory": "512Mi"},
                                      "limits": {"memory": "512Mi"}}
    assert container["securityContext"]["readOnlyRootFilesystem"] is False
    assert "limits.pids 64 not applied" in deployment["metadata"]["annotations"]["mwkit/notes"]


def test_a_service_name_kubernetes_cannot_take_is_refused(tmp_path):
    with pytest.raises(InvalidName, match="'my_service' is no Kubernetes name"):
        exported(tmp_path, "service_name: my_service\nservice_port: 5000\n")


def test_the_yaml_is_the_documents_after_a_header_without_aliases(tmp_path):
    documents = exported(tmp_path)
    text = to_yaml(documents)
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert header[0].startswith(f"# Written by `mwkit export kubernetes` for Kubernetes "
                                f"{KUBERNETES_VERSION} or later")
    assert "# Rounded up to whole seconds: health_check.period 2.5 s -> 3 s; " in text
    assert f"# Needs: the Secret {DATABASE_SECRET} with the key url" in text
    assert "&id" not in text and "*id" not in text  # shared values written out, no aliases
    assert [d for d in yaml.safe_load_all(text) if d] == documents
