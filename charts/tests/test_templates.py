"""Template tests in the style of Airflow's chart tests: render with given values, assert on the manifests."""

from __future__ import annotations

import json

import pytest

from conftest import BASE, RenderError, by_kind, merge, one, render

WORKLOADS = ("Deployment", "Job")


def pod_spec(doc):
    return doc["spec"]["template"]["spec"]


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("values", ["default-values.yaml", "production-values.yaml", "gpu-values.yaml",
                                    "networkpolicy-values.yaml", "quickstart-values.yaml", "gitops-values.yaml"])
def test_selectors_match_their_pod_labels_and_select_nothing_else(values):
    docs = render(files=(values,))
    workloads = by_kind(docs, "Deployment")
    for d in workloads:
        sel = d["spec"]["selector"]["matchLabels"]
        assert selects(sel, d["spec"]["template"]["metadata"]["labels"]), d["metadata"]["name"]
        others = [o for o in workloads if o is not d]
        assert not any(selects(sel, o["spec"]["template"]["metadata"]["labels"]) for o in others), \
            f"{d['metadata']['name']}'s selector also matches another Deployment's pods"
    gateway = one(docs, "Deployment", "-gateway")
    gw_labels = gateway["spec"]["template"]["metadata"]["labels"]
    assert selects(one(docs, "Service")["spec"]["selector"], gw_labels)
    if by_kind(docs, "PodDisruptionBudget"):
        assert selects(one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"], gw_labels)
    for c in pod_spec(gateway).get("topologySpreadConstraints", []):
        assert selects(c["labelSelector"]["matchLabels"], gw_labels)
    # The Service's selector must not pick up node agents or Jobs.
    for d in by_kind(docs, "Deployment") + by_kind(docs, "Job"):
        if d is not gateway:
            assert not selects(one(docs, "Service")["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])


def secret_refs(docs):
    for d in [x for x in docs if x["kind"] in WORKLOADS]:
        for c in pod_spec(d)["containers"]:
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    yield d["metadata"]["name"], e["name"], ref["name"], ref["key"]


def test_existing_secrets_are_referenced_by_name_and_key_and_nothing_is_created():
    values = {"database": {"existingSecret": {"name": "pg", "key": "dsn"}},
              "masterKey": {"existingSecret": {"name": "keys", "key": "mk"}},
              "bootstrap": {"existingSecret": "boot", "key": "b.yaml"},
              "nodeAgent": {"enabled": True, "nodeKey": {"existingSecret": {"name": "nk", "key": "k"}},
                            "groups": {"sandbox": {"engine": {"mode": "remote", "host": "tcp://e:2375"}}}}}
    docs = render(values)
    assert by_kind(docs, "Secret") == []
    refs = {(env, name, key) for _, env, name, key in secret_refs(docs)}
    assert refs == {("DATABASE_URL", "pg", "dsn"), ("CYNODE__SECURITY__MASTER_KEY", "keys", "mk"),
                    ("CYNODE_NODE_KEY", "nk", "k")}
    gw = one(docs, "Deployment", "-gateway")
    vol = next(v for v in pod_spec(gw)["volumes"] if v["name"] == "bootstrap")
    assert vol["secret"] == {"secretName": "boot", "items": [{"key": "b.yaml", "path": "b.yaml"}]}
    args = pod_spec(gw)["containers"][0]["args"]
    assert args[args.index("--bootstrap") + 1] == "/etc/cynode/bootstrap/b.yaml"


def test_quick_start_values_go_to_one_marked_secret_that_every_reference_finds():
    docs = render(files=("quickstart-values.yaml",))
    secret = one(docs, "Secret", "-quickstart")
    assert "quick-start" in " ".join(secret["metadata"]["annotations"])
    assert set(secret["data"]) == {"database-url", "master-key", "node-key"}
    for workload, env, name, key in secret_refs(docs):
        assert name == secret["metadata"]["name"] and key in secret["data"], (workload, env)
    # Secret values never reach annotations (the config checksum hashes names and settings only).
    gw = json.dumps(one(docs, "Deployment", "-gateway"))
    for secret_value in ("quickstart@postgres", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                         "quickstart-node-key-0123456789"):
        assert secret_value not in gw


@pytest.mark.parametrize(("values", "message"), [
    ({}, "no database: set database.existingSecret.name"),
    ({"database": {"url": "postgres://u:p@h/d"}}, "no master key: set masterKey.existingSecret.name"),
    (merge(BASE, {"nodeAgent": {"enabled": True, "groups": {"sandbox": {"engine": {"mode": "none"},
                                                                         "inferenceUrl": "http://i"}}}}),
     "node agents need a node key"),
    (merge(BASE, {"nodeAgent": {"enabled": True, "nodeKey": {"value": "k" * 24}}}),
     "nodeAgent.groups.sandbox.engine.mode must be chosen"),
    (merge(BASE, {"nodeAgent": {"enabled": True, "nodeKey": {"value": "k" * 24},
                                "groups": {"sandbox": {"engine": {"mode": "remote"}}}}}),
     "nodeAgent.groups.sandbox.engine.host is empty"),
    (merge(BASE, {"nodeAgent": {"enabled": True, "nodeKey": {"value": "k" * 24},
                                "groups": {"sandbox": {"engine": {"mode": "hostSocket"}}}}}),
     "acknowledgeRootEquivalent: true"),
    (merge(BASE, {"gateway": {"replicas": 1}}), "gateway.replicas must be at least 2"),
    (merge(BASE, {"gateway": {"autoscaling": {"enabled": True, "minReplicas": 1}}}), "minReplicas must be at least 2"),
    (merge(BASE, {"gateway": {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 3}}}),
     "minReplicas is larger than"),
    (merge(BASE, {"gateway": {"terminationGracePeriodSeconds": 12}}), "terminationGracePeriodSeconds must exceed"),
    (merge(BASE, {"httpRoute": {"enabled": True}}), "httpRoute.enabled needs httpRoute.parentRefs"),
])
def test_incomplete_or_inconsistent_values_fail_with_the_fix(values, message):
    with pytest.raises(RenderError) as err:
        render(values)
    assert message in str(err.value)


def hooks(docs):
    out = {}
    for d in docs:
        ann = d["metadata"].get("annotations") or {}
        if "helm.sh/hook" in ann:
            out[d["kind"]] = (set(ann["helm.sh/hook"].split(",")), int(ann.get("helm.sh/hook-weight", "0")),
                              ann.get("helm.sh/hook-delete-policy"))
    return out


def test_migrations_run_as_a_hook_after_the_quick_start_secret_they_read():
    h = hooks(render(files=("quickstart-values.yaml",)))
    assert h["Job"][0] == h["Secret"][0] == {"pre-install", "pre-upgrade"}
    assert h["Secret"][1] < h["Job"][1], "the Secret must exist before the Job that reads it"
    assert "before-hook-creation" in h["Job"][2]
    assert h["Pod"][0] == {"test"}


def test_migrations_job_is_safe_to_rerun_and_bounded():
    job = one(render(BASE), "Job", "-migrate")
    spec = job["spec"]
    assert pod_spec(job)["containers"][0]["args"] == ["migrate"]
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert spec["activeDeadlineSeconds"] > 0 and spec["backoffLimit"] >= 1


def test_gitops_mode_renders_a_plain_job_named_after_the_image():
    docs = render(files=("gitops-values.yaml",))
    assert hooks(docs).keys() == {"Pod"}, "only the test pod is a hook"
    job = one(docs, "Job")
    assert job["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-1"
    other = one(render(merge({"image": {"tag": "0.2.0"}}, {}), files=("gitops-values.yaml",)), "Job")
    assert job["metadata"]["name"] != other["metadata"]["name"], "a new image must get a new Job"
    assert one(docs, "Secret")["metadata"].get("annotations", {}).get("helm.sh/hook") is None


def test_migrations_can_be_switched_off():
    assert by_kind(render(merge(BASE, {"migrations": {"enabled": False}})), "Job") == []


def test_pdb_and_hpa_are_consistent():
    docs = render(BASE)
    assert one(docs, "Deployment", "-gateway")["spec"]["replicas"] == 2
    assert one(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert by_kind(docs, "HorizontalPodAutoscaler") == []
    docs = render(files=("production-values.yaml",))
    gw, hpa = one(docs, "Deployment", "-gateway"), one(docs, "HorizontalPodAutoscaler")
    assert "replicas" not in gw["spec"], "with an HPA the Deployment must not fight it over replicas"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": gw["metadata"]["name"]}
    assert hpa["spec"]["minReplicas"] > one(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"]
    assert by_kind(render(merge(BASE, {"gateway": {"podDisruptionBudget": {"enabled": False}}})),
                   "PodDisruptionBudget") == []


def test_gateway_probes_and_shutdown():
    gw = one(render(BASE), "Deployment", "-gateway")
    c = pod_spec(gw)["containers"][0]
    assert c["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    sleep = c["lifecycle"]["preStop"]["sleep"]["seconds"]
    # The grace period covers the preStop sleep and the longest request (limits.request_timeout_s = 30).
    assert pod_spec(gw)["terminationGracePeriodSeconds"] >= sleep + 30
    assert gw["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert c["args"][:3] == ["serve", "--listen", "0.0.0.0:8080"]


def test_settings_become_cynode_environment_variables():
    docs = render(files=("production-values.yaml",))
    cm = one(docs, "ConfigMap")
    assert cm["data"]["CYNODE__DATABASE__MAX_CONNECTIONS"] == "24"
    assert cm["data"]["CYNODE__STREAM__CADENCE_MS"] == "1500"
    assert cm["data"]["CYNODE__PUBLIC_URL"] == "https://cynode.example.com"
    assert cm["data"]["CYNODE_LOG_FORMAT"] == "json"
    gw = one(docs, "Deployment", "-gateway")
    assert pod_spec(gw)["containers"][0]["envFrom"] == [{"configMapRef": {"name": cm["metadata"]["name"]}}]


def test_gpu_group_is_off_by_default_and_asks_for_gpus_when_on():
    docs = render(merge(BASE, {"nodeAgent": {"enabled": True, "nodeKey": {"value": "k" * 24},
                                             "groups": {"sandbox": {"engine": {"mode": "remote",
                                                                               "host": "tcp://e:2375"}}}}}))
    gpu = one(docs, "Deployment", "-node-gpu")
    assert gpu["spec"]["replicas"] == 0
    docs = render(files=("gpu-values.yaml",))
    assert [d["metadata"]["name"] for d in by_kind(docs, "Deployment")] == ["rel-cynode-gateway", "rel-cynode-node-gpu"]
    gpu = one(docs, "Deployment", "-node-gpu")
    spec = pod_spec(gpu)
    c = spec["containers"][0]
    assert gpu["spec"]["replicas"] == 2
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert spec["runtimeClassName"] == "nvidia"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert "--no-docker" in c["args"] and "gpu=true" in c["args"]
    # $(HOST_IP) in args is expanded by Kubernetes only when the variable is defined in env.
    assert "http://$(HOST_IP):11434" in c["args"]
    assert any(e["name"] == "HOST_IP" for e in c["env"])


def test_engine_modes_render_as_stated():
    remote = pod_spec(one(render(files=("quickstart-values.yaml",)), "Deployment", "-node-sandbox"))
    env = {e["name"]: e.get("value") for e in remote["containers"][0]["env"]}
    assert env["DOCKER_HOST"] == "tcp://sandbox-engine:2375"
    assert not any("hostPath" in v for v in remote["volumes"])
    host = one(render(files=("hostsocket-values.yaml",)), "Deployment", "-node-sandbox")
    assert host["metadata"]["labels"]["cynode.io/engine-mode"] == "hostSocket"
    spec = pod_spec(host)
    sock = next(v for v in spec["volumes"] if v["name"] == "engine-socket")
    assert sock["hostPath"] == {"path": "/var/run/docker.sock", "type": "Socket"}
    assert spec["securityContext"]["supplementalGroups"] == [988]
    env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    assert env["DOCKER_HOST"] == "unix:///run/cynode-engine/engine.sock"


def test_network_policies_select_the_pods_they_mean():
    docs = render(files=("networkpolicy-values.yaml",))
    pols = {p["metadata"]["name"]: p for p in by_kind(docs, "NetworkPolicy")}
    pods = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
            for d in docs if d["kind"] in WORKLOADS}
    pods.update({d["metadata"]["name"]: d["metadata"]["labels"] for d in by_kind(docs, "Pod")})

    def selected(policy):
        return {n for n, labels in pods.items() if selects(policy["spec"]["podSelector"]["matchLabels"], labels)}

    assert selected(pols["rel-cynode-gateway"]) == {"rel-cynode-gateway"}
    assert selected(pols["rel-cynode-migrations"]) == {"rel-cynode-migrate"}
    assert selected(pols["rel-cynode-node-agents"]) == {"rel-cynode-node-sandbox", "rel-cynode-node-gpu"}
    assert selected(pols["rel-cynode-test"]) == {"rel-cynode-test-readyz"}
    # Every pod the chart runs is under some policy.
    assert set(pods) == set().union(*(selected(p) for p in pols.values()))
    gw = pols["rel-cynode-gateway"]["spec"]
    # The metadata address is excluded from the HTTPS egress.
    https = next(r for r in gw["egress"] if r["ports"] == [{"port": 443, "protocol": "TCP"}])
    assert https["to"][0]["ipBlock"] == {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}
    assert {"port": 5432, "protocol": "TCP"} in [p for r in gw["egress"] for p in r["ports"]]
    assert gw["ingress"][0]["from"] == [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "ingress-nginx"}}}]
    # The peers that point at other pods select them: node agents and the test pod reach the gateway.
    for name in ("rel-cynode-node-agents", "rel-cynode-test"):
        peer = next(r for r in pols[name]["spec"]["egress"] if "podSelector" in r["to"][0])
        assert {n for n, labels in pods.items() if selects(peer["to"][0]["podSelector"]["matchLabels"], labels)} \
            == {"rel-cynode-gateway"}
    for name in ("rel-cynode-gateway-from-nodes", "rel-cynode-gateway-from-test"):
        peer = pols[name]["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
        assert {n for n, labels in pods.items() if selects(peer, labels)} - {"rel-cynode-gateway"}
    assert by_kind(render(BASE), "NetworkPolicy") == []


LONG = "a-release-name-of-fifty-three-characters-long-12345678"[:53]


@pytest.mark.parametrize("values", ["quickstart-values.yaml", "production-values.yaml", "networkpolicy-values.yaml",
                                    "gitops-values.yaml"])
def test_long_release_names_are_truncated_keeping_suffixes(values):
    docs = render(files=(values,), release=LONG)
    names = [d["metadata"]["name"] for d in docs]
    assert all(len(n) <= 63 and not n.endswith("-") for n in names), [n for n in names if len(n) > 63]
    assert len(set((d["kind"], d["metadata"]["name"]) for d in docs)) == len(docs), "names collide"
    for suffix in ("-gateway", "-config"):
        assert any(n.endswith(suffix) for n in names)
    for d in docs:
        for v in d["metadata"].get("labels", {}).values():
            assert len(str(v)) <= 63
    # References still point at what was rendered.
    svc = one(docs, "Service")["metadata"]["name"]
    for d in by_kind(docs, "Deployment"):
        for e in pod_spec(d)["containers"][0].get("env", []):
            if e["name"] == "CYNODE_ORCHESTRATOR_URL":
                assert e["value"] == f"http://{svc}:80"
    for d in by_kind(docs, "Ingress"):
        assert {p["backend"]["service"]["name"] for r in d["spec"]["rules"] for p in r["http"]["paths"]} == {svc}


def test_ingress_and_httproute_expose_the_webhook_paths_and_the_api_only():
    docs = render(files=("production-values.yaml",))
    ing, route = one(docs, "Ingress"), one(docs, "HTTPRoute")
    paths = {p["path"] for p in ing["spec"]["rules"][0]["http"]["paths"]}
    assert paths == {"/slack", "/discord", "/telegram", "/hooks", "/v1"}
    assert ing["spec"]["tls"] == [{"hosts": ["cynode.example.com"], "secretName": "cynode-tls"}]
    # HTTPRoute has no schema in kubernetes-validate: check its structure here.
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] == [{"name": "public", "namespace": "gateways"}]
    rule = route["spec"]["rules"][0]
    assert {m["path"]["value"] for m in rule["matches"]} == paths
    assert all(m["path"]["type"] == "PathPrefix" for m in rule["matches"])
    assert rule["backendRefs"] == [{"name": one(docs, "Service")["metadata"]["name"], "port": 80}]


def test_service_monitor_scrapes_the_gateway_metrics():
    docs = render(files=("production-values.yaml",))
    sm = one(docs, "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "prometheus"
    assert selects(sm["spec"]["selector"]["matchLabels"], one(docs, "Service")["metadata"]["labels"])
    assert sm["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]


def test_helm_test_pod_checks_readyz_through_the_service():
    pod = one(render(BASE), "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["containers"][0]["command"][-1] == "http://rel-cynode:80/readyz"


def test_an_unknown_release_value_does_not_render():
    # Guard for the helper that builds the test: a render error is raised, not swallowed.
    with pytest.raises(RenderError):
        render({"nope": 1})


def test_the_chart_version_follows_the_workspace():
    # The images are tagged with the workspace version (images/build); the chart's default tag is its appVersion.
    import re
    from conftest import CHART, ROOT
    cargo = re.search(r'^version = "([^"]+)"', (ROOT / "Cargo.toml").read_text(), re.M).group(1)
    chart = re.search(r'^appVersion: "([^"]+)"', (CHART / "Chart.yaml").read_text(), re.M).group(1)
    assert chart == cargo
    gw = one(render(BASE), "Deployment", "-gateway")
    assert pod_spec(gw)["containers"][0]["image"] == f"cynode/cynode:{cargo}"


def test_extra_gateway_egress_is_added():
    rule = {"to": [{"ipBlock": {"cidr": "10.9.0.0/16"}}], "ports": [{"port": 8000, "protocol": "TCP"}]}
    docs = render(merge(BASE, {"networkPolicy": {"enabled": True, "gatewayEgress": [rule]}}))
    assert rule in one(docs, "NetworkPolicy", "-gateway")["spec"]["egress"]


def test_a_new_group_needs_only_enabled_replicas_and_an_engine():
    docs = render(merge(BASE, {"nodeAgent": {"enabled": True, "nodeKey": {"value": "k" * 24}, "groups": {
        "sandbox": {"enabled": False}, "gpu": {"enabled": False},
        "build": {"enabled": True, "replicas": 3, "engine": {"mode": "remote", "host": "tcp://e:2375"}}}}}))
    (agent,) = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-node-build")]
    spec = pod_spec(agent)
    args = spec["containers"][0]["args"]
    assert args[:5] == ["run", "--max-jobs", "2", "--warm-pool", "2"]
    assert spec["terminationGracePeriodSeconds"] == 60
    assert agent["spec"]["replicas"] == 3
    assert len(by_kind(docs, "Deployment")) == 2, "disabled groups render nothing"
