"""The shipped operations files: Prometheus config and rules, Grafana, compose, Kubernetes.

No cluster and no Docker engine here: ``promtool`` (Debian's ``prometheus`` package, which
``.ci/run`` installs) checks the Prometheus files, ``kubernetes-validate`` checks the core
Kubernetes manifests against the API schemas offline, and the rest is parsed and compared
with the settings and the metrics the worker declares.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams import metrics
from streams.settings import Settings, env_name

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
_NAME = re.compile(r"\b(ragstream_[a-z_]+|process_[a-z_]+|up)\b")
_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")
# Collected by the worker's endpoint (ragstream.endpoints), not declared in streams.metrics.
_ALL_INTERFACES = "0.0.0.0"  # noqa: S104  # what a container or pod must bind (checked, not bound)
_ENDPOINT_METRICS = {"ragstream_consumer_lag", "ragstream_consumer_assigned_partitions"}


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: .ci/run installs Debian's prometheus package")
        pytest.skip("promtool not installed (apt-get install -y prometheus)")
    return found


def _declared_metrics() -> set[str]:
    """Every sample name ``/metrics`` can carry."""
    text = metrics.exposition().decode()
    declared = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    declared |= _ENDPOINT_METRICS
    return declared | {n + s for n in declared for s in _SUFFIXES} | {"up"}


def _yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _k8s() -> dict[str, dict[str, Any]]:
    """The manifests of the kustomization, by kind."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    out = {}
    for name in kustomization["resources"]:
        for doc in _yaml_docs(K8S / name):
            out[doc["kind"]] = doc
    return out


def _setting_names() -> set[str]:
    """Every environment variable ``Settings`` reads."""
    names = {env_name(Settings, f) for f in Settings.model_fields}
    for section in Settings._sections():
        names |= {env_name(section, f) for f in section.model_fields}
    return names


def test_promtool_checks_the_rules_and_the_config() -> None:
    """``promtool check rules`` and ``check config`` pass on the shipped files."""
    promtool = _promtool()
    for args in (
        ["check", "rules", str(DEPLOY / "prometheus/alerts.yml")],
        ["check", "config", str(DEPLOY / "prometheus/prometheus.yml")],
    ):
        done = subprocess.run([promtool, *args], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr


def test_alert_rules_cover_the_four_conditions_with_real_metrics() -> None:
    """Worker down, breaker open > 1 min, lag growing 5 min, dead-letter rate; real names."""
    rules = {
        r["alert"]: r
        for g in yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())["groups"]
        for r in g["rules"]
    }
    assert rules["RagstreamWorkerDown"]["expr"].startswith("up{")
    assert (
        rules["RagstreamBreakerOpen"]["for"] == "1m"
        and "== 2" in rules["RagstreamBreakerOpen"]["expr"]
    )
    assert rules["RagstreamConsumerLagGrowing"]["for"] == "5m"
    assert "ragstream_dead_letters_total" in rules["RagstreamDeadLetterRate"]["expr"]
    used = {n for r in rules.values() for n in _NAME.findall(r["expr"])}
    assert used <= _declared_metrics(), used - _declared_metrics()


def test_dashboard_queries_only_declared_metrics() -> None:
    """Every metric name in the Grafana dashboard is one the worker declares."""
    dashboard = json.loads((DEPLOY / "grafana/dashboards/ragstream.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {n for e in exprs for n in _NAME.findall(e)}
    assert {"ragstream_consumer_lag", "ragstream_breaker_state"} <= used
    assert used <= _declared_metrics(), used - _declared_metrics()
    datasource = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {datasource["uid"]}


def test_compose_wires_prometheus_grafana_and_the_worker_probe() -> None:
    """Prometheus scrapes the worker's port with the rules; Grafana loads the dashboard."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    worker_env = compose["worker"]["environment"]
    port = int(worker_env["RAGSTREAM_HTTP_PORT"])
    assert worker_env["RAGSTREAM_HTTP_HOST"] == _ALL_INTERFACES  # reachable from Prometheus
    probe = " ".join(compose["worker"]["healthcheck"]["test"])
    assert "/health/live" in probe and "$${RAGSTREAM_HTTP_PORT:-6066}" in probe
    assert "./deploy/prometheus:/etc/prometheus:ro" in compose["prometheus"]["volumes"]
    scrape = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    [job] = scrape["scrape_configs"]
    assert job["job_name"] == "ragstream"  # the alert rules select job="ragstream"
    assert job["dns_sd_configs"][0]["port"] == port
    assert job["dns_sd_configs"][0]["names"] == ["worker"]
    provider = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/ragstream.yml").read_text()
    )
    dashboards = provider["providers"][0]["options"]["path"]
    assert f"./deploy/grafana/dashboards:{dashboards}:ro" in compose["grafana"]["volumes"]
    assert (
        "${GRAFANA_ADMIN_PASSWORD:?"
        in compose["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    )


def test_kubernetes_core_manifests_validate_against_the_api_schemas() -> None:
    """``kubernetes-validate --strict`` accepts the core resources (CRDs have no schema there)."""
    core = ["configmap.yaml", "deployment.yaml", "service.yaml", "pdb.yaml"]
    done = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", *(str(K8S / f) for f in core)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("passed") == len(core), done.stdout


def test_kubernetes_probes_ports_and_environment_match_the_settings() -> None:
    """Probes hit the worker's endpoints on its port; every variable is a setting."""
    k8s = _k8s()
    config = k8s["ConfigMap"]["data"]
    port = int(config["RAGSTREAM_HTTP_PORT"])
    assert config["RAGSTREAM_HTTP_HOST"] == _ALL_INTERFACES  # the kubelet probes the pod IP
    pod = k8s["Deployment"]["spec"]["template"]
    [container] = pod["spec"]["containers"]
    [http] = container["ports"]
    assert http["containerPort"] == port and http["name"] == "http"
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/health/live"
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)

    known = _setting_names()
    env = {e["name"]: e for e in container["env"]}
    assert set(config) <= known, set(config) - known
    for name in env:
        assert name.removesuffix("_FILE") in known, name
    # Secrets only as files from the mounted Secret, never as values or env vars.
    secret_mount = next(m for m in container["volumeMounts"] if m["name"] == "secrets")
    files = {n: e["value"] for n, e in env.items() if n.endswith("_FILE")}
    assert {"JWT_SECRET_KEY_FILE", "DATABASE_URL_FILE"} <= set(files)
    assert all(v.startswith(secret_mount["mountPath"] + "/") for v in files.values())
    assert not {"JWT_SECRET_KEY", "DATABASE_URL"} & (set(config) | set(env))
    # A read-only image: writable mounts only for the data dir and /tmp.
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert env["RAGSTREAM_DATA_DIR"]["value"] in mounts and "/tmp" in mounts  # noqa: S108


def test_kubernetes_configmap_values_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ConfigMap, as the worker's environment, parses into production settings."""
    config = _k8s()["ConfigMap"]["data"]
    for key, value in config.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.env == "production"
    assert settings.operations.http_port == int(config["RAGSTREAM_HTTP_PORT"])
    assert settings.kafka.partitions == int(config["KAFKA_PARTITIONS"])


def test_kubernetes_scaling_disruption_and_scrape_objects() -> None:
    """KEDA scales on lag up to the partition count; the PDB and ServiceMonitor select it."""
    k8s = _k8s()
    config = k8s["ConfigMap"]["data"]
    labels = k8s["Deployment"]["spec"]["selector"]["matchLabels"]
    scaled = k8s["ScaledObject"]["spec"]
    assert scaled["scaleTargetRef"]["name"] == k8s["Deployment"]["metadata"]["name"]
    assert scaled["maxReplicaCount"] == int(config["KAFKA_PARTITIONS"])
    prefix, group = config["RAGSTREAM_TOPIC_PREFIX"], config["KAFKA_CONSUMER_GROUP"]
    assert {t["metadata"]["topic"] for t in scaled["triggers"]} == {
        f"{prefix}.documents",
        f"{prefix}.search-requests",
    }
    for trigger in scaled["triggers"]:
        assert trigger["type"] == "kafka"
        assert trigger["metadata"]["consumerGroup"] == group
        assert trigger["metadata"]["bootstrapServers"] == config["KAFKA_BOOTSTRAP_SERVERS"]
    assert k8s["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == labels
    assert k8s["Service"]["spec"]["selector"] == labels
    monitor = k8s["ServiceMonitor"]["spec"]
    assert monitor["endpoints"][0] == {"port": "http", "path": "/metrics", "interval": "15s"}
    assert monitor["selector"]["matchLabels"] == labels
