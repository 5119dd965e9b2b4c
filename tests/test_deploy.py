"""The deployment: docker-compose.yml's own command lines run against the embedded services.

Nothing here is a copy of the compose file: each service's ``command``, ``environment``,
``working_dir`` and ``volumes`` are read from it and run as processes on loopback. Three things
are translated, as a container runtime would: the container paths of the service's volumes
become local folders (the shared volume → a temporary folder, ``./deploy/data`` → the
repository's folder), ``--metrics-port`` gets a free local port, and the Kafka/Redis addresses
and ``STYLESTREAM_METRICS_HOST`` point at loopback. The init/retrain runs get small sizes
appended (``--items 40 ...``) so the network trains in seconds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from scripts.embedded import EmbeddedServices, free_port, start_services, stop_processes
from tests.streaming_helpers import event_bytes, produce, read_until, wait_for

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "stylestream.json"
#: appended to the init/retrain command (argparse: the last value wins): a small, fast network
SMALL = ["--items", "40", "--users", "10", "--history-events", "600", "--epochs", "1"]
WORKERS = ("stream", "rerank")


def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def interpolate(value: str) -> str:
    """``${VAR:-default}`` as docker-compose resolves it."""
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: os.environ.get(m[1]) or m[2], value)


# ---- the dashboard's queries --------------------------------------------------------------

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
                "or", "unless", "offset"}


def dashboard_metrics() -> set[str]:
    """Every metric name a panel of the Grafana dashboard queries."""
    names: set[str] = set()
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)  # label matchers, ranges
            expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
            for match in re.finditer(r"[A-Za-z_:][\w:]*", expr):
                rest = expr[match.end():].lstrip()
                if not rest.startswith("(") and match[0] not in PROMQL_WORDS:
                    names.add(match[0])
    return names


def scrape(port: int) -> dict[str, list[tuple[str, float]]]:
    """``/metrics`` over HTTP → {metric name: [(labels, value), ...]}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    series: dict[str, list[tuple[str, float]]] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            head, value = line.rsplit(" ", 1)
            name, _, labels = head.partition("{")
            series.setdefault(name, []).append((labels.rstrip("}"), float(value)))
    return series


def total(series: dict, name: str) -> float:
    return sum(v for _, v in series.get(name, []))


# ---- running compose services locally -------------------------------------------------------

@dataclass
class Deployment:
    services: EmbeddedServices
    home: Path
    logs: Path
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def volume_map(self, service: dict) -> dict[str, Path]:
        mapping = {}
        for volume in service.get("volumes", []):
            source, target = interpolate(volume).split(":")[:2]
            mapping[target] = self.home if source == "stylestream-home" else (REPO / source)
        return mapping

    def command(self, name: str, extra: list[str] | None = None) -> tuple[list[str], dict, Path]:
        """(argv, env, cwd) of compose service ``name``, translated to this machine."""
        service = compose()["services"][name]
        command = list(service["command"])
        assert command[0] == "stylestream", f"{name} does not run the stylestream command"
        volumes = self.volume_map(service)
        args = []
        for arg in command[1:]:
            for target, local in volumes.items():
                if arg == target or arg.startswith(target + "/"):
                    arg = str(local) + arg[len(target):]
            args.append(arg)
        if "--metrics-port" in args:
            k = args.index("--metrics-port") + 1
            self.ports[name] = free_port()
            args[k] = str(self.ports[name])
        env = dict(os.environ, **{k: interpolate(str(v))
                                  for k, v in service.get("environment", {}).items()})
        env.update(self.services.env(), STYLESTREAM_HOME=str(self.home),
                   STYLESTREAM_METRICS_HOST="127.0.0.1", PYTHONPATH=str(REPO))
        cwd = volumes[service["working_dir"]]
        return [sys.executable, "-m", "scripts.cli", *args, *(extra or [])], env, cwd

    def run_once(self, name: str, extra: list[str] | None = None) -> Path:
        argv, env, cwd = self.command(name, extra)
        log = self.logs / f"{name}.log"
        with log.open("wb") as out:
            done = subprocess.run(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                  timeout=600)
        assert done.returncode == 0, f"compose service {name} failed:\n{log.read_text()}"
        return log

    def start(self, name: str) -> None:
        argv, env, cwd = self.command(name)
        self.procs[name] = subprocess.Popen(argv, env=env, cwd=cwd,
                                            stdout=(self.logs / f"{name}.out").open("wb"),
                                            stderr=(self.logs / f"{name}.log").open("wb"))


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("deploy")
    (root / "home").mkdir()
    (root / "logs").mkdir()
    with start_services(partitions=2, workdir=str(root / "services")) as svc:
        dep = Deployment(svc, root / "home", root / "logs")
        dep.run_once("topics")
        dep.run_once("init", SMALL)
        for name in WORKERS:
            dep.start(name)
        try:
            yield dep
        finally:
            stop_processes(*dep.procs.values())


def lists_for(dep: Deployment, user: str, accept, timeout: float = 90.0) -> list[dict]:
    records = read_until(dep.services, "recommendations", lambda rs: any(
        accept(json.loads(r.value)) for r in rs if r.key == user.encode()), timeout=timeout)
    return [json.loads(r.value) for r in records if r.key == user.encode()]


# ---- tests that read the files ------------------------------------------------------------

def test_docker_compose_accepts_the_files(tmp_path: Path) -> None:
    """Catches a compose file (or the GPU overlay with its env file) that docker-compose
    refuses: bad keys, a wrong depends_on condition, broken anchors. A deliberately broken copy
    must be refused, so the check itself is shown to bite."""
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is missing: `apt-get install -y docker-compose` (.ci/run does)"

    def check(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
        return subprocess.run([binary, *args, "config", "-q"], capture_output=True, text=True,
                              cwd=cwd, timeout=60)

    assert (res := check("-f", "docker-compose.yml")).returncode == 0, res.stderr
    res = check("--env-file", "deploy/gpu.env", "-f", "docker-compose.yml",
                "-f", "docker-compose.gpu.yml")
    assert res.returncode == 0, res.stderr
    broken = COMPOSE_FILE.read_text().replace("service_completed_successfully",
                                              "service_finished", 1)
    (tmp_path / "docker-compose.yml").write_text(broken)
    assert check("-f", str(tmp_path / "docker-compose.yml")).returncode != 0


def test_compose_wiring_prometheus_finds_the_workers() -> None:
    """Catches Prometheus scraping a port or service name the workers do not serve, a worker
    bound to loopback inside its container (unscrapable), and a rerank service that does not
    serve the network init built, or starts before it is built."""
    services = compose()["services"]
    scrape_configs = yaml.safe_load((REPO / "deploy" / "prometheus.yml").read_text())[
        "scrape_configs"]
    scraped = {(sd["names"][0], sd["port"]) for job in scrape_configs
               for sd in job["dns_sd_configs"]}
    for name in WORKERS:
        command = services[name]["command"]
        port = int(command[command.index("--metrics-port") + 1])
        assert (name, port) in scraped
        assert services[name]["environment"]["STYLESTREAM_METRICS_HOST"] == "0.0.0.0"
    rerank = services["rerank"]["command"]
    assert {"--features", "--checkpoint", "--catalog"} <= set(rerank)
    assert services["rerank"]["depends_on"]["init"]["condition"] == \
        "service_completed_successfully"
    assert services["init"]["working_dir"] == services["rerank"]["working_dir"]
    assert "--retrain" in services["retrain"]["command"]


def test_dashboard_answers_the_operational_questions() -> None:
    """Catches a dashboard that lost one of the views operators need: events/s by behaviour,
    DLQ rate, duplicates, freshness p50/p99, rerank latency, lists/s, Redis retries and the
    model version."""
    exprs = [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"]
             for t in p["targets"]]

    def has(*parts: str) -> bool:
        return any(all(p in e for p in parts) for e in exprs)

    assert has("sum by (behavior)", "rate(stylestream_events_total")
    assert has("rate(stylestream_invalid_events_total")
    assert has("rate(stylestream_duplicate_events_total")
    assert has("histogram_quantile(0.5", "stylestream_freshness_seconds_bucket")
    assert has("histogram_quantile(0.99", "stylestream_freshness_seconds_bucket")
    assert has("stylestream_rerank_seconds_bucket")
    assert has("rate(stylestream_recommendations_published_total")
    assert has("rate(stylestream_redis_retries_total")
    assert has("by (version)", "stylestream_model_info")
    assert dashboard_metrics() >= {"stylestream_events_total", "stylestream_model_info"}


def test_dockerfile_cpu_image_and_gpu_variant() -> None:
    """Catches an image that would miss a package of the project, install the CUDA build of
    torch by default (gigabytes for a CPU container), or a GPU variant whose faiss is not the
    declared `gpu` extra."""
    import tomllib

    dockerfile = (REPO / "Dockerfile").read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", dockerfile, re.MULTILINE))
    assert args["TORCH_INDEX"] == "https://download.pytorch.org/whl/cpu"
    assert args["FAISS"] == "faiss-cpu"
    assert '--extra-index-url "$TORCH_INDEX"' in dockerfile
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]:
        package = pattern.rstrip("*")
        assert f"COPY {package} ./{package}" in dockerfile, f"{package} is not in the image"
    gpu_extra = project["project"]["optional-dependencies"]["gpu"]
    gpu_env = dict(line.split("=", 1) for line in (REPO / "deploy" / "gpu.env").read_text()
                   .splitlines() if line and not line.startswith("#"))
    assert any(spec.startswith(gpu_env["STYLESTREAM_FAISS"]) for spec in gpu_extra)
    assert f'"$FAISS" = "{gpu_env["STYLESTREAM_FAISS"]}"' in dockerfile
    assert "/cu" in gpu_env["STYLESTREAM_TORCH_INDEX"]


# ---- tests that run the services ----------------------------------------------------------

def test_init_output_is_clean(deployment: Deployment) -> None:
    """Catches progress bars redrawn into a log file (carriage returns, hundreds of lines), and
    tracebacks or ERROR lines from the init run (features + training) of the compose file."""
    text = (deployment.logs / "init.log").read_text()
    assert "\r" not in text
    assert "Traceback" not in text and " ERROR " not in text and '"ERROR"' not in text
    progress_lines = [line for line in text.splitlines() if re.search(r"\d+%", line)]
    assert 1 <= len(progress_lines) <= 20, progress_lines
    assert (deployment.home / "model" / "model.pt").is_file()
    assert any((deployment.home / "features").glob("features-*/meta.json"))


def test_workers_export_every_dashboard_metric(deployment: Deployment) -> None:
    """Both workers, started with compose's command lines, are scraped over HTTP; catches a
    dashboard query of a metric no worker exports (a renamed metric, a typo, a panel for a
    metric never written) and a rerank service that does not serve the fusion network."""
    svc = deployment.services
    now = time.time()
    good = [(b"u-dash", event_bytes(f"d{k}", "u-dash", f"D{k:05d}", b, now - 60 + k))
            for k, b in enumerate(("view", "favorite", "cart", "purchase", "view"))]
    produce(svc, "behavior-events", good + [good[0], (b"u-dash", b"{not json")])
    lists = lists_for(deployment, "u-dash", lambda m: True)
    assert lists and all("fusion-" in m["model_version"] for m in lists)

    def scraped() -> dict[str, list]:
        series: dict[str, list] = {}
        for name in WORKERS:
            for metric, values in scrape(deployment.ports[name]).items():
                series.setdefault(metric, []).extend(values)
        return series

    assert wait_for(lambda: total(scraped(), "stylestream_duplicate_events_total") >= 1
                    and total(scraped(), "stylestream_invalid_events_total") >= 1, timeout=30)
    series = scraped()
    missing = dashboard_metrics() - set(series)
    assert not missing, f"the dashboard queries metrics no worker exports: {sorted(missing)}"
    assert total(series, "stylestream_events_total") >= 5
    assert total(series, "stylestream_recommendations_published_total") >= 1


def test_retrain_is_served_without_a_restart(deployment: Deployment) -> None:
    """Catches a rerank service that keeps serving the old network after `retrain` (compose's
    on-demand service) swaps in a new checkpoint — e.g. when the rule stages wrap the network
    and hide its reload — and a model-version metric that does not follow."""
    svc = deployment.services
    before = {labels for labels, _ in scrape(deployment.ports["rerank"])[
        "stylestream_model_info"]}
    assert len(before) == 1
    time.sleep(1.1)  # the new checkpoint's version name is stamped to the second
    deployment.run_once("retrain", SMALL)
    produce(svc, "behavior-events", [(b"u-new", event_bytes("r1", "u-new", "D00001", "cart",
                                                            time.time()))])
    old_version = re.search(r'version="([^"]+)"', next(iter(before)))[1]
    lists = lists_for(deployment, "u-new", lambda m: m["model_version"] != old_version)
    assert any(m["model_version"] != old_version and "fusion-" in m["model_version"]
               for m in lists), [m["model_version"] for m in lists]
    after = {labels for labels, _ in scrape(deployment.ports["rerank"])[
        "stylestream_model_info"]}
    assert len(after) == 1 and after != before
    assert all(p.poll() is None for p in deployment.procs.values()), "a worker restarted"


def test_worker_logs_are_json_lines_and_shutdown_is_quiet(deployment: Deployment) -> None:
    """Compose sets STYLESTREAM_LOG_FORMAT=json: catches a log line that is not one JSON object
    (a library's own handler, a bare print, a multi-line traceback) and an orderly SIGTERM
    that ends in tracebacks or ERROR records."""
    stop_processes(*deployment.procs.values())
    assert all(p.returncode == 0 for p in deployment.procs.values())
    for name in WORKERS:
        lines = [line for line in (deployment.logs / f"{name}.log").read_text().splitlines()
                 if line.strip()]
        records = [json.loads(line) for line in lines]  # every line parses
        assert records and all({"time", "level", "logger", "message"} <= set(r)
                               for r in records)
        assert not [r for r in records if r["level"] in ("ERROR", "CRITICAL")], records
        assert "Traceback" not in (deployment.logs / f"{name}.out").read_text()
