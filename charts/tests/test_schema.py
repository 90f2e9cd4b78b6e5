"""values.schema.json: the defaults and every ci file validate; wrong types and unknown keys fail with a message
(from the schema itself and from Helm, which applies it on template/install/upgrade)."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from conftest import BASE, CHART, CI_FILES, RenderError, merge, render

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())


def errors(values):
    v = jsonschema.Draft7Validator(SCHEMA)
    return sorted(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in v.iter_errors(values))


def test_the_schema_is_a_valid_draft7_schema():
    jsonschema.Draft7Validator.check_schema(SCHEMA)


def test_the_defaults_validate():
    assert errors(DEFAULTS) == []


@pytest.mark.parametrize("values", [f.name for f in CI_FILES])
def test_every_ci_file_validates(values):
    assert errors(merge(DEFAULTS, yaml.safe_load((CHART / "ci" / values).read_text()))) == []


def walk(schema, path="$"):
    yield path, schema
    for key, sub in (schema.get("properties") or {}).items():
        yield from walk(sub, f"{path}.{key}")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}.*")
    if isinstance(schema.get("items"), dict):
        yield from walk(schema["items"], f"{path}[]")


def test_every_object_rejects_unknown_keys_and_every_value_is_documented():
    # Objects either close their keys or constrain them (maps of strings, passed-through Kubernetes objects).
    for path, s in walk(SCHEMA):
        if s.get("type") == "object" and "properties" in s:
            assert s.get("additionalProperties") is False, f"{path} accepts unknown keys"
        if path != "$" and not path.endswith("[]") and not path.endswith(".*"):
            assert s.get("description"), f"{path} has no description"


def test_every_default_value_has_a_schema_entry():
    def keys(d, path=()):
        for k, v in d.items():
            yield path + (k,)
            if isinstance(v, dict) and v:
                yield from keys(v, path + (k,))
    for key in keys(DEFAULTS):
        node = SCHEMA
        for k in key:
            props = node.get("properties")
            if props is None:
                break
            assert k in props, f"values.yaml key {'.'.join(key)} is not in the schema"
            node = props[k]


# (values, the schema's message, a word both Helm versions' messages contain: the key or field at fault)
WRONG = [
    ({"gatway": {"replicas": 2}}, "Additional properties are not allowed ('gatway' was unexpected)", "gatway"),
    ({"gateway": {"replica": 2}}, "Additional properties are not allowed ('replica' was unexpected)", "replica"),
    ({"gateway": {"replicas": "two"}}, "'two' is not of type 'integer'", "replicas"),
    ({"gateway": {"replicas": 0}}, "0 is less than the minimum of 1", "replicas"),
    ({"config": {"logFormat": "xml"}}, "'xml' is not one of ['json', 'pretty']", "logFormat"),
    ({"config": {"settings": {"stream.cadence_ms": [1]}}}, "[1] is not of type 'string', 'number', 'boolean'",
     "stream.cadence_ms"),
    ({"config": {"settings": {"CADENCE": 1}}}, "'CADENCE' does not match", "CADENCE"),
    ({"database": {"url": "mysql://x"}}, "'mysql://x' does not match", "url"),
    ({"masterKey": {"value": "short"}}, "'short' does not match", "value"),
    ({"nodeAgent": {"groups": {"sandbox": {"engine": {"mode": "dind"}}}}}, "'dind' is not one of", "mode"),
    ({"nodeAgent": {"groups": {"Bad_Name": {"enabled": True, "replicas": 1, "engine": {"mode": "none"}}}}},
     "'Bad_Name' does not match", "Bad_Name"),
    ({"nodeAgent": {"groups": {"sandbox": {"gpus": -1}}}}, "-1 is less than the minimum of 0", "gpus"),
    ({"securityContext": {"privilegd": True}}, "('privilegd' was unexpected)", "privilegd"),
    ({"gateway": {"tolerations": [{"key": "a", "operator": "Maybe"}]}}, "'Maybe' is not one of", "operator"),
    ({"service": {"port": 70000}}, "70000 is greater than the maximum of 65535", "port"),
    ({"gateway": {"podLabels": {"app.kubernetes.io/component": "x"}}}, "should not be valid under",
     "app.kubernetes.io/component"),
]


@pytest.mark.parametrize("which", ["helm3", "helm4"])
@pytest.mark.parametrize(("values", "message", "word"), WRONG)
def test_wrong_values_and_unknown_keys_fail_with_a_message(values, message, word, which):
    # The schema names the problem...
    assert any(message in e for e in errors(merge(DEFAULTS, values))), errors(merge(DEFAULTS, values))
    # ...and Helm refuses to render with it, naming the key at fault.
    with pytest.raises(RenderError) as err:
        render(merge(BASE, values), which=which)
    assert "values don't meet the specifications of the schema" in str(err.value)
    assert word in str(err.value), str(err.value)
