"""deploy/kubernetes/: the manifests validate offline against the Kubernetes API schemas
(kubernetes-validate ships them), and agree with chute's own configuration and endpoints."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from chute.core import config
from tests.conftest import ROOT

K8S = ROOT / "deploy" / "kubernetes"
NOT_CORE = {"Kustomization", "ServiceMonitor"}  # CRDs / tooling: no upstream schema; checked by hand below


def docs() -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            out[doc["kind"]] = doc
    return out


def test_every_manifest_validates_strictly() -> None:
    version = kubernetes_validate.latest_version()
    checked = 0
    for kind, doc in docs().items():
        if kind in NOT_CORE:
            continue
        kubernetes_validate.validate(doc, version, strict=True)
        checked += 1
    assert checked >= 5


def test_validation_catches_a_broken_manifest() -> None:
    """Negative control: the validator is not a rubber stamp."""
    version = kubernetes_validate.latest_version()
    sts = copy.deepcopy(docs()["StatefulSet"])
    sts["spec"]["template"]["spec"]["containers"][0]["resourcez"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, version, strict=True)
    sts = copy.deepcopy(docs()["StatefulSet"])
    sts["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, version, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    listed = set(docs()["Kustomization"]["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kubectl_kustomize_builds_offline() -> None:
    proc = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(proc.stdout)]
    assert {"StatefulSet", "ConfigMap", "Secret", "Service", "ServiceMonitor"} <= set(kinds)


def test_the_pod_matches_chutes_config_and_endpoints(tmp_path: Path) -> None:
    d = docs()
    toml = d["ConfigMap"]["data"]["chute.toml"]
    (tmp_path / "chute.toml").write_text(toml)
    assert config.check_file(tmp_path / "chute.toml") == []
    values, _ = config.read_file(tmp_path / "chute.toml")
    pod = d["StatefulSet"]["spec"]["template"]["spec"]
    box = pod["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in box["volumeMounts"]}
    assert str(values["state_dir"]) == mounts["state"] and box["args"][-1] == mounts["data"]
    assert str(values["password_file"]).startswith(mounts["secret"] + "/")
    assert d["Secret"]["stringData"].keys() == {Path(values["password_file"]).name}
    port = int(values["metrics_addr"].rsplit(":", 1)[1])
    assert box["ports"][0] == {"name": "metrics", "containerPort": port}
    assert box["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert box["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert "--no-ui" in box["args"] and "--config" in box["args"]
    assert box["resources"]["requests"]["memory"] == "1Gi" and "memory" in box["resources"]["limits"]
    assert box["securityContext"]["readOnlyRootFilesystem"] is True and pod["securityContext"]["runAsUser"] == 10001
    claims = {c["metadata"]["name"] for c in d["StatefulSet"]["spec"]["volumeClaimTemplates"]}
    assert claims == {"data", "state"}
    service, monitor = d["Service"], d["ServiceMonitor"]
    labels = d["StatefulSet"]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"] == labels
    assert monitor["spec"]["selector"]["matchLabels"] == service["metadata"]["labels"]
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"] == "metrics"
    assert service["metadata"]["annotations"]["prometheus.io/port"] == str(port)
