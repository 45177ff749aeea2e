"""`make stack`: every service of deploy/compose.yaml as a local process on 127.0.0.1.

Containers cannot run on this machine, but the services' commands can. This reads compose.yaml
(commands, environments, secrets, configs, volumes, ``depends_on`` and healthchecks; an image's
CMD from its Dockerfile when compose names no command) and deploy/stack/stack.yaml (only the
translations: which ports each service listens on, the local program behind each third-party
image, the services skipped, the run launcher) and starts each service in its own process group
in dependency order, as Compose would, probing it with its own healthcheck.

Translations, applied to every argument, environment value and config file: a service's host
name becomes 127.0.0.1 and every container port a free port; a container path (a volume, a config
or secret target, the tmpfs /tmp) becomes a directory under the stack's root (``fs/<service>/...``,
volumes under ``volumes/<name>``). Secrets are generated once into ``secrets/`` and copied, 0400,
to where each service mounts them; the entrypoint exports NAME from NAME_FILE as in the images.
Nothing secret is in an argument or an environment value, and no secret value may reach a log.

    python deploy/stack/run_stack.py [--root DIR]     # Ctrl-C or SIGTERM stops everything

``<root>/stack.json`` (written once every service is healthy) holds the URLs, ports, pids and the
measured start-up seconds; ``<root>/credentials.json`` (0600) the UI's and MLflow's logins.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import warnings

with warnings.catch_warnings():  # deprecated in 3.11, the system crypt(3) nginx checks with
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
SPEC = Path(__file__).with_name("stack.yaml")
ENTRYPOINT = DEPLOY / "docker" / "entrypoint.sh"
VENV_BIN = Path(sys.executable).parent
DOCKERFILES = {
    "alpaca-improved/user-code": "Dockerfile.user-code",
    "alpaca-improved/dagster": "Dockerfile.dagster",
    "alpaca-improved/mlflow": "Dockerfile.mlflow",
}
PROBE_EVERY = 1.0  # seconds between healthcheck attempts (compose's intervals are for long runs)
START_BUDGET = 240.0  # seconds for the whole stack to become healthy
STOP_GRACE = 10.0  # Docker's default stop timeout; compose's stop_grace_period overrides it
UI_USER = "admin"
MLFLOW_ADMIN = "admin"

sys.path.insert(0, str(REPO))
from tests.postgres_server import PG_BIN, RUN_AS, PostgresServer, free_port  # noqa: E402


class StackError(RuntimeError):
    """A service failed to start or a translation is impossible (one line names it)."""


def _secret_text(n: int = 24) -> str:
    return secrets.token_urlsafe(n)


@dataclass
class Service:
    """One process of the stack: what to run, how to probe it, and its process while it lives."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log: Path
    after: dict[str, str] = field(default_factory=dict)  # dependency -> compose condition
    probe: list[str] | None = None
    probe_env: dict[str, str] = field(default_factory=dict)
    port: int | None = None  # the probe runs once this accepts connections
    oneshot: bool = False
    user: str | None = None
    stop_signal: int = signal.SIGTERM
    stop_grace: float = STOP_GRACE
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    ready: float = 0.0  # seconds from this service's start to healthy (or completed)
    state: str = "waiting"  # waiting, starting, healthy, completed
    probing: concurrent.futures.Future[bool] | None = None
    last_probe: float = 0.0


class Stack:
    """The stack under ``root``: plan it from compose.yaml, run it, stop it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.compose: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
        self.spec: dict[str, Any] = yaml.safe_load(SPEC.read_text())
        self.names = set(self.compose["services"]) | set(self.spec["extra_services"])
        self.ports = {
            (svc, cport): free_port()
            for svc, cports in self.spec["listens"].items()
            for cport in cports
        }
        self.services: list[Service] = []
        self.secret_values: dict[str, str] = {}
        self.logins: dict[str, dict[str, str]] = {}
        self.t0 = time.monotonic()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)
        self._pg: PostgresServer | None = None
        self._pg_ready = False
        self.probes: set[subprocess.Popen[bytes]] = set()

    # ---- translation -------------------------------------------------------------------------

    def port(self, svc: str, cport: int | str) -> int:
        try:
            return self.ports[(svc, int(cport))]
        except (KeyError, ValueError) as exc:
            raise StackError(
                f"{svc}:{cport} is not in deploy/stack/stack.yaml `listens`; add the port there"
            ) from exc

    def local_ports(self, svc: str) -> dict[int, int]:
        """Container port -> local port for what ``svc`` reaches as 127.0.0.1 (its own ports,
        and those of the service whose network namespace it shares)."""
        spaces = [svc]
        mode = self.compose["services"].get(svc, {}).get("network_mode", "")
        if mode.startswith("service:"):
            spaces.append(mode.split(":", 1)[1])
        return {c: p for (s, c), p in self.ports.items() if s in spaces}

    def text(self, value: str, svc: str, paths: list[tuple[str, Path]]) -> str:
        """``value`` with host names, ports and container paths made local for ``svc``."""
        own = self.local_ports(svc)
        names = "|".join(sorted((re.escape(n) for n in self.names), key=len, reverse=True))
        value = re.sub(
            rf"(?<![\w.-])({names}):(\d+)\b",
            lambda m: f"127.0.0.1:{self.port(m.group(1), m.group(2))}",
            value,
        )
        value = re.sub(
            r"(?<![\w.])(127\.0\.0\.1|localhost|0\.0\.0\.0):(\d+)\b",
            lambda m: (
                f"{'127.0.0.1' if m.group(1) == '0.0.0.0' else m.group(1)}:{own[int(m.group(2))]}"
                if int(m.group(2)) in own
                else m.group(0)
            ),
            value,
        )
        value = re.sub(
            r"\blisten (\d+);",
            lambda m: f"listen 127.0.0.1:{own[int(m.group(1))]};",
            value,
        )
        if not paths:
            return value
        # one pass, longest path first: a local path (itself under /tmp) is never rewritten again
        local = {cpath: str(lpath) for cpath, lpath in paths}
        alternatives = "|".join(re.escape(c) for c in sorted(local, key=len, reverse=True))
        return re.sub(
            rf"(?<![\w/.-])({alternatives})(?=[/\s\"';:,]|$)", lambda m: local[m.group(1)], value
        )

    def argv(self, args: list[str], svc: str, paths: list[tuple[str, Path]]) -> list[str]:
        own = self.local_ports(svc)
        replace = self.spec.get("args", {}).get(svc, {})
        out: list[str] = []
        for i, arg in enumerate(args):
            prev = args[i - 1] if i else ""
            if prev in ("-p", "--port", "--health-port") and arg.isdigit() and int(arg) in own:
                arg = str(own[int(arg)])
            elif prev in ("-h", "--host", "-H") and arg == "0.0.0.0":
                arg = "127.0.0.1"
            elif prev in replace:
                arg = str(replace[prev])
            out.append(self.text(arg, svc, paths))
        return out

    def environment(
        self, env: dict[str, Any], svc: str, paths: list[tuple[str, Path]]
    ) -> dict[str, str]:
        out = {k: self.text(str(v), svc, paths) for k, v in env.items()}
        for key, value in out.items():
            # a container path nothing mounts (the daemon's /data): the service's own directory
            if value.startswith("/") and value == str(env[key]) and not Path(value).exists():
                out[key] = str(self.fs(svc) / value.lstrip("/"))
        for key, value in env.items():
            # NAME_HOST=<service> with NAME_PORT=<its port>: the pair points at the local server
            if key.endswith("_HOST") and str(value) in self.names:
                out[key] = "127.0.0.1"
                pkey = key[: -len("_HOST")] + "_PORT"
                if pkey in env:
                    out[pkey] = str(self.port(str(value), env[pkey]))
        own = self.local_ports(svc)
        for key, value in env.items():
            if key.endswith("_PORT") and key[:-5] + "_HOST" not in env and str(value).isdigit():
                out[key] = str(own.get(int(value), value))
        return out

    # ---- secrets ----------------------------------------------------------------------------

    def make_secrets(self) -> None:
        """One file per compose secret, generated for this stack (0400 under a 0700 dir)."""
        pg = self.port("postgres", 5432)
        pw = _secret_text()
        ui_pw, admin_pw, dash_pw = _secret_text(), _secret_text(), _secret_text()
        db = f"postgresql+psycopg2://alpaca:{pw}@127.0.0.1:{pg}"
        values = {
            "postgres_password": pw,
            "s3_access_key_id": "AKIA" + secrets.token_hex(8).upper(),
            "s3_secret_access_key": _secret_text(30),
            "alpaca_api_key": "PK" + secrets.token_hex(9).upper(),
            "alpaca_secret_key": _secret_text(30),
            "mlflow_backend_store_uri": f"{db}/mlflow",
            "mlflow_flask_secret_key": secrets.token_hex(32),
            "mlflow_basic_auth_ini": (
                "[mlflow]\ndefault_permission = NO_PERMISSIONS\n"
                f"database_uri = {db}/mlflow_auth\nadmin_username = {MLFLOW_ADMIN}\n"
                f"admin_password = {admin_pw}\n"
                "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            ),
            "mlflow_admin_password": admin_pw,
            "dashboard_password": dash_pw,
            "dagster_htpasswd": f"{UI_USER}:{_bcrypt(ui_pw)}",
        }
        missing = set(self.compose["secrets"]) - set(values)
        if missing:
            raise StackError(f"compose secret(s) {sorted(missing)} have no generator in run_stack")
        sdir = self.root / "secrets"
        sdir.mkdir(mode=0o700)
        for name, value in values.items():
            path = sdir / name
            path.write_text(value + "\n")
            path.chmod(0o400)
        self.secret_values = {
            "postgres_password": pw,
            "s3_secret_access_key": values["s3_secret_access_key"],
            "alpaca_api_key": values["alpaca_api_key"],
            "alpaca_secret_key": values["alpaca_secret_key"],
            "mlflow_flask_secret_key": values["mlflow_flask_secret_key"],
            "mlflow_admin_password": admin_pw,
            "dagster_ui_password": ui_pw,
            "dashboard_password": dash_pw,
        }
        self.logins = {
            "dagster_ui": {"user": UI_USER, "password": ui_pw},
            "mlflow": {"user": MLFLOW_ADMIN, "password": admin_pw},
            "signals_dashboard": {
                "user": self.compose["services"]["signals-paper"]["environment"][
                    "ALPACA_IMPROVED_DASHBOARD_USER"
                ],
                "password": dash_pw,
            },
        }
        creds = self.root / "credentials.json"
        creds.write_text(json.dumps(self.logins, indent=2))
        creds.chmod(0o600)

    # ---- planning ---------------------------------------------------------------------------

    def fs(self, svc: str) -> Path:
        path = self.root / "fs" / svc
        path.mkdir(parents=True, exist_ok=True, mode=0o711)
        return path

    def mounts(self, svc: str, spec: dict[str, Any], user: str | None) -> list[tuple[str, Path]]:
        """Container path -> local path for the service's volumes, secrets, configs and /tmp;
        secrets are copied and configs written (translated) where the service will read them."""
        base = self.fs(svc)
        paths: list[tuple[str, Path]] = [("/tmp", base / "tmp")]
        if spec.get("image", "").split(":")[0] in DOCKERFILES:
            paths.append(("/usr/local/bin/entrypoint.sh", ENTRYPOINT))
        (base / "tmp").mkdir(exist_ok=True)
        for vol in spec.get("volumes", []):
            source, target = vol.split(":")[:2]
            if source.startswith("/"):
                continue  # the Docker socket: DockerRunLauncher only
            local = (DEPLOY / source).resolve() if source.startswith(".") else None
            if local is None:
                local = self.root / "volumes" / source
                local.mkdir(parents=True, exist_ok=True)
            paths.append((target, local))
        for entry in spec.get("secrets", []):
            src = entry if isinstance(entry, str) else entry["source"]
            target = entry if isinstance(entry, str) else entry.get("target", src)
            cpath = target if target.startswith("/") else f"/run/secrets/{target}"
            local = base / cpath.lstrip("/")
            local.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.root / "secrets" / src, local)
            local.chmod(0o400)
            paths.append((cpath, local))
        image_env = self.image_env(spec.get("image", ""))
        dagster_home = image_env.get("DAGSTER_HOME")
        paths_now = list(paths)
        if dagster_home and not any(t == dagster_home for t, _ in paths_now):
            paths.append((dagster_home, base / dagster_home.lstrip("/")))
        for entry in spec.get("configs", []):
            cfg = self.compose["configs"][entry["source"]]
            target = entry["target"]
            local = self.text(target, svc, paths)
            local_path = Path(local) if local != target else base / target.lstrip("/")
            local_path.parent.mkdir(parents=True, exist_ok=True)
            local_path.write_text(
                self.config_text(entry["source"], DEPLOY / cfg["file"], svc, paths)
            )
            paths.append((target, local_path))
        for _, local in paths:
            if user and local.is_relative_to(self.root):
                for p in [local, *local.parents]:
                    if p == self.root:
                        break
                    if p.exists():
                        shutil.chown(p, user)
        return paths

    def config_text(self, name: str, source: Path, svc: str, paths: list[tuple[str, Path]]) -> str:
        text = source.read_text()
        if name == "dagster_instance":
            instance = yaml.safe_load(text)
            instance["run_launcher"] = self.spec["run_launcher"]
            head = "# deploy/dagster.yaml, run_launcher from deploy/stack/stack.yaml\n"
            return head + yaml.safe_dump(instance, sort_keys=False)
        if name == "dagster_workspace":
            workspace = yaml.safe_load(text)
            for entry in workspace["load_from"]:
                grpc = entry.get("grpc_server")
                if grpc:
                    grpc["port"] = self.port(grpc["host"], grpc["port"])
                    grpc["host"] = "127.0.0.1"
            return yaml.safe_dump(workspace, sort_keys=False)
        return self.text(text, svc, paths)

    def image_env(self, image: str) -> dict[str, str]:
        """ENV of our image's last stage (PATH excepted: the venv stands in for /opt/venv)."""
        name = DOCKERFILES.get(image.split(":")[0])
        if name is None:
            return {}
        env: dict[str, str] = {}
        for instr, rest in self.dockerfile(name):
            if instr == "ENV":
                for word in shlex.split(rest):
                    key, _, value = word.partition("=")
                    if key != "PATH":
                        env[key] = value
        return env

    def dockerfile(self, name: str) -> list[tuple[str, str]]:
        text = re.sub(r"\\\n", " ", (DEPLOY / "docker" / name).read_text())
        last: list[tuple[str, str]] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            instr, _, rest = line.partition(" ")
            if instr.upper() == "FROM":
                last = []
            else:
                last.append((instr.upper(), rest.strip()))
        return last

    def image_cmd(self, image: str) -> list[str]:
        name = DOCKERFILES.get(image.split(":")[0])
        cmds = [json.loads(rest) for instr, rest in self.dockerfile(name or "") if instr == "CMD"]
        if not cmds:
            raise StackError(f"image {image}: compose names no command and no Dockerfile CMD")
        return list(cmds[-1])

    def plan(self) -> None:
        skip = self.spec["skip"]
        base_env = {"PATH": f"{VENV_BIN}:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        for name, spec in self.compose["services"].items():
            if name in skip or spec.get("profiles"):
                if name not in skip:
                    raise StackError(f"service {name} has a profile but no reason in `skip`")
                continue
            image = spec.get("image", "")
            stand_in = self.spec["images"].get(image, {})
            user = stand_in.get("user") if os.geteuid() == 0 else None
            paths = self.mounts(name, spec, user)
            env = {**base_env, "HOME": str(self.fs(name) / "tmp")}
            env.update(self.environment(self.image_env(image), name, paths))
            env.update(self.environment(spec.get("environment", {}), name, paths))
            for extra in self.spec["extra_services"].values():
                if name in extra["environment_for"]:
                    env.update(self.environment(extra["environment"], name, paths))
            ours = image.split(":")[0] in DOCKERFILES
            command: list[str] = spec.get("command") or (self.image_cmd(image) if ours else [])
            if ours:
                argv = ["/bin/sh", str(ENTRYPOINT), *self.argv(command, name, paths)]
            elif "command" in stand_in:
                argv = [
                    a.replace("${MOTO_PORT}", env.get("MOTO_PORT", "")) for a in stand_in["command"]
                ]
            elif stand_in.get("program") == "postgres":
                argv = self.plan_postgres(env)
            elif command:
                argv = self.argv(command, name, paths)
            else:
                raise StackError(f"service {name}: no command and no stand-in in stack.yaml")
            self.services.append(
                self.service(name, spec, argv, env, paths, user, stand_in.get("stop_signal"))
            )
        for name, spec in self.spec["extra_services"].items():
            paths = [("/tmp", self.fs(name) / "tmp")]
            (self.fs(name) / "tmp").mkdir(exist_ok=True)
            argv = self.argv(spec["command"], name, paths)
            env = {**base_env, "HOME": str(self.fs(name))}
            self.services.append(self.service(name, spec, argv, env, paths, None, None))

    def service(
        self,
        name: str,
        spec: dict[str, Any],
        argv: list[str],
        env: dict[str, str],
        paths: list[tuple[str, Path]],
        user: str | None,
        stop: str | None,
    ) -> Service:
        deps = spec.get("depends_on", {})
        after = (
            {d: "service_started" for d in deps}
            if isinstance(deps, list)
            else {d: c.get("condition", "service_started") for d, c in deps.items()}
        )
        after = {d: c for d, c in after.items() if d not in self.spec["skip"]}
        test = spec.get("healthcheck", {}).get("test")
        probe = None
        if test:
            probe = ["sh", "-c", test[1]] if test[0] == "CMD-SHELL" else test[1:]
            probe = self.argv(probe, name, paths)
        own = self.local_ports(name)
        listens = self.spec["listens"].get(name, [])
        # a healthcheck runs inside the container without the entrypoint: only compose's env
        probe_env = {k: v for k, v in env.items()}
        return Service(
            name=name,
            argv=argv,
            env=env,
            cwd=self.fs(name),
            log=self.root / "logs" / f"{name}.log",
            after=after,
            probe=probe,
            probe_env=probe_env,
            port=own[listens[0]] if listens else None,
            oneshot=spec.get("restart") == "no",
            user=user,
            stop_signal=getattr(signal, stop) if stop else signal.SIGTERM,
            stop_grace=_seconds(spec.get("stop_grace_period", STOP_GRACE)),
        )

    # ---- running ----------------------------------------------------------------------------

    def by_name(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)

    def plan_postgres(self, env: dict[str, str]) -> list[str]:
        """The server in the foreground as the non-root server user, on the volume's directory;
        PGHOST/PGPORT point the image's libpq tools (pg_isready) at it."""
        root = self.root / "volumes" / "pgdata"
        root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(root, RUN_AS)
        self._pg = PostgresServer(
            root=root,
            port=self.port("postgres", 5432),
            password=Path(env["POSTGRES_PASSWORD_FILE"]).read_text().strip(),
            user=env["POSTGRES_USER"],
        )
        env.update(PGHOST="127.0.0.1", PGPORT=str(self._pg.port))
        argv = [str(PG_BIN / "postgres"), "-D", str(self._pg.data)]
        for opt in self._pg.options(fast=False):
            argv += shlex.split(opt)
        return argv

    def init_postgres(self) -> None:
        """POSTGRES_DB and /docker-entrypoint-initdb.d/*.sql, once the server accepts logins."""
        spec = self.compose["services"]["postgres"]
        assert self._pg is not None
        self._pg.create_database(spec["environment"]["POSTGRES_DB"])
        conn = self._pg.connect()
        try:
            with conn.cursor() as cur:
                for vol in spec.get("volumes", []):
                    source, target = vol.split(":")[:2]
                    if target.startswith("/docker-entrypoint-initdb.d/") and source.endswith(
                        ".sql"
                    ):
                        sql = (DEPLOY / source).read_text()
                        for stmt in re.sub(r"--[^\n]*", "", sql).split(";"):
                            if stmt.strip():
                                cur.execute(stmt)
        finally:
            conn.close()

    def start(self, svc: Service) -> None:
        svc.log.parent.mkdir(exist_ok=True)
        svc.started = time.monotonic()
        if svc.name == "postgres":
            # initialise the cluster as the image's entrypoint would (POSTGRES_USER, the password)
            assert self._pg is not None
            self._pg.initdb()
        svc.log.touch()
        if svc.user:  # nginx reopens /dev/stdout: the log must be the service user's
            shutil.chown(svc.log, svc.user)
        with svc.log.open("ab") as out:
            svc.proc = subprocess.Popen(
                svc.argv,
                env=svc.env,
                cwd=svc.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stopped as one
                user=svc.user,
                group=svc.user and _group_of(svc.user),
                extra_groups=[] if svc.user else None,
            )
        svc.state = "starting"
        print(f"  start  {svc.name:22s} pid {svc.proc.pid}", flush=True)

    def check(self, svc: Service) -> None:
        """Advance ``svc``: completed or failed if it exited, healthy once its probe passes."""
        assert svc.proc is not None
        rc = svc.proc.poll()
        if rc is not None:
            if svc.oneshot and rc == 0:
                svc.state, svc.ready = "completed", time.monotonic() - svc.started
                print(f"  done   {svc.name:22s} {svc.ready:5.1f} s", flush=True)
                return
            raise StackError(f"service {svc.name} exited {rc}: see {svc.log}\n{_tail(svc.log)}")
        if svc.state != "starting" or svc.oneshot:
            return
        if svc.probing is not None:
            if not svc.probing.done():
                return
            ok = svc.probing.result()
            svc.probing = None
            if ok:
                svc.state, svc.ready = "healthy", time.monotonic() - svc.started
                print(f"  ready  {svc.name:22s} {svc.ready:5.1f} s", flush=True)
            return
        if time.monotonic() - svc.last_probe < PROBE_EVERY:
            return
        if svc.port is not None and not _accepts(svc.port):
            return
        svc.last_probe = time.monotonic()
        svc.probing = self.pool.submit(self.probe, svc)

    def probe(self, svc: Service) -> bool:
        if svc.name == "postgres" and not self._pg_ready:
            try:
                self.init_postgres()
            except Exception:  # noqa: BLE001 - not accepting logins yet: probe again
                return False
            self._pg_ready = True
        if svc.probe is None:
            return True
        proc = subprocess.Popen(
            svc.probe,
            env=svc.probe_env,
            cwd=svc.cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.probes.add(proc)
        try:
            return proc.wait(timeout=60) == 0
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
            return False
        finally:
            self.probes.discard(proc)

    def up(self) -> None:
        deadline = self.t0 + START_BUDGET
        while True:
            for svc in self.services:
                if svc.state == "waiting" and all(
                    self.met(dep, cond) for dep, cond in svc.after.items()
                ):
                    self.start(svc)
                elif svc.state == "starting":
                    self.check(svc)
            if all(s.state in ("healthy", "completed") for s in self.services):
                return
            if time.monotonic() > deadline:
                late = [s.name for s in self.services if s.state not in ("healthy", "completed")]
                raise StackError(f"not healthy after {START_BUDGET:.0f} s: {', '.join(late)}")
            time.sleep(0.1)

    def met(self, dep: str, condition: str) -> bool:
        svc = self.by_name(dep)
        if condition == "service_completed_successfully":
            return svc.state == "completed"
        if condition == "service_healthy":
            return svc.state == "healthy"
        return svc.state != "waiting"

    def watch(self, stop: list[bool]) -> None:
        """Until a stop signal: a long-running service that exits takes the stack down."""
        while not stop:
            for svc in self.services:
                if svc.proc is not None and not svc.oneshot and svc.proc.poll() is not None:
                    raise StackError(
                        f"service {svc.name} exited {svc.proc.returncode}: see {svc.log}\n"
                        f"{_tail(svc.log)}"
                    )
            time.sleep(0.5)

    def tier(self, svc: Service) -> int:
        """How deep ``svc`` sits in ``depends_on``: services are stopped deepest first."""
        return 1 + max((self.tier(self.by_name(d)) for d in svc.after), default=0)

    def down(self) -> None:
        """Stop every process group, dependents before their dependencies (each tier at once);
        SIGKILL what outlives its grace, then whatever is left in the group."""
        for proc in list(self.probes):
            _signal_group(proc.pid, signal.SIGKILL)
        self.pool.shutdown(wait=True, cancel_futures=True)
        running = [s for s in self.services if s.proc is not None]
        for tier in sorted({self.tier(s) for s in running}, reverse=True):
            group = [s for s in running if self.tier(s) == tier]
            for svc in group:
                assert svc.proc is not None
                _signal_group(svc.proc.pid, svc.stop_signal)
            deadline = time.monotonic() + max(s.stop_grace for s in group)
            for svc in group:
                assert svc.proc is not None
                try:
                    svc.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    _signal_group(svc.proc.pid, signal.SIGKILL)
                    svc.proc.wait()
            t_end = time.monotonic() + 5
            while any(_group_alive(s.proc.pid) for s in group if s.proc) and (
                time.monotonic() < t_end
            ):
                time.sleep(0.1)
            for svc in group:  # children that ignored the signal (run subprocesses, workers)
                assert svc.proc is not None
                if _group_alive(svc.proc.pid):
                    _signal_group(svc.proc.pid, signal.SIGKILL)
                print(f"  stop   {svc.name:22s} exit {svc.proc.returncode}", flush=True)

    def summary(self) -> dict[str, Any]:
        ui = self.port("dagster-auth-proxy", 8080)
        return {
            "root": str(self.root),
            "urls": {
                "dagster_ui": f"http://127.0.0.1:{ui}/",
                "dagster_webserver": f"http://127.0.0.1:{self.port('dagster-webserver', 3000)}/",
                "mlflow": f"http://127.0.0.1:{self.port('mlflow', 5000)}/",
                "live_runner_health": (
                    f"http://127.0.0.1:{self.port('live-runner-paper', 8081)}/health"
                ),
                "signals": f"http://127.0.0.1:{self.port('signals-paper', 8082)}/",
                "s3": f"http://127.0.0.1:{self.port('s3', 5000)}/",
                "redis": f"redis://127.0.0.1:{self.port('redis', 6379)}/0",
            },
            "postgres": {
                "host": "127.0.0.1",
                "port": self.port("postgres", 5432),
                "user": self.compose["services"]["postgres"]["environment"]["POSTGRES_USER"],
                "password_file": str(self.root / "secrets" / "postgres_password"),
            },
            "credentials": str(self.root / "credentials.json"),
            "services": {
                s.name: {
                    "pid": s.proc.pid if s.proc else None,
                    "argv": s.argv,
                    "log": str(s.log),
                    "start_to_ready_s": round(s.ready, 2),
                    "ready_at_s": round(s.started + s.ready - self.t0, 2),
                    "state": s.state,
                }
                for s in self.services
            },
            "total_s": round(time.monotonic() - self.t0, 2),
        }

    def procfile(self) -> str:
        """The planned commands, one ``name: argv`` a line (the environment is in stack.json)."""
        return "".join(f"{s.name}: {shlex.join(s.argv)}\n" for s in self.services)


def _bcrypt(password: str) -> str:
    """An htpasswd bcrypt hash through the system crypt(3), which nginx's auth_basic also uses."""
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))


def _seconds(value: str | float) -> float:
    """A compose duration (``60s``, ``1m30s``) or a number, in seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", value)
    return sum(float(n) * units[u] for n, u in parts)


def _group_of(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_gid


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _tail(log: Path, n: int = 2000) -> str:
    return log.read_text(errors="replace")[-n:] if log.exists() else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="stack directory (default: a new temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the root dir after stopping")
    args = parser.parse_args(argv)
    if shutil.which("nginx") is None:
        print(
            "error: nginx not found: apt-get install -y nginx-light (make stack does)",
            file=sys.stderr,
        )
        return 2
    root = args.root or Path(tempfile.mkdtemp(prefix="alpaca-stack-"))
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        print(f"error: --root {root} is not empty; name a new or empty directory", file=sys.stderr)
        return 2
    root.chmod(0o711)
    for parent in root.resolve().parents:  # postgres and nginx run as other users
        if os.geteuid() == 0 and not parent.stat().st_mode & 0o001:
            print(
                f"error: --root {root}: {parent} is not searchable by other users (postgres, "
                f"nginx run as them); chmod o+x {parent} or choose a root elsewhere",
                file=sys.stderr,
            )
            return 2
    stop: list[bool] = []

    def on_signal(signum: int, _frame: object) -> None:
        stop.append(True)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stack = Stack(root)
    code = 0
    try:
        stack.make_secrets()
        stack.plan()
        (root / "Procfile").write_text(stack.procfile())
        print(f"stack root {root} (commands: {root / 'Procfile'})", flush=True)
        stack.up()
        summary = stack.summary()
        (root / "stack.json").write_text(json.dumps(summary, indent=2))
        urls = summary["urls"]
        print(
            f"\nstack up in {summary['total_s']:.1f} s\n"
            f"  Dagster UI (basic auth) {urls['dagster_ui']}\n"
            f"  MLflow (basic auth)     {urls['mlflow']}\n"
            f"  live runner             {urls['live_runner_health']}\n"
            f"  signals (dashboard)     {urls['signals']}dashboard/\n"
            f"  logins                  {summary['credentials']}\n"
            f"  logs                    {root / 'logs'}\n"
            "Ctrl-C stops everything.",
            flush=True,
        )
        stack.watch(stop)
    except KeyboardInterrupt:
        pass
    except (StackError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.down()
        if not args.keep and args.root is None:
            shutil.rmtree(root, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
