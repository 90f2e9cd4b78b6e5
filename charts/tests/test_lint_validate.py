"""Helm lint and Kubernetes schema validation of every ci values file, with Helm 3 and Helm 4."""

from __future__ import annotations

import kubernetes_validate
import pytest

from conftest import CI_FILES, RenderError, helm, render

# Oldest and newest Kubernetes versions the chart supports (Chart.yaml kubeVersion: >=1.30; the preStop `sleep`
# action needs 1.30) and that kubernetes-validate has schemas for.
KUBE_VERSIONS = ["1.30", "1.37"]
# Kinds kubernetes-validate has no schema for; test_templates.py checks their structure itself.
NO_SCHEMA = {"HTTPRoute", "ServiceMonitor"}
FILES = [f.name for f in CI_FILES]


def validate(docs, version):
    """Problems kubernetes-validate --strict finds, one per resource."""
    problems = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            if doc["kind"] not in NO_SCHEMA:
                problems.append(f"{doc['kind']}/{doc['metadata']['name']}: no schema for {doc['apiVersion']}")
        except kubernetes_validate.ValidationError as e:
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {e.message}")
    return problems


def test_the_helm_binaries_are_the_pinned_versions():
    assert helm("helm3", "version", "--short").stdout.startswith("v3.17.3")
    assert helm("helm4", "version", "--short").stdout.startswith("v4.1.4")


def test_there_are_ci_files_for_each_feature():
    assert {"default-values.yaml", "production-values.yaml", "gpu-values.yaml", "gitops-values.yaml",
            "networkpolicy-values.yaml", "quickstart-values.yaml", "hostsocket-values.yaml"} <= set(FILES)


@pytest.mark.parametrize("which", ["helm3", "helm4"])
@pytest.mark.parametrize("values", FILES)
def test_helm_lint_strict(which, values):
    done = helm(which, "lint", "--strict", "charts/cynode", "-f", f"charts/cynode/ci/{values}")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("which", ["helm3", "helm4"])
@pytest.mark.parametrize("values", FILES)
def test_rendered_manifests_are_valid_kubernetes(which, values):
    docs = render(files=(values,), which=which)
    assert docs, "nothing rendered"
    for version in KUBE_VERSIONS:
        assert validate(docs, version) == [], f"Kubernetes {version}"


def test_both_helm_versions_render_the_same_manifests():
    for values in FILES:
        assert render(files=(values,), which="helm3") == render(files=(values,), which="helm4"), values


def test_a_broken_template_fails_validation(broken_chart):
    # The gate bites: a misspelt field in a template is an error for kubernetes-validate --strict.
    t = broken_chart / "templates" / "gateway-deployment.yaml"
    t.write_text(t.read_text().replace("containerPort:", "containerport:"))
    docs = render(files=("default-values.yaml",), chart=broken_chart)
    problems = validate(docs, "1.37")
    assert any("containerPort" in p or "containerport" in p for p in problems), problems


def test_a_broken_template_fails_lint(broken_chart):
    t = broken_chart / "templates" / "gateway-service.yaml"
    t.write_text(t.read_text().replace("{{- end }}", "{{- end }}\n{{ if }}"))
    for which in ("helm3", "helm4"):
        done = helm(which, "lint", "--strict", str(broken_chart), "-f", "charts/cynode/ci/default-values.yaml")
        assert done.returncode != 0
        assert "gateway-service.yaml" in done.stdout + done.stderr
    with pytest.raises(RenderError):
        render(files=("default-values.yaml",), chart=broken_chart)
