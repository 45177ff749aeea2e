"""The Helm chart, rendered offline and checked as Dagster checks its own chart.

`helm lint`; `helm template` with the default values (bundled Postgres and S3) and with the
production-shaped example (external Postgres and S3, two accounts); every object validated against
the Kubernetes 1.33 schemas (strict: unknown fields fail); then assertions on the objects: one
daemon with Recreate, a gRPC code location, the run launcher's RBAC, one runner per account with a
journal, probes, resources and a hardened securityContext on every container, secrets only as
files, NetworkPolicies around every pod, no unauthenticated way into the UI or MLflow.
"""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.deploy.chart import (
    CHART,
    NAMESPACE,
    RELEASE,
    Obj,
    by_kind,
    component,
    containers,
    helm,
    instance_yaml,
    named,
    pod_spec,
    render,
    template_args,
    workloads,
)
from tests.deploy.dagster_config import (
    check_class_config,
    check_instance_yaml,
    check_workspace_yaml,
)

K8S_VERSION = "1.33.0"
EXTERNAL = (str(CHART.parent / "values-external.example.yaml"),)
RENDERS = {"default": ((), ()), "external": ((), EXTERNAL)}


@pytest.fixture(params=sorted(RENDERS))
def objs(request: pytest.FixtureRequest, helm_bin: str) -> tuple[Obj, ...]:
    """The rendered objects of one values set."""
    sets, values = RENDERS[request.param]
    return render(sets, values)


def test_helm_lint(helm_bin: str) -> None:
    proc = helm("lint", str(CHART), "--strict")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


def test_every_object_validates_against_kubernetes_schemas(objs: tuple[Obj, ...]) -> None:
    """Strict schema validation of each object: a typo such as `containerPortt` fails here."""
    assert len(objs) >= 25
    for obj in objs:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_validation_catches_a_misspelled_field(helm_bin: str) -> None:
    """The validator is not a rubber stamp: one misspelled field in a rendered object fails."""
    deployment = dict(named(render(), "Deployment", "-daemon"))
    spec = dict(deployment["spec"])
    spec["replica"] = spec.pop("replicas")
    deployment["spec"] = spec
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_daemon_is_one_replica_recreated(objs: tuple[Obj, ...]) -> None:
    daemons = [w for w in workloads(objs) if component(w) == "daemon"]
    assert len(daemons) == 1
    daemon = daemons[0]
    assert daemon["kind"] == "Deployment"
    assert daemon["spec"]["replicas"] == 1
    assert daemon["spec"]["strategy"] == {"type": "Recreate"}
    assert next(containers(daemon))["args"][:2] == ["dagster-daemon", "run"]
    # no other workload runs a daemon
    for w in workloads(objs):
        if w is not daemon:
            for c in containers(w):
                assert "dagster-daemon" not in c.get("args", []) + c.get("command", [])


def test_code_location_is_a_grpc_server_with_health_check_probes(objs: tuple[Obj, ...]) -> None:
    dep = named(objs, "Deployment", "-code-location")
    (c,) = containers(dep)
    port = c["ports"][0]["containerPort"]
    assert c["args"][:3] == ["dagster", "api", "grpc"]
    assert c["args"][c["args"].index("-p") + 1] == str(port)
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert c[probe]["exec"]["command"] == [
            "dagster",
            "api",
            "grpc-health-check",
            "-p",
            str(port),
        ]
    svc = named(objs, "Service", "-code-location")
    assert svc["spec"]["ports"][0]["port"] == port
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    text = named(objs, "ConfigMap", "-workspace")["data"]["workspace.yaml"]
    workspace = check_workspace_yaml(text)
    (grpc,) = workspace["load_from"]
    assert grpc["grpc_server"]["host"] == svc["metadata"]["name"]
    assert grpc["grpc_server"]["port"] == port


def test_every_container_has_probes_resources_and_a_hardened_security_context(
    objs: tuple[Obj, ...],
) -> None:
    for w in workloads(objs):
        where = f"{w['kind']}/{w['metadata']['name']}"
        pod = pod_spec(w)
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for init in (False, True):
            for c in containers(w, init):
                name = f"{where}/{c['name']}"
                if not init and w["kind"] != "Job":  # a Job's pod ends by itself
                    assert "livenessProbe" in c and "readinessProbe" in c, name
                assert set(c["resources"]) == {"requests", "limits"}, name
                assert {"cpu", "memory"} <= set(c["resources"]["limits"]), name
                sc = c["securityContext"]
                assert sc["allowPrivilegeEscalation"] is False, name
                assert sc["readOnlyRootFilesystem"] is True, name
                assert sc["capabilities"] == {"drop": ["ALL"]}, name
                assert sc.get("runAsUser", 1) != 0, name


def _secret_volumes(pod: Obj) -> set[str]:
    return {v["name"] for v in pod.get("volumes", []) if "secret" in v}


def test_secrets_are_mounted_files_never_env(objs: tuple[Obj, ...]) -> None:
    assert not by_kind(objs, "Secret"), "the chart must only reference existing Secrets"
    mounted_any = False
    for w in workloads(objs):
        pod = pod_spec(w)
        secret_vols = _secret_volumes(pod)
        for c in [*containers(w), *containers(w, init=True)]:
            for env in c.get("env", []):
                assert "secretKeyRef" not in env.get("valueFrom", {}), (c["name"], env)
                if re.search(r"PASSWORD|SECRET|TOKEN|KEY", env["name"]):
                    assert env["name"].endswith("_FILE") or env["name"] == "MLFLOW_AUTH_CONFIG_PATH"
            for src in c.get("envFrom", []):
                assert "secretRef" not in src, (c["name"], src)
            mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
            for vol in secret_vols & set(mounts):
                assert mounts[vol]["readOnly"] is True
                assert "subPath" not in mounts[vol], "subPath mounts never see a rotated key"
                mounted_any = True
            # every NAME_FILE points into a secret volume the container mounts
            for env in c.get("env", []):
                if env["name"].endswith("_FILE"):
                    assert any(
                        env["value"].startswith(mounts[v]["mountPath"] + "/")
                        for v in secret_vols & set(mounts)
                    ), (c["name"], env)
    assert mounted_any
    # run pods get the same files through the launcher's volumes
    launcher = instance_yaml(objs)["run_launcher"]["config"]
    assert not launcher.get("env_secrets") and "postgres_password_secret" not in launcher
    assert {v["name"] for v in launcher["volumes"] if "secret" in v} >= {"secret-postgres"}


def test_run_launcher_and_coordinator_configs_are_valid_dagster_config(
    objs: tuple[Obj, ...], tmp_path: Path
) -> None:
    """The instance loads through Dagster's own schema and each class's config schema."""
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_k8s import K8sRunLauncher
    from dagster_k8s.models import k8s_model_from_dict
    from kubernetes.client import V1PodSecurityContext, V1ResourceRequirements, V1SecurityContext

    text = named(objs, "ConfigMap", "-instance")["data"]["dagster.yaml"]
    inst = check_instance_yaml(text, tmp_path)
    assert inst["run_launcher"]["class"] == "K8sRunLauncher"
    assert inst["run_coordinator"]["class"] == "QueuedRunCoordinator"
    check_class_config(K8sRunLauncher, inst["run_launcher"]["config"])
    check_class_config(QueuedRunCoordinator, inst["run_coordinator"].get("config", {}))
    run = inst["run_launcher"]["config"]["run_k8s_config"]
    k8s_model_from_dict(V1SecurityContext, run["container_config"]["security_context"])
    k8s_model_from_dict(V1ResourceRequirements, run["container_config"]["resources"])
    k8s_model_from_dict(V1PodSecurityContext, run["pod_spec_config"]["security_context"])
    db = inst["storage"]["postgres"]["postgres_db"]
    assert db["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    assert db["scheme"] == "postgresql+psycopg2"  # SQLAlchemy 2.1 would pick the absent psycopg 3


def test_run_launcher_rbac_covers_what_k8s_run_launcher_does(objs: tuple[Obj, ...]) -> None:
    role = named(objs, "Role", "-run-launcher")
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for res in rule["resources"]:
                granted.setdefault((group, res), set()).update(rule["verbs"])
    needs = {
        ("batch", "jobs"): {"create", "delete", "get", "list", "watch"},
        ("batch", "jobs/status"): {"get"},
        ("", "pods"): {"get", "list", "watch"},
        ("", "pods/log"): {"get"},
        ("", "events"): {"get", "list", "watch"},
    }
    for key, verbs in needs.items():
        assert verbs <= granted.get(key, set()), (key, granted.get(key))
    assert not any("*" in v for v in granted.values())
    binding = named(objs, "RoleBinding", "-run-launcher")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    sa = binding["subjects"][0]["name"]
    # the processes that launch and terminate runs carry that account; nothing else does
    for w in workloads(objs):
        has_sa = pod_spec(w)["serviceAccountName"] == sa
        # migrate too: `dagster instance migrate` builds the launcher (in-cluster config)
        launches = component(w) in {"daemon", "webserver", "migrate"}
        assert has_sa == launches, w["metadata"]["name"]
        if not has_sa:
            assert pod_spec(w)["automountServiceAccountToken"] is False
    launcher = instance_yaml(objs)["run_launcher"]["config"]
    run_sa = named(objs, "ServiceAccount", "-run")
    assert launcher["service_account_name"] == run_sa["metadata"]["name"]
    assert run_sa["automountServiceAccountToken"] is False
    assert launcher["job_namespace"] == role["metadata"]["namespace"] == NAMESPACE


def test_live_runner_is_one_pod_per_account_with_a_journal(objs: tuple[Obj, ...]) -> None:
    sets = [w for w in workloads(objs) if component(w) == "live-runner"]
    accounts = [w["metadata"]["labels"]["alpaca-improved/account"] for w in sets]
    assert len(accounts) == len(set(accounts)) >= 1
    for sts in sets:
        assert sts["kind"] == "StatefulSet" and sts["spec"]["replicas"] == 1
        (claim,) = sts["spec"]["volumeClaimTemplates"]
        assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
        c = next(c for c in containers(sts) if c["name"] == "live-runner")  # + the signals sidecar
        assert {"name": claim["metadata"]["name"], "mountPath": "/data"} in c["volumeMounts"]
        assert c["args"][:4] == ["python", "-m", "live.cli", "run"]
        port = c["args"][c["args"].index("--health-port") + 1]
        assert f"127.0.0.1:{port}/health" in " ".join(c["livenessProbe"]["exec"]["command"])
        assert "--live" not in c["args"]  # the examples trade paper only
        svc = named(objs, "Service", sts["spec"]["serviceName"].removeprefix(f"{RELEASE}-"))
        assert svc["spec"]["clusterIP"] == "None"
        _loads_models_from_the_tracking_server(objs, sts, c)


def _loads_models_from_the_tracking_server(objs: tuple[Obj, ...], sts: Obj, c: Obj) -> None:
    """With MLflow in the release, the runner reaches it (for an ML deployment's model) with
    the client login as a mounted file, never a value."""
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    mlflow = [w for w in workloads(objs) if component(w) == "mlflow"]
    if not mlflow:
        assert "ALPACA_IMPROVED_MLFLOW_TRACKING_URI" not in env
        return
    svc = next(o for o in by_kind(objs, "Service") if o["metadata"]["name"].endswith("-mlflow"))
    port = svc["spec"]["ports"][0]["port"]
    assert env["ALPACA_IMPROVED_MLFLOW_TRACKING_URI"] == f"http://{svc['metadata']['name']}:{port}"
    assert "MLFLOW_TRACKING_PASSWORD" not in env
    pw_dir = env["MLFLOW_TRACKING_PASSWORD_FILE"].rsplit("/", 1)[0]
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == pw_dir)
    assert mount["readOnly"] is True
    volume = next(v for v in pod_spec(sts)["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["items"] == [{"key": "password", "path": "password"}]


def test_network_policies_deny_by_default_and_select_every_pod(objs: tuple[Obj, ...]) -> None:
    policies = by_kind(objs, "NetworkPolicy")
    deny = named(objs, "NetworkPolicy", "-default-deny")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    allows = [p for p in policies if p is not deny and not p["metadata"]["name"].endswith("dns")]
    pods = [pod_labels(w) for w in workloads(objs)]
    # run pods are not rendered objects: the launcher labels them
    pods.append(instance_yaml(objs)["run_launcher"]["config"]["labels"])
    for labels in pods:
        selecting = [p for p in allows if selects(p["spec"]["podSelector"], labels)]
        assert len(selecting) == 1, (labels, [p["metadata"]["name"] for p in selecting])
        assert selecting[0]["spec"]["policyTypes"] == ["Ingress", "Egress"]


def test_network_policies_let_only_dagster_reach_the_code_location(objs: tuple[Obj, ...]) -> None:
    policy = named(objs, "NetworkPolicy", "-code-location")
    (rule,) = policy["spec"]["ingress"]
    (peer,) = rule["from"]
    comps = next(
        e["values"]
        for e in peer["podSelector"]["matchExpressions"]
        if e["key"] == "app.kubernetes.io/component"
    )
    assert sorted(comps) == ["daemon", "webserver"]
    # the live runner and MLflow cannot open the gRPC port
    assert not policy_allows_ingress(policy, {"app.kubernetes.io/component": "live-runner"})


NEEDED = [  # (client, server, port): every connection the services make inside the namespace
    *[
        (c, "postgres", 5432)
        for c in (
            "webserver",
            "daemon",
            "code-location",
            "run-worker",
            "mlflow",
            "live-runner",
            "migrate",
        )
    ],
    *[(c, "s3", 5000) for c in ("code-location", "run-worker", "mlflow", "live-runner")],
    *[(c, "code-location", 3030) for c in ("webserver", "daemon")],
    *[(c, "mlflow", 5000) for c in ("code-location", "run-worker", "live-runner")],
]
FORBIDDEN = [
    ("live-runner", "code-location", 3030),
    ("mlflow", "code-location", 3030),
    ("run-worker", "webserver", 8080),
    ("live-runner", "webserver", 8080),
    ("s3", "postgres", 5432),
    ("postgres", "s3", 5000),
    ("webserver", "mlflow", 5000),
]


def connection_allowed(policies: list[Obj], src: str, dst: str, port: int) -> bool:
    """Both sides allow it: an egress rule of a policy on ``src`` and an ingress rule on ``dst``."""

    def labels(c: str) -> dict[str, str]:
        return {
            "app.kubernetes.io/name": "alpaca-improved",
            "app.kubernetes.io/instance": RELEASE,
            "app.kubernetes.io/component": c,
        }

    def side(direction: str, me: str, peer: str) -> bool:
        key = "to" if direction == "egress" else "from"
        for pol in policies:
            if not selects(pol["spec"]["podSelector"], labels(me)):
                continue
            for rule in pol["spec"].get(direction, []):
                ports = {p["port"] for p in rule.get("ports", [])}
                if ports and port not in ports:
                    continue
                if any(
                    "podSelector" in x
                    and "namespaceSelector" not in x
                    and selects(x["podSelector"], labels(peer))
                    for x in rule.get(key, [])
                ):
                    return True
        return False

    return side("egress", src, dst) and side("ingress", dst, src)


def test_network_policies_allow_what_the_services_need_and_no_more(helm_bin: str) -> None:
    policies = by_kind(render(), "NetworkPolicy")
    for src, dst, port in NEEDED:
        assert connection_allowed(policies, src, dst, port), (src, dst, port)
    for src, dst, port in FORBIDDEN:
        assert not connection_allowed(policies, src, dst, port), (src, dst, port)


def test_ui_and_mlflow_are_only_reachable_through_authentication(helm_bin: str) -> None:
    objs = render(("dagster.webserver.service.type=LoadBalancer",))
    dep = named(objs, "Deployment", "-webserver")
    ui, proxy = containers(dep)
    assert ui["args"][ui["args"].index("-h") + 1] == "127.0.0.1"
    assert "ports" not in ui
    svc = named(objs, "Service", "-webserver")
    assert svc["spec"]["type"] == "LoadBalancer"
    (port,) = svc["spec"]["ports"]
    assert port["targetPort"] in {p["name"] for p in proxy["ports"]}
    conf = named(objs, "ConfigMap", "-auth-proxy")["data"]["dagster-auth-proxy.conf"]
    assert (CHART / "files" / "dagster-auth-proxy.conf").read_text().strip() in conf
    assert "auth_basic_user_file /etc/dagster-auth/htpasswd;" in conf
    assert "proxy_pass http://127.0.0.1:3000;" in conf
    assert re.search(r"location = /healthz \{\s*auth_basic off;", conf)
    assert conf.count("auth_basic off;") == 1
    mlflow = next(containers(named(objs, "Deployment", "-mlflow")))
    args = mlflow["args"]
    assert args[args.index("--app-name") + 1] == "basic-auth"
    assert mlflow["livenessProbe"]["httpGet"]["path"] == "/health"  # unprotected by design
    for s in by_kind(objs, "Service"):
        if s is not svc:
            assert s["spec"].get("type", "ClusterIP") == "ClusterIP", s["metadata"]["name"]


def test_upgrades_migrate_the_instance_first(objs: tuple[Obj, ...]) -> None:
    job = named(objs, "Job", "-migrate")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-upgrade"
    (c,) = containers(job)
    assert c["args"] == ["dagster", "instance", "migrate"]
    assert pod_spec(job)["restartPolicy"] == "Never"


def test_bundled_s3_gets_the_configured_buckets(helm_bin: str) -> None:
    objs = render(("s3.lakeUri=s3://my-lake/x", "s3.mlflowArtifactsDestination=s3://my-art/a"))
    (init,) = containers(named(objs, "Deployment", "-mlflow"), init=True)
    code = init["args"][2]
    compile(code, "create-buckets", "exec")
    assert "for b in ('my-lake', 'my-art'):" in code


def test_the_lake_read_cache_is_on_each_app_pods_tmp_volume(objs: tuple[Obj, ...]) -> None:
    """The app env puts the S3 lake's read cache under /tmp, which every container reading that
    env mounts as a volume (root filesystems are read-only)."""
    cache = named(objs, "ConfigMap", "-app-env")["data"]["ALPACA_IMPROVED_LAKE_CACHE"]
    assert cache.startswith("/tmp/")
    app = [c for w in workloads(objs) for c in containers(w)
           if any(e.get("configMapRef", {}).get("name", "").endswith("-app-env")
                  for e in c.get("envFrom", []))]  # fmt: skip
    assert len(app) >= 3
    for c in app:
        assert "/tmp" in {m["mountPath"] for m in c["volumeMounts"]}, c["name"]


def test_external_values_render_no_bundled_servers(helm_bin: str) -> None:
    objs = render((), EXTERNAL)
    comps = {component(w) for w in workloads(objs)}
    assert "postgres" not in comps and "s3" not in comps
    db = instance_yaml(objs)["storage"]["postgres"]["postgres_db"]
    assert db["hostname"] == "trading-db.example.internal"
    env = named(objs, "ConfigMap", "-app-env")["data"]
    assert env["AWS_ENDPOINT_URL"] == "https://s3.example.internal"
    assert env["ALPACA_IMPROVED_LAKE_URI"] == "s3://trading-lake/alpaca-improved"
    assert not any(containers(named(objs, "Deployment", "-mlflow"), init=True))
    assert len([w for w in workloads(objs) if w["kind"] == "StatefulSet"]) == 2  # two accounts


PAPER = {
    "name": "paper",
    "broker": "alpaca",
    "live": False,
    "cycleSeconds": 60,
    "existingSecret": "account-paper",
    "journalSize": "5Gi",
}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"dagster": {"daemon": {"replicas": "two"}}},
            "at '/dagster/daemon/replicas': got string, want integer",
        ),
        (
            {"dagster": {"daemon": {"replicas": 2}}},
            "at '/dagster/daemon/replicas': value must be 1",
        ),
        ({"liveRunner": {"accounts": 3}}, "at '/liveRunner/accounts': got number, want array"),
        (
            {"dagster": {"webserver": {"servic": {"type": "LoadBalancer"}}}},
            "additional properties 'servic' not allowed",
        ),
        (
            {"liveRunner": {"accounts": [{**PAPER, "broker": "ibkr"}]}},
            "at '/liveRunner/accounts/0/broker'",
        ),
        ({"postgresql": {"bundled": False}}, "postgresql.host is required"),
        (
            {"signals": {"secretFiles": {"TELEGRAM_BOT_TOKEN": "bad key/"}}},
            "at '/signals/secretFiles/TELEGRAM_BOT_TOKEN'",
        ),
        (
            {"liveRunner": {"accounts": [{**PAPER, "live": True}]}},
            'set confirmLiveTrading: "yes" too',
        ),
        ({"liveRunner": {"accounts": [PAPER, PAPER]}}, 'account "paper" is listed twice'),
    ],
)
def test_bad_values_fail_the_render_with_one_clear_error(
    helm_bin: str, tmp_path: Path, overrides: Obj, message: str
) -> None:
    bad = tmp_path / "bad-values.yaml"
    bad.write_text(yaml.safe_dump(overrides))
    proc = helm(*template_args(values=(str(bad),)))
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr
    assert not proc.stdout.strip()  # nothing half-rendered


def pod_labels(workload: Obj) -> dict[str, str]:
    """The labels of a workload's pods."""
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and the In/NotIn/Exists operators)."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        value, op = labels.get(e["key"]), e["operator"]
        if (
            (op == "In" and value not in e["values"])
            or (op == "NotIn" and value in e["values"])
            or (op == "Exists" and value is None)
            or (op == "DoesNotExist" and value is not None)
        ):
            return False
    return True


def policy_allows_ingress(policy: Obj, labels: dict[str, str]) -> bool:
    """Whether a same-namespace pod with ``labels`` may connect to the policy's pods."""
    labels = {"app.kubernetes.io/instance": RELEASE, **labels}
    return any(
        "podSelector" in peer and selects(peer["podSelector"], labels)
        for rule in policy["spec"].get("ingress", [])
        for peer in rule.get("from", [])
    )


def test_pipelines_log_in_to_mlflow_and_mlflow_exposes_metrics(objs: tuple[Obj, ...]) -> None:
    """Code server and run pods carry the MLflow login (user in the app ConfigMap, password as a
    mounted file), and the server runs with --expose-prometheus."""
    app_env = named(objs, "ConfigMap", "-app-env")["data"]
    assert app_env["MLFLOW_TRACKING_USERNAME"] == "admin"
    by_component = {component(w): w for w in workloads(objs) if w["kind"] == "Deployment"}
    (c,) = containers(by_component["code-location"])
    files = {e["name"]: e["value"] for e in c["env"] if e["name"].endswith("_FILE")}
    assert files["MLFLOW_TRACKING_PASSWORD_FILE"].endswith("/mlflow-client/password")
    launcher = instance_yaml(objs)["run_launcher"]["config"]
    assert (
        f"MLFLOW_TRACKING_PASSWORD_FILE={files['MLFLOW_TRACKING_PASSWORD_FILE']}"
        in launcher["env_vars"]
    )
    assert "secret-mlflow-client" in {v["name"] for v in launcher["volumes"]}
    (server,) = containers(by_component["mlflow"])
    assert "--expose-prometheus" in server["args"]


def test_signals_is_a_sidecar_of_each_live_runner_behind_its_own_port(
    objs: tuple[Obj, ...],
) -> None:
    """The signals service runs beside each runner on the journal volume, with the dashboard
    password as a mounted file; only its port is open, and only to the ingress namespace."""
    runners = [w for w in workloads(objs) if component(w) == "live-runner"]
    assert runners
    for sts in runners:
        by_name = {c["name"]: c for c in containers(sts)}
        side = by_name["signals"]
        assert side["args"][:3] == ["alpaca-improved", "signals", "serve"]
        mounts = {m["name"]: m["mountPath"] for m in side["volumeMounts"]}
        assert (
            mounts["journal"]
            == "/data"
            == {m["name"]: m["mountPath"] for m in by_name["live-runner"]["volumeMounts"]}[
                "journal"
            ]
        )
        env = {e["name"]: e["value"] for e in side["env"]}
        assert env["ALPACA_IMPROVED_DASHBOARD_PASSWORD_FILE"].startswith(mounts["secret-signals"])
        port = side["ports"][0]["containerPort"]
        svc = named(objs, "Service", f"{sts['metadata']['name']}-signals")
        assert svc["spec"]["ports"][0]["port"] == port
    policy = named(objs, "NetworkPolicy", "-live-runner")
    (rule,) = policy["spec"]["ingress"]
    assert [p["port"] for p in rule["ports"]] == [port]
    assert all("namespaceSelector" in peer for peer in rule["from"])  # not other pods


def test_signals_disabled_leaves_the_runner_closed(helm_bin: str) -> None:
    out = render(sets=("signals.enabled=false",))
    for sts in (w for w in workloads(out) if component(w) == "live-runner"):
        assert [c["name"] for c in containers(sts)] == ["live-runner"]
    assert named(out, "NetworkPolicy", "-live-runner")["spec"]["ingress"] == []
