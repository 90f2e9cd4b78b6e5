"""A checker of the restricted Pod Security Standard (Kubernetes 1.30+), written for CyNode's chart gate.

It covers the baseline and restricted profiles' pod-level controls (host namespaces, privileged containers,
capabilities, hostPath and other volume types, host ports, AppArmor, SELinux, /proc mount, seccomp, sysctls,
privilege escalation, running as non-root) plus CyNode's own rules: a read-only root filesystem and no
service-account token. Usage as a command: ``python pss.py RENDERED.yaml...`` (exit 1 on a violation).
"""

from __future__ import annotations

import sys
from typing import Any, Iterable, Iterator

import yaml

RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


def pod_specs(docs: Iterable[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Yields (``Kind/name``, pod metadata, pod spec) for every pod a set of manifests would create."""
    for doc in docs:
        if not doc:
            continue
        kind, name = doc.get("kind"), doc.get("metadata", {}).get("name")
        if kind == "Pod":
            yield f"Pod/{name}", doc.get("metadata", {}), doc.get("spec", {})
        elif kind in POD_TEMPLATE_KINDS:
            tpl = doc["spec"]["template"]
            yield f"{kind}/{name}", tpl.get("metadata", {}), tpl.get("spec", {})
        elif kind == "CronJob":
            tpl = doc["spec"]["jobTemplate"]["spec"]["template"]
            yield f"CronJob/{name}", tpl.get("metadata", {}), tpl.get("spec", {})


def _containers(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(field) or []:
            yield f"{field}[{c.get('name')}]", c


def check_pod(meta: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    """Every violation of one pod, each a sentence naming the field."""
    out: list[str] = []
    psc = spec.get("securityContext") or {}
    # Baseline: host namespaces and ports.
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            out.append(f"spec.{field} is true (host namespaces are forbidden)")
    # Baseline: volumes; restricted: only the listed types.
    for v in spec.get("volumes") or []:
        kinds = [k for k in v if k != "name"]
        if "hostPath" in kinds:
            out.append(f"volume {v.get('name')} is a hostPath (forbidden from baseline up)")
        elif not set(kinds) <= RESTRICTED_VOLUMES:
            out.append(f"volume {v.get('name')} has type {kinds} (restricted allows {sorted(RESTRICTED_VOLUMES)})")
    # Baseline: sysctls.
    for s in psc.get("sysctls") or []:
        if s.get("name") not in SAFE_SYSCTLS:
            out.append(f"spec.securityContext.sysctls sets {s.get('name')} (not a safe sysctl)")
    # Baseline: AppArmor (field and annotations), SELinux, seccomp at the pod level.
    for key, value in (meta.get("annotations") or {}).items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and not (
            value == "runtime/default" or str(value).startswith("localhost/")):
            out.append(f"annotation {key}={value} (AppArmor must be runtime/default or localhost/*)")
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    pod_non_root = psc.get("runAsNonRoot")
    if psc.get("runAsUser") == 0:
        out.append("spec.securityContext.runAsUser is 0")
    out += _apparmor_selinux("spec.securityContext", psc)
    if pod_seccomp not in (None, "RuntimeDefault", "Localhost"):
        out.append(f"spec.securityContext.seccompProfile.type is {pod_seccomp} (RuntimeDefault or Localhost)")
    # CyNode: no service-account token in any pod.
    if spec.get("automountServiceAccountToken") is not False:
        out.append("spec.automountServiceAccountToken is not false (CyNode needs no Kubernetes API token)")
    for where, c in _containers(spec):
        sc = c.get("securityContext") or {}
        at = f"{where}.securityContext"
        if sc.get("privileged"):
            out.append(f"{at}.privileged is true")
        caps = sc.get("capabilities") or {}
        added = set(caps.get("add") or []) - {"NET_BIND_SERVICE"}
        if added:
            out.append(f"{at}.capabilities.add has {sorted(added)} (restricted allows NET_BIND_SERVICE only)")
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{at}.capabilities.drop does not include ALL")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{at}.allowPrivilegeEscalation is not false")
        non_root = sc.get("runAsNonRoot", pod_non_root)
        if non_root is not True:
            out.append(f"{at}.runAsNonRoot is not true (nor set on the pod)")
        if sc.get("runAsUser") == 0:
            out.append(f"{at}.runAsUser is 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"{at}.seccompProfile.type is {seccomp} (RuntimeDefault or Localhost, here or on the pod)")
        if sc.get("procMount") not in (None, "Default"):
            out.append(f"{at}.procMount is {sc.get('procMount')}")
        out += _apparmor_selinux(at, sc)
        if sc.get("readOnlyRootFilesystem") is not True:
            out.append(f"{at}.readOnlyRootFilesystem is not true")
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                out.append(f"{where} port {p.get('containerPort')} has hostPort {p['hostPort']}")
    return out


def _apparmor_selinux(at: str, sc: dict[str, Any]) -> list[str]:
    out = []
    aa = (sc.get("appArmorProfile") or {}).get("type")
    if aa not in (None, "RuntimeDefault", "Localhost"):
        out.append(f"{at}.appArmorProfile.type is {aa}")
    se = sc.get("seLinuxOptions") or {}
    if se.get("type") not in (None, "", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"):
        out.append(f"{at}.seLinuxOptions.type is {se.get('type')}")
    if se.get("user") or se.get("role"):
        out.append(f"{at}.seLinuxOptions sets user or role")
    return out


def check(docs: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    """Violations by pod (``Kind/name``); pods without any are left out."""
    found = {}
    for name, meta, spec in pod_specs(docs):
        problems = check_pod(meta, spec)
        if problems:
            found[name] = problems
    return found


def main(paths: list[str]) -> int:
    docs = [d for p in paths for d in yaml.safe_load_all(open(p, encoding="utf-8"))]
    found = check(docs)
    for pod, problems in found.items():
        for p in problems:
            print(f"{pod}: {p}")
    pods = sum(1 for _ in pod_specs(docs))
    print(f"pss: {pods} pods checked, {len(found)} violate the restricted Pod Security Standard")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
