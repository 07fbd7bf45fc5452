"""Contract tests of the Kubernetes manifests under k8s/.

They run offline in well under a second. The kustomizations are rendered by a small resolver of the subset of
kustomize the manifests use (resources, configMapGenerator, strategic-merge patches with optional targets,
replicas, images, namespace); when `kubectl` is on PATH its built-in kustomize must agree with that resolver.
Core kinds are checked against the Kubernetes schemas when kubernetes-validate is installed.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from servicekit.context import PRINCIPAL_KEY

K8S = Path(__file__).resolve().parents[2] / "k8s"
OVERLAYS = ("dev", "prod")
NAMESPACE = "comfyapi"
IMAGE = "ghcr.io/comfy-api-service/comfy-api-service"
SECRET_NAME = "comfyapi-secrets"
SECRET_KEYS = frozenset({"database-url", "redis-url"})
CONFIG_NAME = "comfyapi-config"
COMFYUI_URL = "http://127.0.0.1:8188"
# The principal header services trust from in-cluster peers.
PRINCIPAL_METADATA = frozenset({PRINCIPAL_KEY})
CLUSTER_SCOPED = frozenset({"Namespace", "GatewayClass", "ClusterRole", "ClusterRoleBinding"})
Obj = dict[str, Any]
Peer = tuple[str, dict[str, str]]  # (namespace, pod labels)
EXTERNAL: Peer = ("<outside the cluster>", {})


@dataclass(frozen=True)
class Service:
    name: str
    pkg: str
    port: int
    metrics_port: int
    database: bool
    redis: bool

    @property
    def grpc(self) -> bool:
        return self.name != "gateway"


SERVICES = (
    Service("gateway", "gateway", 8080, 8080, database=False, redis=True),
    Service("identity", "identity", 50051, 9101, database=True, redis=True),
    Service("billing", "billing", 50052, 9102, database=True, redis=False),
    Service("jobs", "jobs", 50053, 9103, database=True, redis=True),
    Service("inference", "inference", 50054, 9104, database=False, redis=False),
    Service("drive-sync", "drive_sync", 50055, 9105, database=True, redis=False),
)
BY_NAME = {s.name: s for s in SERVICES}
HORIZONTAL = frozenset({"gateway", "identity", "billing", "jobs", "drive-sync"})

# Who may call whom over gRPC (DESIGN.md section 3); every other pair must be blocked.
ALLOWED_CALLS = frozenset(
    {("gateway", callee) for callee in BY_NAME if callee != "gateway"}
    | {("jobs", "billing"), ("jobs", "inference")}
    | {("drive-sync", "identity"), ("drive-sync", "jobs")}
    | {("billing", "identity")}
)

PEER_ADDRS = {
    "IDENTITY_ADDR": "identity:50051",
    "BILLING_ADDR": "billing:50052",
    "JOBS_ADDR": "jobs:50053",
    "INFERENCE_ADDR": "inference:50054",
    "DRIVE_SYNC_ADDR": "drive-sync:50055",
}


# --- a resolver of the kustomize subset used under k8s/ -------------------------------------------


def load_docs(path: Path) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def load_kustomization(directory: Path) -> Obj:
    return cast(Obj, yaml.safe_load((directory / "kustomization.yaml").read_text()))


def referenced_paths(directory: Path, kustomization: Obj) -> list[Path]:
    refs = list(kustomization.get("resources", [])) + list(kustomization.get("components", []))
    refs += [p["path"] for p in kustomization.get("patches", []) if "path" in p]
    for generator in kustomization.get("configMapGenerator", []) + kustomization.get("secretGenerator", []):
        refs += generator.get("envs", []) + [f.split("=")[-1] for f in generator.get("files", [])]
    return [directory / ref for ref in refs]


def strategic_merge(target: Obj, patch: Obj) -> None:
    """Merges like kustomize for the fields patched here: maps recursively, named lists by name."""
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        current = target.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            strategic_merge(current, value)
        elif isinstance(value, list) and isinstance(current, list) and _named(value) and _named(current):
            by_name = {item["name"]: item for item in current}
            for item in value:
                if item["name"] in by_name:
                    strategic_merge(by_name[item["name"]], item)
                else:
                    current.append(copy.deepcopy(item))
        else:
            target[key] = copy.deepcopy(value)


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(item, dict) and "name" in item for item in items)


def _matches(obj: Obj, target: Obj) -> bool:
    kind, name = obj["kind"], obj["metadata"]["name"]
    return bool(kind == target.get("kind", kind) and name == target.get("name", name))


def _apply_patch(objs: list[Obj], patch: Obj, target: Obj | None) -> None:
    selector = target or {"kind": patch["kind"], "name": patch["metadata"]["name"]}
    hits = [obj for obj in objs if _matches(obj, selector)]
    if not hits:
        raise ValueError(f"patch target {selector} matches nothing")
    body = copy.deepcopy(patch)
    if target is not None:
        body.get("metadata", {}).pop("name", None)
    for obj in hits:
        if patch.get("$patch") == "delete":
            objs.remove(obj)
        else:
            strategic_merge(obj, body)


def _generate_config_maps(objs: list[Obj], kustomization: Obj) -> None:
    for generator in kustomization.get("configMapGenerator", []):
        data = dict(literal.split("=", 1) for literal in generator.get("literals", []))
        existing = [
            o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == generator["name"]
        ]
        if generator.get("behavior") == "merge":
            if not existing:
                raise ValueError(f"configMapGenerator merges into missing {generator['name']}")
            existing[0]["data"].update(data)
        else:
            objs.append(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": generator["name"]},
                    "data": data,
                }
            )


def build(directory: Path) -> list[Obj]:
    kustomization = load_kustomization(directory)
    objs: list[Obj] = []
    for ref in kustomization.get("resources", []):
        path = directory / ref
        objs += build(path) if path.is_dir() else load_docs(path)
    _generate_config_maps(objs, kustomization)
    for entry in kustomization.get("patches", []):
        patches = (
            load_docs(directory / entry["path"])
            if "path" in entry
            else list(yaml.safe_load_all(entry["patch"]))
        )
        for patch in patches:
            _apply_patch(objs, patch, entry.get("target"))
    for replicas in kustomization.get("replicas", []):
        find(objs, "Deployment", replicas["name"])["spec"]["replicas"] = replicas["count"]
    for image in kustomization.get("images", []):
        for obj in objs:
            for container in all_containers(obj):
                if container["image"].split(":")[0] == image["name"]:
                    container["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
    if "namespace" in kustomization:
        for obj in objs:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = kustomization["namespace"]
    return objs


# --- helpers --------------------------------------------------------------------------------------


def find(objs: list[Obj], kind: str, name: str) -> Obj:
    hits = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(hits) == 1, f"expected one {kind}/{name}, found {len(hits)}"
    return hits[0]


def of_kind(objs: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def pod_spec(obj: Obj) -> Obj:
    return cast(Obj, obj.get("spec", {}).get("template", {}).get("spec", {}))


def all_containers(obj: Obj) -> list[Obj]:
    spec = pod_spec(obj)
    return list(spec.get("initContainers", [])) + list(spec.get("containers", []))


def container(deployment: Obj, name: str, init: bool = False) -> Obj:
    containers = pod_spec(deployment).get("initContainers" if init else "containers", [])
    hits = [c for c in containers if c["name"] == name]
    assert hits, f"{deployment['metadata']['name']} has no container {name}"
    return cast(Obj, hits[0])


def env_of(c: Obj) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


def container_port(c: Obj, port: int | str) -> int:
    if isinstance(port, int):
        return port
    named = [p["containerPort"] for p in c.get("ports", []) if p.get("name") == port]
    assert named, f"container {c['name']} has no port named {port}"
    return int(named[0])


def probe_port(c: Obj, probe: Obj) -> int:
    handler = probe.get("grpc") or probe.get("httpGet") or probe.get("tcpSocket")
    assert handler is not None, f"probe of {c['name']} has no grpc, httpGet or tcpSocket handler"
    return container_port(c, handler["port"])


def config(objs: list[Obj]) -> dict[str, str]:
    return cast(dict[str, str], find(objs, "ConfigMap", CONFIG_NAME)["data"])


def walk(node: Any) -> Iterator[Obj]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def duration_seconds(text: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+)(ms|h|m|s)", text)
    assert "".join(n + u for n, u in parts) == text, f"bad duration {text!r}"
    assert parts, f"empty duration {text!r}"
    return sum(int(n) * units[u] for n, u in parts)


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Obj]]:
    return {overlay: build(K8S / "overlays" / overlay) for overlay in OVERLAYS}


def yaml_files() -> list[Path]:
    return sorted(K8S.rglob("*.yaml")) + sorted(K8S.rglob("*.yml"))


def kustomization_dirs() -> list[Path]:
    return sorted(p.parent for p in K8S.rglob("kustomization.yaml"))


# --- files and kustomizations ---------------------------------------------------------------------


def test_every_yaml_file_parses_into_named_objects() -> None:
    files = yaml_files()
    assert len(files) >= 10, "k8s/ lost its manifests"
    for path in files:
        docs = load_docs(path)
        assert docs, f"{path} is empty"
        for doc in docs:
            assert doc.get("apiVersion"), f"{path}: document without apiVersion"
            assert doc.get("kind"), f"{path}: document without kind"
            if doc["kind"] != "Kustomization":
                assert doc.get("metadata", {}).get("name"), f"{path}: {doc['kind']} without a name"


def test_no_secret_objects_are_committed() -> None:
    for path in yaml_files():
        kinds = {doc["kind"] for doc in load_docs(path)}
        assert "Secret" not in kinds, f"{path} commits a Secret; document it in k8s/README.md instead"


@pytest.mark.parametrize("directory", kustomization_dirs(), ids=lambda p: str(p.relative_to(K8S)))
def test_kustomization_references_only_existing_files(directory: Path) -> None:
    for path in referenced_paths(directory, load_kustomization(directory)):
        assert path.exists(), f"{directory}/kustomization.yaml references missing {path}"
        if path.is_dir():
            assert (path / "kustomization.yaml").is_file(), (
                f"{path} is referenced but has no kustomization.yaml"
            )


@pytest.mark.parametrize("directory", kustomization_dirs(), ids=lambda p: str(p.relative_to(K8S)))
def test_every_manifest_is_used_by_its_kustomization(directory: Path) -> None:
    used = {p.resolve() for p in referenced_paths(directory, load_kustomization(directory))}
    for path in directory.glob("*.yaml"):
        if path.name != "kustomization.yaml":
            assert path.resolve() in used, f"{path} is not referenced by {directory}/kustomization.yaml"


def test_overlays_include_the_base_and_prod_includes_the_edge() -> None:
    for overlay in OVERLAYS:
        resources = load_kustomization(K8S / "overlays" / overlay)["resources"]
        assert "../../base" in resources
    assert "../../gateway" in load_kustomization(K8S / "overlays" / "prod")["resources"]


# --- each service ---------------------------------------------------------------------------------

overlay_and_service = pytest.mark.parametrize(
    ("overlay", "svc"), [(o, s) for o in OVERLAYS for s in SERVICES], ids=lambda v: getattr(v, "name", v)
)


@overlay_and_service
def test_service_has_its_deployment_service_account_and_disruption_budget(
    rendered: dict[str, list[Obj]], overlay: str, svc: Service
) -> None:
    objs = rendered[overlay]
    deployment = find(objs, "Deployment", svc.name)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert (
        pod_spec(deployment)["serviceAccountName"]
        == find(objs, "ServiceAccount", svc.name)["metadata"]["name"]
    )
    assert find(objs, "Service", svc.name)["spec"]["selector"].items() <= pod_labels.items()
    assert (
        find(objs, "PodDisruptionBudget", svc.name)["spec"]["selector"]["matchLabels"].items()
        <= pod_labels.items()
    )


@overlay_and_service
def test_server_container_runs_the_service_package(
    rendered: dict[str, list[Obj]], overlay: str, svc: Service
) -> None:
    server = container(find(rendered[overlay], "Deployment", svc.name), "server")
    assert server["command"] == ["python", "-m", svc.pkg, "serve"]
    assert server["image"].startswith(f"{IMAGE}:")


@overlay_and_service
def test_services_with_a_schema_migrate_before_serving(
    rendered: dict[str, list[Obj]], overlay: str, svc: Service
) -> None:
    deployment = find(rendered[overlay], "Deployment", svc.name)
    migrations = [c for c in all_containers(deployment) if c.get("command", [])[-1:] == ["migrate"]]
    if not svc.database:
        assert not migrations, f"{svc.name} has no database but runs migrations"
        return
    migrate = container(deployment, "migrate", init=True)
    assert migrate["command"] == ["python", "-m", svc.pkg, "migrate"]
    assert migrate["image"] == container(deployment, "server")["image"]
    assert env_of(migrate)["DATABASE_URL"]["secretKeyRef"]["key"] == "database-url"


@overlay_and_service
def test_probes_check_the_port_the_service_exposes(
    rendered: dict[str, list[Obj]], overlay: str, svc: Service
) -> None:
    objs = rendered[overlay]
    server = container(find(objs, "Deployment", svc.name), "server")
    (service_port,) = find(objs, "Service", svc.name)["spec"]["ports"]
    assert service_port["port"] == svc.port
    target = container_port(server, service_port.get("targetPort", service_port["port"]))
    assert target == svc.port
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = server[kind]
        assert probe_port(server, probe) == target, f"{svc.name} {kind} checks another port"
    if svc.grpc:
        assert "grpc" in server["readinessProbe"], f"{svc.name} readiness should be a native gRPC probe"
        # The overall gRPC health is NOT_SERVING while a dependency is down: restarting would not help.
        for kind in ("startupProbe", "livenessProbe"):
            overall_health = "grpc" in server[kind] and not server[kind]["grpc"].get("service")
            assert not overall_health, f"{svc.name} {kind} would restart the pod when its database is down"
    else:
        assert server["readinessProbe"]["httpGet"]["path"] == "/ready"
        assert server["livenessProbe"]["httpGet"]["path"] == "/health"


@overlay_and_service
def test_drain_fits_inside_the_termination_grace_period(
    rendered: dict[str, list[Obj]], overlay: str, svc: Service
) -> None:
    objs = rendered[overlay]
    deployment = find(objs, "Deployment", svc.name)
    server = container(deployment, "server")
    grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
    drain = int(env_of(server).get("SHUTDOWN_GRACE_SECONDS") or config(objs)["SHUTDOWN_GRACE_SECONDS"])
    pre_stop = server["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pre_stop >= 1, "endpoints need a moment to drop the pod before SIGTERM"
    assert pre_stop + drain < grace, f"{svc.name}: preStop {pre_stop}s + drain {drain}s >= grace {grace}s"


@overlay_and_service
def test_services_receive_the_settings_they_read(
    rendered: dict[str, list[Obj]], overlay: str, svc: Service
) -> None:
    deployment = find(rendered[overlay], "Deployment", svc.name)
    server = container(deployment, "server")
    env = env_of(server)
    assert [ref["configMapRef"]["name"] for ref in server["envFrom"]] == [CONFIG_NAME]
    assert env["SERVICE_NAME"] == svc.name
    assert ("DATABASE_URL" in env) == svc.database
    assert ("REDIS_URL" in env) == svc.redis
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == svc.metrics_port
    assert svc.metrics_port in {p["containerPort"] for p in server["ports"]}
    if svc.grpc:
        assert env["GRPC_PORT"] == str(svc.port)
        assert env["METRICS_PORT"] == str(svc.metrics_port)
    else:
        assert (env["HTTP_HOST"], env["HTTP_PORT"]) == ("0.0.0.0", str(svc.port))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_shared_config_points_at_real_services(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    values = config(objs)
    assert values["GRPC_HOST"] == "0.0.0.0"
    assert values["LOG_FORMAT"] == "json"
    assert values["LOG_LEVEL"]
    for key, address in PEER_ADDRS.items():
        assert values[key] == address
        host, port = address.split(":")
        assert int(port) in {p["port"] for p in find(objs, "Service", host)["spec"]["ports"]}


def test_every_secret_reference_uses_comfyapi_secrets(rendered: dict[str, list[Obj]]) -> None:
    sources = [doc for path in yaml_files() for doc in load_docs(path)] + [
        o for objs in rendered.values() for o in objs
    ]
    refs = [node["secretKeyRef"] for doc in sources for node in walk(doc) if "secretKeyRef" in node]
    assert len(refs) >= 10, "DATABASE_URL and REDIS_URL should come from secretKeyRef"
    for ref in refs:
        assert ref["name"] == SECRET_NAME
        assert ref["key"] in SECRET_KEYS


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_locked_down_and_sized(rendered: dict[str, list[Obj]], overlay: str) -> None:
    for deployment in of_kind(rendered[overlay], "Deployment"):
        spec = pod_spec(deployment)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["automountServiceAccountToken"] is False
        for c in all_containers(deployment):
            where = f"{deployment['metadata']['name']}/{c['name']}"
            context = c["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= c["resources"][bound].keys(), f"{where} lacks {bound}"


# --- network policies -----------------------------------------------------------------------------


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        value, op = labels.get(expr["key"]), expr["operator"]
        if (
            (op == "In" and value not in expr["values"])
            or (op == "NotIn" and value in expr["values"])
            or (op == "Exists" and value is None)
            or (op == "DoesNotExist" and value is not None)
        ):
            return False
    return True


def peer_matches(peer: Obj, namespace: str, labels: dict[str, str]) -> bool:
    if "ipBlock" in peer:  # conservatively: a CIDR may cover pod addresses too
        return True
    if "namespaceSelector" in peer:
        in_namespace = selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": namespace})
    else:
        in_namespace = namespace == NAMESPACE
    return in_namespace and selects(peer.get("podSelector", {}), labels)


def admits(policies: list[Obj], direction: str, pod: dict[str, str], peer: Peer, port: int) -> bool:
    relevant = [
        p
        for p in policies
        if selects(p["spec"]["podSelector"], pod) and direction in p["spec"]["policyTypes"]
    ]
    if not relevant:
        return True
    rules_key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in relevant:
        for rule in policy["spec"].get(rules_key, []):
            port_ok = not rule.get("ports") or any(p.get("port", port) == port for p in rule["ports"])
            peer_ok = not rule.get(peers_key) or any(peer_matches(x, *peer) for x in rule[peers_key])
            if port_ok and peer_ok:
                return True
    return False


def pod_labels(objs: list[Obj], name: str) -> dict[str, str]:
    return cast(dict[str, str], find(objs, "Deployment", name)["spec"]["template"]["metadata"]["labels"])


def can_call(objs: list[Obj], caller: str, callee: str) -> bool:
    policies = of_kind(objs, "NetworkPolicy")
    src, dst, port = pod_labels(objs, caller), pod_labels(objs, callee), BY_NAME[callee].port
    return admits(policies, "Egress", src, (NAMESPACE, dst), port) and admits(
        policies, "Ingress", dst, (NAMESPACE, src), port
    )


def test_network_policies_deny_by_default(rendered: dict[str, list[Obj]]) -> None:
    policies = of_kind(rendered["prod"], "NetworkPolicy")
    deny_all = [
        p
        for p in policies
        if p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert deny_all, "no default-deny NetworkPolicy"


@pytest.mark.parametrize(
    ("caller", "callee"), [(a.name, b.name) for a in SERVICES for b in SERVICES if a != b]
)
def test_network_policies_allow_exactly_the_designed_calls(
    rendered: dict[str, list[Obj]], caller: str, callee: str
) -> None:
    expected = (caller, callee) in ALLOWED_CALLS
    assert can_call(rendered["prod"], caller, callee) == expected, (
        f"{caller} -> {callee} should be {'allowed' if expected else 'blocked'}"
    )


@pytest.mark.parametrize("svc", SERVICES, ids=lambda s: s.name)
def test_network_policies_open_dns_and_only_the_needed_datastores(
    rendered: dict[str, list[Obj]], svc: Service
) -> None:
    objs = rendered["prod"]
    policies, labels = of_kind(objs, "NetworkPolicy"), pod_labels(objs, svc.name)
    assert admits(policies, "Egress", labels, EXTERNAL, 53)
    assert admits(policies, "Egress", labels, EXTERNAL, 5432) == svc.database
    assert admits(policies, "Egress", labels, EXTERNAL, 6379) == svc.redis
    assert admits(policies, "Ingress", labels, ("monitoring", {}), svc.metrics_port)


def test_only_the_edge_reaches_the_gateway_and_the_jobs_grpc_route(rendered: dict[str, list[Obj]]) -> None:
    objs = rendered["prod"]
    policies = of_kind(objs, "NetworkPolicy")
    edge: Peer = ("envoy-gateway-system", {})
    assert admits(policies, "Ingress", pod_labels(objs, "gateway"), edge, 8080)
    assert admits(policies, "Ingress", pod_labels(objs, "jobs"), edge, 50053)
    for name in ("identity", "billing", "inference", "drive-sync"):
        assert not admits(policies, "Ingress", pod_labels(objs, name), edge, BY_NAME[name].port), name


# --- overlays -------------------------------------------------------------------------------------


def test_dev_runs_one_replica_of_everything_without_autoscaling_or_gpus(
    rendered: dict[str, list[Obj]],
) -> None:
    objs = rendered["dev"]
    assert not of_kind(objs, "HorizontalPodAutoscaler")
    for svc in SERVICES:
        assert find(objs, "Deployment", svc.name)["spec"]["replicas"] == 1
    assert not [node for obj in objs for node in walk(obj) if "nvidia.com/gpu" in node]
    inference = find(objs, "Deployment", "inference")
    assert [c["name"] for c in all_containers(inference)] == ["server"]
    assert "COMFYUI_URLS" not in env_of(container(inference, "server")), "dev must use the local CPU runtime"


def test_prod_pairs_each_inference_pod_with_one_gpu_comfyui(rendered: dict[str, list[Obj]]) -> None:
    inference = find(rendered["prod"], "Deployment", "inference")
    comfyui = container(inference, "comfyui", init=True)
    assert comfyui["restartPolicy"] == "Always", "ComfyUI must be a native sidecar"
    assert int(comfyui["resources"]["limits"]["nvidia.com/gpu"]) == 1
    args = comfyui["args"]
    assert args[args.index("--listen") + 1] == "127.0.0.1", "ComfyUI must not listen beyond the pod"
    url_port = int(COMFYUI_URL.rsplit(":", 1)[1])
    assert int(args[args.index("--port") + 1]) == url_port
    assert url_port in {p["containerPort"] for p in comfyui["ports"]}
    assert env_of(container(inference, "server"))["COMFYUI_URLS"] == COMFYUI_URL
    assert probe_port(comfyui, comfyui["startupProbe"]) == url_port
    assert any(t["key"] == "nvidia.com/gpu" for t in pod_spec(inference)["tolerations"])
    assert "nvidia.com/gpu" not in container(inference, "server")["resources"]["limits"]


def test_prod_autoscales_exactly_the_stateless_services(rendered: dict[str, list[Obj]]) -> None:
    objs = rendered["prod"]
    autoscalers = {hpa["metadata"]["name"]: hpa["spec"] for hpa in of_kind(objs, "HorizontalPodAutoscaler")}
    assert set(autoscalers) == HORIZONTAL
    for name, spec in autoscalers.items():
        assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert 2 <= spec["minReplicas"] <= spec["maxReplicas"]
        assert "replicas" not in find(objs, "Deployment", name)["spec"], (
            f"{name}: replicas would fight the HPA"
        )
    assert find(objs, "Deployment", "inference")["spec"]["replicas"] >= 1


# --- the edge -------------------------------------------------------------------------------------


def listener_names(objs: list[Obj], parent: Obj) -> set[str]:
    gateway = find(objs, "Gateway", parent["name"])
    return {listener["name"] for listener in gateway["spec"]["listeners"]}


def assert_backends_exist(objs: list[Obj], rules: list[Obj]) -> None:
    for rule in rules:
        for ref in rule.get("backendRefs", []):
            ports = {p["port"] for p in find(objs, "Service", ref["name"])["spec"]["ports"]}
            assert ref["port"] in ports, f"{ref['name']} has no port {ref['port']}"


def test_gateway_uses_envoy_and_terminates_tls(rendered: dict[str, list[Obj]]) -> None:
    objs = rendered["prod"]
    (gateway_class,) = of_kind(objs, "GatewayClass")
    assert gateway_class["spec"]["controllerName"] == "gateway.envoyproxy.io/gatewayclass-controller"
    (gateway,) = of_kind(objs, "Gateway")
    assert gateway["spec"]["gatewayClassName"] == gateway_class["metadata"]["name"]
    assert gateway["metadata"]["namespace"] == NAMESPACE
    secure = [lst for lst in gateway["spec"]["listeners"] if lst["protocol"] == "HTTPS"]
    assert secure, "no HTTPS listener"
    assert all(lst["tls"]["certificateRefs"] for lst in secure)


def test_http_route_serves_api_auth_and_web_app_from_the_gateway_service(
    rendered: dict[str, list[Obj]],
) -> None:
    objs = rendered["prod"]
    route = find(objs, "HTTPRoute", "gateway")
    for parent in route["spec"]["parentRefs"]:
        assert parent["sectionName"] in listener_names(objs, parent)
    rules = route["spec"]["rules"]
    assert_backends_exist(objs, rules)
    by_path = {m["path"]["value"]: rule for rule in rules for m in rule.get("matches", [])}
    for prefix in ("/api/v1", "/auth", "/"):
        assert [b["name"] for b in by_path[prefix]["backendRefs"]] == ["gateway"], prefix
    assert "backendRefs" not in by_path["/metrics"], "metrics must not be served to the internet"
    streaming = [rule for rule in rules for m in rule["matches"] if m["path"]["type"] == "RegularExpression"]
    assert any(
        re.fullmatch(m["path"]["value"], "/api/v1/jobs/j1/events") for r in streaming for m in r["matches"]
    )
    longest_plain = max(
        duration_seconds(by_path[p]["timeouts"]["request"]) for p in ("/api/v1", "/auth", "/")
    )
    assert all(duration_seconds(r["timeouts"]["request"]) > longest_plain for r in streaming), (
        "SSE would be cut"
    )


def test_grpc_route_exposes_only_the_job_service_without_trusting_caller_metadata(
    rendered: dict[str, list[Obj]],
) -> None:
    objs = rendered["prod"]
    (route,) = of_kind(objs, "GRPCRoute")
    rules = route["spec"]["rules"]
    assert_backends_exist(objs, rules)
    services = {m["method"]["service"] for rule in rules for m in rule["matches"]}
    assert services == {"comfyapi.jobs.v1.JobService"}
    assert {ref["name"] for rule in rules for ref in rule["backendRefs"]} == {"jobs"}
    for rule in rules:
        removed = [
            header
            for f in rule.get("filters", [])
            if f["type"] == "RequestHeaderModifier"
            for header in f["requestHeaderModifier"].get("remove", [])
        ]
        assert set(removed) >= PRINCIPAL_METADATA, "a caller from outside could forge its principal"
    (parent,) = route["spec"]["parentRefs"]
    mtls = [
        p
        for p in of_kind(objs, "ClientTrafficPolicy")
        if any(t.get("sectionName") == parent["sectionName"] for t in p["spec"]["targetRefs"])
    ]
    assert mtls, "the gRPC listener does not require client certificates"
    assert mtls[0]["spec"]["tls"]["clientValidation"]["caCertificateRefs"]


def test_edge_policies_target_existing_objects(rendered: dict[str, list[Obj]]) -> None:
    objs = rendered["prod"]
    policies = [
        o for o in objs if o["apiVersion"].startswith("gateway.envoyproxy.io/") and "targetRefs" in o["spec"]
    ]
    assert {p["kind"] for p in policies} >= {"BackendTrafficPolicy", "SecurityPolicy", "ClientTrafficPolicy"}
    for policy in policies:
        for ref in policy["spec"]["targetRefs"]:
            target = find(objs, ref["kind"], ref["name"])
            if "sectionName" in ref:
                assert ref["sectionName"] in listener_names(objs, {"name": target["metadata"]["name"]})


def test_edge_limits_each_client_ip_and_allows_cors_without_cookies(rendered: dict[str, list[Obj]]) -> None:
    objs = rendered["prod"]
    per_ip = [
        policy
        for policy in of_kind(objs, "BackendTrafficPolicy")
        if any(ref["kind"] == "Gateway" for ref in policy["spec"]["targetRefs"])
        for rule in policy["spec"]["rateLimit"]["global"]["rules"]
        for selector in rule["clientSelectors"]
        if selector.get("sourceCIDR", {}).get("type") == "Distinct"
    ]
    assert per_ip, "no per-IP rate limit on the Gateway"
    (cors_policy,) = [p for p in of_kind(objs, "SecurityPolicy") if "cors" in p["spec"]]
    assert {ref["name"] for ref in cors_policy["spec"]["targetRefs"]} == {"gateway"}
    assert cors_policy["spec"]["cors"]["allowCredentials"] is False
    assert "*" not in cors_policy["spec"]["cors"]["allowOrigins"]


# --- external tools, when installed ---------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("version", ["1.30.0", "latest"])
def test_core_kinds_pass_strict_schema_validation(
    rendered: dict[str, list[Obj]], overlay: str, version: str
) -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate",
        reason="kubernetes-validate is not installed (108 MB of schemas, deliberately not a dev dependency); "
        "`uv pip install kubernetes-validate` to run strict schema validation of the core kinds",
    )
    wanted = kubernetes_validate.latest_version() if version == "latest" else version
    core = [o for o in rendered[overlay] if "gateway" not in o["apiVersion"]]
    assert core
    for obj in core:
        try:
            kubernetes_validate.validate(obj, wanted, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(
                f"{obj['kind']}/{obj['metadata']['name']} ({wanted}): {error.message} at {list(error.path)}"
            )


def projection(objs: list[Obj]) -> dict[tuple[str, str], Any]:
    """What the resolver must get right: which objects exist and what their pods run."""

    def name(obj: Obj) -> str:
        raw = obj["metadata"]["name"]
        return re.sub(r"-[a-z0-9]{10}$", "", raw) if obj["kind"] == "ConfigMap" else raw

    def shape(obj: Obj) -> Any:
        if obj["kind"] == "ConfigMap":
            return obj["data"]
        if obj["kind"] != "Deployment":
            return obj.get("spec", {}).get("minReplicas")
        return (
            obj["spec"].get("replicas"),
            [
                (
                    c["name"],
                    c["image"],
                    c.get("command"),
                    c.get("args"),
                    sorted(env_of(c)),
                    c.get("resources"),
                )
                for c in all_containers(obj)
            ],
        )

    return {(o["kind"], name(o)): (o["metadata"].get("namespace"), shape(o)) for o in objs}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubectl_kustomize_renders_what_the_resolver_renders(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not on PATH; the built-in resolver alone checked the overlays")
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert projection([d for d in yaml.safe_load_all(result.stdout) if d]) == projection(rendered[overlay])
