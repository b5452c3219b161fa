"""rayjob.yaml: a KubeRay RayJob shaped as the study needs, checked offline (no Kubernetes, no operator).

The same choices as cluster.yaml (tests/test_cluster_yaml.py): a head without
trials, an autoscaling group of GPU workers, token authentication with the user's
own token, the dashboard kept inside the cluster, results to S3, and docs/cluster.md's
command as the entrypoint, which must parse with the study's own command line.
"""

import re
import shlex
from pathlib import Path

import pytest
import yaml

from study.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
RAYJOB_YAML = ROOT / "rayjob.yaml"


@pytest.fixture(scope="module")
def job() -> dict:
    with open(RAYJOB_YAML) as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def cluster(job) -> dict:
    return job["spec"]["rayClusterSpec"]


def _entrypoint_args(job):
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[:3] == ["python", "-m", "study"], argv
    return build_parser().parse_args(argv[3:])


def _pinned_ray() -> str:
    return re.search(r"^ray==(\S+)$", (ROOT / "constraints.txt").read_text(), re.M).group(1)


def test_is_a_rayjob_that_cleans_up_after_itself(job):
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0
    # The submitter beside the dashboard, in the head Pod.
    assert spec["submissionMode"] == "SidecarMode"


def test_the_entrypoint_is_the_docs_study_run_on_the_cluster_with_results_in_s3(job, cluster):
    args = _entrypoint_args(job)
    assert args.command == "run" and args.address == "auto"
    assert args.storage.startswith("s3://"), args.storage
    # Waiting trials make the autoscaler add workers: as many as the largest group runs at once.
    workers = cluster["workerGroupSpecs"][0]
    per_worker = int(float(workers["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"])
                     / args.gpus_per_trial)
    assert args.max_concurrent == workers["maxReplicas"] * per_worker
    assert "docs/cluster.md" in RAYJOB_YAML.read_text() and "--storage s3://BUCKET/PREFIX" in (ROOT / "docs" / "cluster.md").read_text()


def test_no_trial_can_land_on_the_head(cluster, job):
    head = cluster["headGroupSpec"]["rayStartParams"]
    assert head["num-cpus"] == "0" and head["num-gpus"] == "0"
    assert job["spec"]["entrypointNumCpus"] == 0  # the driver needs no CPU reserved there either


def test_workers_are_an_autoscaling_gpu_group_that_fits_its_trials(cluster, job):
    assert cluster["enableInTreeAutoscaling"] is True
    args = _entrypoint_args(job)
    groups = cluster["workerGroupSpecs"]
    assert groups
    for group in groups:
        assert group["minReplicas"] == 0 and group["replicas"] == 0 and group["maxReplicas"] >= 1
        container = group["template"]["spec"]["containers"][0]
        limits = container["resources"]["limits"]
        assert int(limits["nvidia.com/gpu"]) >= 1
        trials = int(limits["nvidia.com/gpu"]) / args.gpus_per_trial
        # Every trial on the GPU gets its CPU: Ray's CPUs, and the container's.
        assert float(group["rayStartParams"]["num-cpus"]) >= trials * args.cpus_per_trial
        assert float(limits["cpu"]) >= float(group["rayStartParams"]["num-cpus"])


def test_token_authentication_with_the_users_own_token_never_in_the_file(cluster):
    auth = cluster["authOptions"]
    assert auth["mode"] == "token" and auth["secretName"]
    text = RAYJOB_YAML.read_text()
    assert f"kubectl create secret generic {auth['secretName']} --from-file=auth_token=" in text
    containers = [cluster["headGroupSpec"]["template"]["spec"]["containers"][0],
                  *(g["template"]["spec"]["containers"][0] for g in cluster["workerGroupSpecs"])]
    for container in containers:
        for env in container.get("env", []):
            assert env["name"] != "RAY_AUTH_TOKEN" or "value" not in env, "a token written into the manifest"


def test_the_dashboard_stays_inside_the_cluster(cluster):
    head = cluster["headGroupSpec"]
    # KubeRay's default Service is a ClusterIP; nothing here asks for an outside address.
    assert head.get("serviceType", "ClusterIP") == "ClusterIP"
    assert not head.get("enableIngress", False)
    assert "kubectl port-forward" in RAYJOB_YAML.read_text()


def test_rays_version_and_image_match_constraints(cluster):
    pinned = _pinned_ray()
    assert cluster["rayVersion"] == pinned
    assert f"FROM rayproject/ray:{pinned}-" in RAYJOB_YAML.read_text()
    images = {cluster["headGroupSpec"]["template"]["spec"]["containers"][0]["image"],
              *(g["template"]["spec"]["containers"][0]["image"] for g in cluster["workerGroupSpecs"])}
    assert len(images) == 1, images  # head and workers run the same code


def test_every_pod_reaches_s3_through_its_service_account(cluster):
    specs = [cluster["headGroupSpec"]["template"]["spec"], *(g["template"]["spec"] for g in cluster["workerGroupSpecs"])]
    assert all(spec.get("serviceAccountName") for spec in specs)
    text = yaml.safe_dump(cluster)
    assert "AWS_SECRET_ACCESS_KEY" not in text and "AWS_ACCESS_KEY_ID" not in text
