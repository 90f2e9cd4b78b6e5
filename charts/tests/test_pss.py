"""The restricted Pod Security Standard over every rendered pod, and proof that the checker bites."""

from __future__ import annotations

import copy

import pytest

import pss
from conftest import BASE, CI_FILES, PRIVILEGED_CI_FILES, merge, render

RESTRICTED_FILES = [f.name for f in CI_FILES if f.name not in PRIVILEGED_CI_FILES]


@pytest.mark.parametrize("values", RESTRICTED_FILES)
def test_every_pod_of_every_ci_file_is_restricted(values):
    docs = render(files=(values,))
    assert sum(1 for _ in pss.pod_specs(docs)) >= 3, "gateway, migrations and test pods at least"
    assert pss.check(docs) == {}


def test_every_pod_has_a_writable_tmp_from_an_empty_dir():
    docs = render(files=("quickstart-values.yaml",))
    for name, _, spec in pss.pod_specs(docs):
        if name.startswith("Pod/"):
            continue  # the test pod writes nothing
        vols = {v["name"]: v for v in spec["volumes"]}
        for c in spec["containers"]:
            tmp = next(m for m in c["volumeMounts"] if m["mountPath"] == "/tmp")
            assert "emptyDir" in vols[tmp["name"]], name


@pytest.mark.parametrize("values", sorted(PRIVILEGED_CI_FILES))
def test_the_privileged_ci_file_fails_the_checker(values):
    found = pss.check(render(files=(values,)))
    assert found == {"Deployment/rel-cynode-node-sandbox": [
        "volume engine-socket is a hostPath (forbidden from baseline up)"]}


@pytest.mark.parametrize(("values", "expected"), [
    ({"securityContext": {"privileged": True}}, "securityContext.privileged is true"),
    ({"securityContext": {"allowPrivilegeEscalation": True}}, "allowPrivilegeEscalation is not false"),
    ({"securityContext": {"readOnlyRootFilesystem": False}}, "readOnlyRootFilesystem is not true"),
    ({"securityContext": {"capabilities": {"drop": []}}}, "capabilities.drop does not include ALL"),
    ({"securityContext": {"capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]}}}, "capabilities.add has"),
    ({"podSecurityContext": {"runAsNonRoot": False}, "securityContext": {"runAsNonRoot": False}},
     "runAsNonRoot is not true"),
    ({"podSecurityContext": {"runAsUser": 0}}, "runAsUser is 0"),
    ({"podSecurityContext": {"seccompProfile": {"type": "Unconfined"}}}, "seccompProfile.type is Unconfined"),
])
def test_weakened_security_contexts_fail_the_checker(values, expected):
    found = pss.check(render(merge(BASE, values)))
    assert {"Deployment/rel-cynode-gateway", "Job/rel-cynode-migrate", "Pod/rel-cynode-test-readyz"} <= set(found)
    assert all(any(expected in p for p in problems) for problems in found.values()), found


def test_the_checker_catches_what_values_cannot_set():
    docs = render(BASE)
    base = next(d for d in docs if d["kind"] == "Deployment")
    cases = {
        "spec.hostNetwork is true": lambda s: s.update(hostNetwork=True),
        "spec.hostPID is true": lambda s: s.update(hostPID=True),
        "has hostPort 8080": lambda s: s["containers"][0]["ports"][0].update(hostPort=8080),
        "spec.automountServiceAccountToken is not false": lambda s: s.pop("automountServiceAccountToken"),
        "has type ['nfs']": lambda s: s["volumes"].append({"name": "n", "nfs": {"server": "x", "path": "/"}}),
        "not a safe sysctl": lambda s: s["securityContext"].update(sysctls=[{"name": "kernel.msgmax", "value": "1"}]),
        "initContainers[init].securityContext.privileged is true":
            lambda s: s.update(initContainers=[{"name": "init", "securityContext": {"privileged": True}}]),
    }
    for expected, mutate in cases.items():
        doc = copy.deepcopy(base)
        mutate(doc["spec"]["template"]["spec"])
        problems = pss.check([doc])
        assert any(expected in p for p in problems.get(f"Deployment/{doc['metadata']['name']}", [])), \
            (expected, problems)


def test_the_command_line_exits_non_zero_on_a_violation(tmp_path, capsys):
    import yaml
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump_all(render(files=("hostsocket-values.yaml",))))
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump_all(render(files=("default-values.yaml",))))
    assert pss.main([str(good)]) == 0
    assert pss.main([str(bad)]) == 1
    assert "1 violate the restricted Pod Security Standard" in capsys.readouterr().out
