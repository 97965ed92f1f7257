"""From a service's ``microwizard.yml`` at a commit to Kubernetes manifests.

Each part of the kit has a Kubernetes counterpart (notebook 08): Watson's health check
becomes the pod's **readiness probe**, the Directory's list the **EndpointSlices** of a
**Service**, Watson's drain a **preStop sleep** before SIGTERM, the per-commit checkout an
**image tagged by the commit**. :func:`export` reads the spec the way the wizard does (the
same sources, the same checkout of the ref, the same :func:`~mwkit.wizard.spec.load_spec`)
and :func:`manifests` writes, as plain dicts:

- a **Deployment**: the image ``<prefix><service>:<commit[:12]>`` (built from the commit:
  its service folder at ``/usr/src/service`` on the kit's base image, as the Docker runtime
  mounts it), ``mw.sh init`` as an init container and ``mw.sh run`` as the container,
  ``HOST``/``PORT`` and the instance contract's other variables that make sense in a pod,
  the probes, the drain, a locked-down security context with a writable ``/tmp`` only;
- a **Service** (ClusterIP) on the service's port;
- for its ``service_links``: environment entries, never a secret value. ``directory``
  points ``MWKIT_DIRECTORY_URL`` at the Service :data:`DIRECTORY_SERVICE` (the kit's
  Directory run in the cluster), ``database`` reads ``DATABASE_URL`` from the Secret
  :data:`DATABASE_SECRET` (key ``url``), which the cluster's operator creates.

Kubernetes counts probe periods and timeouts in whole seconds, at least 1: they are
rounded **up** (a check never gets less time than Watson gives it) and what was rounded
is said in the Deployment's annotation ``mwkit/rounded`` and in the YAML's header.

The target is Kubernetes :data:`KUBERNETES_VERSION`: ``lifecycle.preStop.sleep`` is the
PodLifecycleSleepAction feature, alpha in 1.29, beta and on by default since 1.30 (KEP-3960;
a zero sleep needs 1.33, so the sleep is at least 1 s). :func:`validate` checks documents
against that version's OpenAPI schemas, offline and strictly (an unknown field is an error),
with kubernetes-validate (a development dependency: the kit itself does not need it).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import yaml

from mwkit import contract
from mwkit.directory import DIRECTORY_PORT
from mwkit.errors import InvalidName, SourceError, SpecError
from mwkit.wizard.commit_image import DEFAULT_PREFIX, image_reference
from mwkit.wizard.source import UNCOMMITTED, UNCOMMITTED_COPY, checkout
from mwkit.wizard.spec import ServiceSpec, load_spec, render_datawire_conf
from mwkit.wizard.wizard import SERVICE_GRACE, STOP_MARGIN

KUBERNETES_VERSION = "1.30"
DEFAULT_IMAGE_PREFIX = DEFAULT_PREFIX
SERVICE_DIR = "/usr/src/service"  # where the image holds the service folder
STATE_DIR = "/tmp/mwkit-state"  # the contract's MWKIT_STATE_DIR, on the writable /tmp
TMP_SIZE = "64Mi"  # as the Docker runtime's tmpfs
RUN_AS = 10001  # an unprivileged uid, as in the Docker runtime
DIRECTORY_SERVICE = "mwkit-directory"
DATABASE_SECRET = "mwkit-database"
LIVENESS_PATIENCE = 3  # the liveness probe fails only after 3x the readiness failures
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")


def _seconds(what: str, value: float, rounded: list[str]) -> int:
    """Whole seconds, at least 1, rounded up; a rounding is noted in ``rounded``."""
    whole = max(1, math.ceil(value))
    if whole != value:
        rounded.append(f"{what} {value:g} s -> {whole} s")
    return whole


def _drain(spec: ServiceSpec) -> float:
    """Watson's drain for this service: its datawire.conf as the wizard renders it (with
    placeholder addresses: only the drain is read)."""
    from mwkit.watson import WatsonConfig

    text = render_datawire_conf(spec, directory_url=f"http://{DIRECTORY_SERVICE}:"
                                f"{DIRECTORY_PORT}", service_url=f"http://{spec.name}:"
                                f"{spec.port}", health_check_url=f"http://{spec.name}:"
                                f"{spec.port}{spec.health_check.path}", instance_id=spec.name)
    return WatsonConfig.from_text(text, spec.datawire_template).drain


def _kubernetes_name(service: str) -> str:
    if not DNS_LABEL.fullmatch(service):
        raise InvalidName(f"service name {service!r} is no Kubernetes name (a DNS label: at "
                          "most 63 lower-case letters, digits and '-'): rename the service")
    return service


def _link_env(spec: ServiceSpec) -> list[dict]:
    """What the service's links need: where the Directory is, and the database's URL
    from a Secret (it holds a password: never written into a manifest)."""
    env = []
    if "directory" in spec.links:
        env.append({"name": contract.DIRECTORY_URL,
                    "value": f"http://{DIRECTORY_SERVICE}:{DIRECTORY_PORT}"})
    if "database" in spec.links:
        env.append({"name": contract.DATABASE_URL, "valueFrom": {
            "secretKeyRef": {"name": DATABASE_SECRET, "key": "url"}}})
    return env


def _resources(spec: ServiceSpec, notes: list[str]) -> dict:
    """``limits:`` of microwizard.yml: the memory as request and limit (the pod is
    scheduled only where it fits); Kubernetes has no per-container process limit."""
    memory = spec.limits.memory
    quantity = f"{memory // 2**20}Mi" if memory % 2**20 == 0 else str(memory)
    notes.append(f"limits.pids {spec.limits.pids} not applied (no per-container field in "
                 "Kubernetes: the kubelet's podPidsLimit)")
    return {"requests": {"memory": quantity}, "limits": {"memory": quantity}}


def manifests(spec: ServiceSpec, commit: str, *, tag: str, replicas: int = 1,
              image_prefix: str = DEFAULT_IMAGE_PREFIX) -> list[dict]:
    """The Deployment and the Service of ``spec`` at ``commit`` (a full sha)."""
    name = _kubernetes_name(spec.name)
    if not LABEL_VALUE.fullmatch(tag) or len(tag) > 63:
        raise InvalidName(f"tag {tag!r} is no Kubernetes label value (at most 63 letters, "
                          "digits, '-', '_' and '.', starting and ending alphanumeric)")
    check, rounded = spec.health_check, []
    period = _seconds("health_check.period", check.period, rounded)
    timeout = _seconds("health_check.timeout", check.timeout, rounded)
    drain = _seconds("drain (Watson's, before SIGTERM)", _drain(spec), rounded)
    grace = drain + math.ceil(SERVICE_GRACE) + math.ceil(STOP_MARGIN)
    image = image_reference(name, commit, image_prefix)  # as mwkit swarm builds it
    selector = {"mwkit/service": name}
    labels = {**selector, "mwkit/tag": tag, "mwkit/commit": commit}
    mounts = [{"name": "tmp", "mountPath": "/tmp"}]
    env = [*({"name": key, "value": value} for key, value in spec.env.items()),
           {"name": contract.HOST, "value": "0.0.0.0"},
           {"name": contract.PORT, "value": str(spec.port)},
           {"name": contract.SERVICE, "value": name},
           {"name": contract.TAG, "value": tag},
           {"name": contract.COMMIT, "value": commit},
           {"name": contract.INSTANCE_ID,
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},  # the pod's name
           {"name": contract.STATE_DIR, "value": STATE_DIR},
           {"name": "HOME", "value": "/tmp"},  # uid 10001 has no home; /tmp is writable
           *_link_env(spec)]
    notes: list[str] = []
    locked = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
              "readOnlyRootFilesystem": spec.limits.read_only_root}
    probe = {"httpGet": {"path": check.path, "port": "http"}, "periodSeconds": period,
             "timeoutSeconds": timeout}
    container = {
        "name": name, "image": image, "imagePullPolicy": "IfNotPresent",
        "workingDir": SERVICE_DIR, "command": ["microwizard/mw.sh", "run"],
        "ports": [{"name": "http", "containerPort": spec.port}], "env": env,
        # Watson's check: ready after `rise` passes, out of the Service after `fall` fails
        "readinessProbe": {**probe, "successThreshold": check.rise,
                           "failureThreshold": check.fall},
        # more patient: restart only an instance that stays unhealthy
        "livenessProbe": {**probe, "successThreshold": 1,
                          "failureThreshold": check.fall * LIVENESS_PATIENCE},
        # Watson's drain: SIGTERM waits while the pod's removal reaches every router
        "lifecycle": {"preStop": {"sleep": {"seconds": drain}}},
        "resources": _resources(spec, notes),
        "securityContext": locked, "volumeMounts": mounts,
    }
    init = {key: container[key] for key in ("image", "imagePullPolicy", "workingDir", "env",
                                            "resources", "securityContext", "volumeMounts")}
    pod = {
        "terminationGracePeriodSeconds": grace,  # drain + the service's grace + a margin
        "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "initContainers": [{"name": "init", **init, "command": ["microwizard/mw.sh", "init"]}],
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE}}],
    }
    annotations = {"mwkit/requires": f"Kubernetes >= {KUBERNETES_VERSION} "
                                     "(lifecycle.preStop.sleep)",
                   "mwkit/rounded": "; ".join(rounded) or "nothing"}
    if notes:
        annotations["mwkit/notes"] = "; ".join(notes)
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": {"replicas": replicas, "selector": {"matchLabels": selector},
                 # a rollout as the wizard's: a new pod is ready before an old one goes
                 "strategy": {"type": "RollingUpdate",
                              "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                 "template": {"metadata": {"labels": labels}, "spec": pod}},
    }
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "labels": selector},
        "spec": {"type": "ClusterIP", "selector": selector,
                 "ports": [{"name": "http", "port": spec.port, "targetPort": "http"}]},
    }
    return [deployment, service]


def export(service: str, ref: str, *, workdir: Path, sources: dict | None = None,
           tag: str | None = None, replicas: int = 1,
           image_prefix: str = DEFAULT_IMAGE_PREFIX) -> list[dict]:
    """:func:`manifests` of ``service`` at the Git ``ref``, found as ``mwkit svrun`` finds
    it (``sources`` default to the kit's own; the commit is checked out under ``workdir``).
    ``tag`` (a label on the pods) defaults to the ref."""
    from mwkit.settings import KIT_ROOT
    from mwkit.wizard.source import default_sources

    sources = default_sources(KIT_ROOT) if sources is None else sources
    if service not in sources:
        raise SourceError(f"no source known for service {service!r}; known: "
                          f"{', '.join(sorted(sources)) or 'none'}")
    if ref in (UNCOMMITTED, UNCOMMITTED_COPY):
        raise SourceError(f"{ref} has no commit to tag an image with: commit it, then "
                          "export the commit")
    done = checkout(sources[service], ref, service=service, tag=tag or ref,
                    workdir=Path(workdir))
    spec = load_spec(done.folder)
    if spec.name != service:
        raise SpecError(f"{spec.folder}/microwizard/microwizard.yml names the service "
                        f"{spec.name!r}, not {service!r}")
    return manifests(spec, done.commit, tag=tag or ref, replicas=replicas,
                     image_prefix=image_prefix)


def needs(documents: list[dict]) -> list[str]:
    """What the documents expect to find in the cluster (nothing of it holds a secret)."""
    wanted = []
    for document in documents:
        if document["kind"] != "Deployment":
            continue
        pod = document["spec"]["template"]["spec"]
        wanted.append(f"the image {pod['containers'][0]['image']} in a registry the nodes "
                      "pull from")
        for entry in pod["containers"][0]["env"]:
            if entry["name"] == contract.DIRECTORY_URL:
                wanted.append(f"the Service {DIRECTORY_SERVICE} (the kit's Directory, port "
                              f"{DIRECTORY_PORT}), where Sherlock finds instances")
            if entry["name"] == contract.DATABASE_URL:
                wanted.append(f"the Secret {DATABASE_SECRET} with the key url (kubectl "
                              f"create secret generic {DATABASE_SECRET} --from-literal="
                              "url=mysql://...)")
    return list(dict.fromkeys(wanted))


class _Dumper(yaml.SafeDumper):
    """Writes a value shared by two keys twice, never as a YAML alias (``&id001``/``*id001``):
    a manifest is read by people and by tools that refuse aliases."""

    def ignore_aliases(self, data) -> bool:
        return True


def to_yaml(documents: list[dict]) -> str:
    """The documents as one YAML stream (``---`` between them), after a comment header
    that names the target version, what was rounded and what the cluster must have."""
    header = [f"# Written by `mwkit export kubernetes` for Kubernetes {KUBERNETES_VERSION} "
              "or later (lifecycle.preStop.sleep is on by default since 1.30)."]
    for document in documents:
        annotations = document["metadata"].get("annotations", {})
        for key, what in (("mwkit/rounded", "Rounded up to whole seconds"),
                          ("mwkit/notes", "Note")):
            if annotations.get(key, "nothing") != "nothing":
                header.append(f"# {what}: {annotations[key]}")
    header += [f"# Needs: {need}" for need in needs(documents)]
    body = "---\n".join(yaml.dump(document, Dumper=_Dumper, sort_keys=False)
                        for document in documents)
    return "\n".join(header) + "\n---\n" + body


def validate(documents: list[dict], version: str = KUBERNETES_VERSION) -> list[str]:
    """What kubernetes-validate finds wrong in ``documents`` against ``version``'s schemas,
    offline and strict (unknown fields are errors); [] when every document is valid."""
    import kubernetes_validate

    problems = []
    for document in documents:
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(part) for part in error.path) or "(top)"
            name = f"{document.get('kind')}/{document.get('metadata', {}).get('name')}"
            problems.append(f"{name}: {where}: {error.message[:200]}")
    return problems
