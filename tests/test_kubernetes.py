"""The rendered Kubernetes manifests (deploy/k8s), checked offline: built with
`kubectl kustomize`, validated against the Kubernetes schemas that kubernetes-validate
bundles (strict: an unknown or misspelt field fails), scanned with checkov, and read
for what matters here: probes, the Secret, the security context, the migrate step.

Both options render once per session: web=fastapi (the API, the migrate Job, the HPA
component) and web=none (the Job alone); each also through the overlay its README shows.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from dockerfile import instructions, last
from helpers import assert_clean_render, render
from kustomize import Build, install_checkov, write_readme_overlay

# The oldest Kubernetes these manifests are for (the preStop sleep action, on by
# default since 1.30; unhealthyPodEvictionPolicy, GA in 1.31) and the newest schema
# kubernetes-validate bundles.
KUBERNETES_VERSIONS = ("1.31", kubernetes_validate.latest_version())
FASTAPI = {"project_name": "Book Store", "package_name": "bookstore", "web": "fastapi"}
SECRET_KEYS = {"DATABASE_URL", "DATABASE_MIGRATION_URL", "DATABASE_READ_URL"}
# Each skip is in the manifest with its reason (checkov.io/skipN annotations).
SKIPPED = {"CKV_K8S_11", "CKV_K8S_15", "CKV_K8S_35", "CKV_K8S_43"}
# One worker renders and builds once for all of them.
pytestmark = pytest.mark.xdist_group("kubernetes")


@pytest.fixture(scope="session")
def renders(
    copier_template: Path, default_render: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """web=fastapi rendered here; web=none is a copy of the default render."""
    work = tmp_path_factory.mktemp("k8s")
    fastapi = render(copier_template, work / "book-store", **FASTAPI)
    assert_clean_render(fastapi)
    plain = Path(shutil.copytree(default_render, work / "my-service"))
    for root in (fastapi, plain):
        write_readme_overlay(root)
    return {"fastapi": fastapi, "none": plain}


@pytest.fixture(scope="session")
def builds(renders: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Build]:
    out = tmp_path_factory.mktemp("k8s-built")
    plan = {
        "api": ("fastapi", "deploy/k8s/base"),
        "api-migrate": ("fastapi", "deploy/k8s/migrate"),
        "api-overlay": ("fastapi", "deploy/k8s/overlays/production"),
        "plain-migrate": ("none", "deploy/k8s/migrate"),
        "api-post-deploy": ("fastapi", "deploy/k8s/post-deploy"),
        "plain-post-deploy": ("none", "deploy/k8s/post-deploy"),
        "plain-overlay": ("none", "deploy/k8s/overlays/production"),
    }
    return {
        name: Build(renders[web], directory, out / f"{name}.yaml")
        for name, (web, directory) in plan.items()
    }


@pytest.fixture(scope="session")
def checkov() -> Path:
    return install_checkov()


def test_what_each_kustomization_creates(
    renders: dict[str, Path], builds: dict[str, Build]
) -> None:
    api_kinds = ["ServiceAccount", "Service", "Deployment", "PodDisruptionBudget", "NetworkPolicy"]
    assert builds["api"].kinds() == api_kinds
    job_kinds = ["ServiceAccount", "Job", "NetworkPolicy"]
    assert builds["api-migrate"].kinds() == job_kinds
    assert builds["plain-migrate"].kinds() == job_kinds
    assert builds["api-post-deploy"].kinds() == job_kinds
    assert builds["plain-post-deploy"].kinds() == job_kinds
    assert sorted(builds["api-overlay"].kinds()) == sorted(
        [*api_kinds, "ConfigMap", "HorizontalPodAutoscaler"]
    )
    assert sorted(builds["plain-overlay"].kinds()) == sorted([*job_kinds, "ConfigMap"])
    for build in builds.values():
        for obj in build.objects:
            assert obj["metadata"]["namespace"] in {"book-store", "my-service"}, obj["kind"]
    # web=none: no server, so nothing but the migrate step.
    plain = renders["none"] / "deploy/k8s"
    assert sorted(p.name for p in plain.iterdir()) == ["migrate", "overlays", "post-deploy"]
    # Manifests are not the image's: editing them rebuilds nothing.
    for root in renders.values():
        assert "deploy/" in (root / ".dockerignore").read_text().split()


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_passes_the_kubernetes_schema(builds: dict[str, Build], version: str) -> None:
    for name, build in builds.items():
        for obj in build.objects:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(map(str, exc.path))
                pytest.fail(f"{name}: {obj['kind']} {path}: {exc.message}")


def test_checkov_finds_nothing(builds: dict[str, Build], checkov: Path) -> None:
    """One checkov run for every build: it takes seconds to start."""
    files = [arg for build in builds.values() for arg in ("-f", str(build.file))]
    result = subprocess.run(
        [checkov, *files, "--framework", "kubernetes", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(result.stdout)
    summary, results = report["summary"], report["results"]
    failed = [
        f"{check['check_id']} {check['resource']}: {check['check_name']}"
        for check in results["failed_checks"]
    ]
    assert not failed, "\n".join(failed)
    assert result.returncode == 0, result.stderr
    assert summary["parsing_errors"] == 0
    # It read every workload (and the pods it derives from each).
    checked = {check["resource"] for check in results["passed_checks"]}
    for build in builds.values():
        for obj in build.objects:
            if obj["kind"] in {"Deployment", "Job", "Service", "ServiceAccount", "ConfigMap"}:
                meta = obj["metadata"]
                assert f"{obj['kind']}.{meta['namespace']}.{meta['name']}" in checked
    skipped = {}
    for check in results["skipped_checks"]:
        assert check["resource"].split(".")[0] in {"Deployment", "Job"}, check["resource"]
        reason = check["check_result"]["suppress_comment"]
        assert len(reason) > 20, f"{check['check_id']} skipped without a reason"
        skipped[check["check_id"]] = reason
    assert set(skipped) == SKIPPED


def test_probes_ask_the_right_questions(renders: dict[str, Path], builds: dict[str, Build]) -> None:
    deployment = builds["api"].one("Deployment")
    [api] = deployment["spec"]["template"]["spec"]["containers"]
    [port] = api["ports"]
    # The port the image listens on (UVICORN_PORT, EXPOSE).
    dockerfile = renders["fastapi"] / "Dockerfile"
    assert ("EXPOSE", str(port["containerPort"])) in instructions(dockerfile)
    assert f"UVICORN_PORT={port['containerPort']}" in last(dockerfile, "ENV")
    # Liveness never asks the database; readiness does.
    for probe, path in (
        ("startupProbe", "/health/live"),
        ("livenessProbe", "/health/live"),
        ("readinessProbe", "/health/ready"),
    ):
        assert api[probe]["httpGet"] == {"path": path, "port": port["name"]}, probe
    assert api["readinessProbe"]["timeoutSeconds"] > 3  # the endpoint's own bound
    [service_port] = builds["api"].one("Service")["spec"]["ports"]
    assert service_port["targetPort"] == port["name"]
    assert (
        builds["api"].one("Service")["spec"]["selector"]
        == deployment["spec"]["selector"]["matchLabels"]
    )
    # Drained before SIGTERM, and the grace period outlasts uvicorn's 20 s drain.
    pod = deployment["spec"]["template"]["spec"]
    sleep = api["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert "--timeout-graceful-shutdown" in last(dockerfile, "CMD")
    assert pod["terminationGracePeriodSeconds"] > sleep + 20
    assert "command" not in api and "args" not in api  # the image's own CMD


def test_the_secret_is_referenced_never_inlined(builds: dict[str, Build]) -> None:
    for name, build in builds.items():
        assert "Secret" not in build.kinds(), name
        assert "postgresql" not in build.text and "postgres://" not in build.text, name
        answers = yaml.safe_load((build.root / ".copier-answers.yml").read_text())
        secret = f"{answers['project_slug']}-database"
        for pod in build.pod_specs():
            for container in pod.get("initContainers", []) + pod["containers"]:
                env = {var["name"]: var for var in container.get("env", [])}
                assert "DATABASE_URL" in env, (name, container["name"])
                for key in SECRET_KEYS & set(env):
                    assert "value" not in env[key], (name, key)
                    reference = env[key]["valueFrom"]["secretKeyRef"]
                    assert reference["name"] == secret and reference["key"] == key
                    assert reference.get("optional", False) == (key != "DATABASE_URL")
    # The server gets no migration URL; the migrate step gets no read URL.
    pod = builds["api"].one("Deployment")["spec"]["template"]["spec"]
    [api], [migrate] = pod["containers"], pod["initContainers"]

    def secrets(container: dict[str, Any]) -> set[str]:
        return {var["name"] for var in container["env"] if "valueFrom" in var}

    assert secrets(api) == {"DATABASE_URL", "DATABASE_READ_URL"}
    assert secrets(migrate) == {"DATABASE_URL", "DATABASE_MIGRATION_URL"}


def test_pods_run_locked_down(renders: dict[str, Path], builds: dict[str, Build]) -> None:
    uid = int(last(renders["fastapi"] / "Dockerfile", "USER"))
    assert uid == int(last(renders["none"] / "Dockerfile", "USER"))
    for name, build in builds.items():
        for account in (obj for obj in build.objects if obj["kind"] == "ServiceAccount"):
            assert account["automountServiceAccountToken"] is False
        for pod in build.pod_specs():
            assert pod["automountServiceAccountToken"] is False, name
            assert pod["securityContext"] == {
                "runAsNonRoot": True,
                "runAsUser": uid,
                "runAsGroup": uid,
                "seccompProfile": {"type": "RuntimeDefault"},
            }, name
            accounts = [o for o in build.objects if o["kind"] == "ServiceAccount"]
            assert pod["serviceAccountName"] in {a["metadata"]["name"] for a in accounts}
            volumes = {volume["name"]: volume for volume in pod["volumes"]}
            for container in pod.get("initContainers", []) + pod["containers"]:
                where = (name, container["name"])
                assert container["securityContext"] == {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                }, where
                # The one writable place under a read-only root.
                [mount] = container["volumeMounts"]
                assert mount["mountPath"] == "/tmp" and "emptyDir" in volumes[mount["name"]]
                resources = container["resources"]
                assert set(resources["requests"]) == {"cpu", "memory"}, where
                assert set(resources["limits"]) == {"memory"}, where


def test_the_migrate_step_runs_before_the_new_version_serves(
    builds: dict[str, Build],
) -> None:
    deployment = builds["api"].one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    # Default: an init container in each pod, so no pod serves an unmigrated schema.
    [migrate] = pod["initContainers"]
    assert migrate["command"] == ["python", "-m", "bookstore.infra.migrate", "pre-deploy"]
    assert migrate["image"] == pod["containers"][0]["image"]
    # A pod whose step fails never turns ready: the old ones keep serving, and the
    # rollout stops at its deadline.
    rolling = deployment["spec"]["strategy"]["rollingUpdate"]
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert rolling["maxUnavailable"] == 0 and rolling["maxSurge"] == 1
    assert 300 <= deployment["spec"]["progressDeadlineSeconds"] <= 1800
    # A step queued behind another pod's migration fails, naming the holder, before
    # the deadline would end the rollout without a word.
    waits = {env["name"]: env.get("value") for env in migrate["env"]}
    wait = float(waits["MIGRATION_LOCK_WAIT_SECONDS"]) + 60  # + MIGRATION_WAIT_FOR_DATABASE
    assert 0 < wait < deployment["spec"]["progressDeadlineSeconds"]
    assert deployment["spec"]["replicas"] >= 2
    budget = builds["api"].one("PodDisruptionBudget")["spec"]
    assert budget["selector"] == deployment["spec"]["selector"]
    # The other choice, and web=none's only one: a Job, bounded in tries and time.
    # The post-deploy step: the same Job after the rollout (Argo CD: PostSync).
    steps = {"migrate": ("pre-deploy", "PreSync"), "post-deploy": ("post-deploy", "PostSync")}
    for (web, package), (step, (phase, hook)) in itertools.product(
        (("api", "bookstore"), ("plain", "app")), steps.items()
    ):
        name = f"{web}-{step}"
        job = builds[name].one("Job")
        [container] = job["spec"]["template"]["spec"]["containers"]
        assert container["command"] == ["python", "-m", f"{package}.infra.migrate", phase], name
        spec = job["spec"]
        assert spec["template"]["spec"]["restartPolicy"] == "Never"
        assert 0 < spec["backoffLimit"] <= 3
        assert spec["activeDeadlineSeconds"] > 900 + 60  # lock wait + database wait
        assert spec["ttlSecondsAfterFinished"] > 0
        assert spec["podReplacementPolicy"] == "Failed"
        assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == hook, name
        account = job["spec"]["template"]["spec"]["serviceAccountName"]
        assert account in {obj["metadata"]["name"] for obj in builds[name].objects}, name


def test_the_hpa_component_takes_over_the_replica_count(builds: dict[str, Build]) -> None:
    deployment = builds["api-overlay"].one("Deployment")
    assert "replicas" not in deployment["spec"]
    hpa = builds["api-overlay"].one("HorizontalPodAutoscaler")["spec"]
    target = hpa["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert 2 <= hpa["minReplicas"] < hpa["maxReplicas"]
    # Every pod's pool (5 + 10), a rollout's surge pod included, within max_connections 100.
    assert (hpa["maxReplicas"] + 1) * 15 <= 97


@pytest.mark.parametrize("name", ["api-overlay", "plain-overlay"])
def test_the_readme_overlay_sets_image_and_settings(builds: dict[str, Build], name: str) -> None:
    """Its image and settings reach every container; a change to the settings renames
    the ConfigMap, so the pods roll."""
    build = builds[name]
    slug = build.one("ServiceAccount")["metadata"]["namespace"]
    config = build.one("ConfigMap")
    assert config["metadata"]["name"].startswith(f"{slug}-settings-")
    for pod in build.pod_specs():
        for container in pod.get("initContainers", []) + pod["containers"]:
            assert container["image"] == f"registry.example.com/{slug}:1.4.2"
            assert container["envFrom"] == [
                {"configMapRef": {"name": config["metadata"]["name"], "optional": True}}
            ]
