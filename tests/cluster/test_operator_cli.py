"""The command line against the real API server: --kubeconfig/--context, and linting a chart.

The kubeconfig given to the operator has two contexts: its current-context
points at a server that accepts connections and never answers, the other at
the test API server. A Destination gets a status only if kopf's watch (the
event) and the operator's own client (the Secret read and the status patch)
both went to the chosen context.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from dst import apply, condition, s3_destination, s3_secret, wait_for
from operator_fixtures import OPERATOR_NAMESPACE, OPERATOR_SA, OperatorProcess

import chart
from controlplane import die_with_parent
from harness import Cluster
from s3server import S3Server

pytestmark = pytest.mark.cluster

BINARY = Path(sys.executable).parent / "destination-operator"


class CliOperator(OperatorProcess):
    """`destination-operator run ARGS...` with exactly the environment given (no KUBECONFIG
    unless it says so)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        super().__init__(Path(env.get("KUBECONFIG", "unset")), log)
        self.args = args
        self.env = env

    def start(self) -> None:
        base = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("DESTINATION_OPERATOR_") and key != "KUBECONFIG"
        }
        env = {
            **base,
            "DESTINATION_OPERATOR_ALLOW_PRIVATE_ENDPOINTS": "true",
            "DESTINATION_OPERATOR_HEALTH_PORT": "0",
            "DESTINATION_OPERATOR_METRICS_PORT": "0",
            **self.env,
        }
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(BINARY), "run", *self.args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=die_with_parent,
            )


@pytest.fixture(scope="module")
def kubeconfigs(
    cluster: Cluster, silent_port: int, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """(two contexts, current-context `wrong`; one context, `wrong` only)."""
    folder = tmp_path_factory.mktemp("cli-kubeconfig")
    right = json.loads(
        cluster.token_kubeconfig(OPERATOR_NAMESPACE, OPERATOR_SA, out_dir=folder).read_text()
    )
    wrong_cluster = {
        "name": "wrong",
        "cluster": {"server": f"https://127.0.0.1:{silent_port}", "insecure-skip-tls-verify": True},
    }
    wrong_user = {"name": "wrong", "user": {"token": "not-a-token"}}
    wrong_context = {"name": "wrong", "context": {"cluster": "wrong", "user": "wrong"}}
    two = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [*right["clusters"], wrong_cluster],
        "users": [*right["users"], wrong_user],
        "contexts": [
            {"name": "right", "context": right["contexts"][0]["context"]},
            wrong_context,
        ],
        "current-context": "wrong",
    }
    only_wrong = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [wrong_cluster],
        "users": [wrong_user],
        "contexts": [wrong_context],
        "current-context": "wrong",
    }
    paths = folder / "two.kubeconfig", folder / "wrong.kubeconfig"
    for path, body in zip(paths, (two, only_wrong), strict=True):
        path.write_text(json.dumps(body))
        path.chmod(0o600)
    return paths


@pytest.fixture(scope="module")
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers, for the module's wrong context."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)  # connections wait in the backlog, unanswered
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


@pytest.fixture(scope="module")
def no_session_operator(operator: OperatorProcess) -> Iterator[None]:
    """One operator at a time: the session's stops while this module's run."""
    operator.stop()
    try:
        yield
    finally:
        operator.start()


CASES = {
    # flags name file and context; KUBECONFIG names a file with the wrong context only
    "flags": (["--kubeconfig", "{two}", "--context", "right"], {"KUBECONFIG": "{wrong}"}),
    # the same through the settings' variables
    "variables": (
        [],
        {
            "DESTINATION_OPERATOR_KUBECONFIG": "{two}",
            "DESTINATION_OPERATOR_CONTEXT": "right",
            "KUBECONFIG": "{wrong}",
        },
    ),
    # KUBECONFIG stays the default file; --context picks within it
    "kubeconfig-variable-and-context-flag": (["--context", "right"], {"KUBECONFIG": "{two}"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_chosen_context_is_watched_and_written(
    case: str,
    cluster: Cluster,
    namespace: str,
    s3: S3Server,
    kubeconfigs: tuple[Path, Path],
    no_session_operator: None,
    tmp_path: Path,
) -> None:
    two, wrong = kubeconfigs
    args, env = CASES[case]

    def fill(text: str) -> str:
        return text.format(two=two, wrong=wrong)

    process = CliOperator(
        [fill(a) for a in args],
        {key: fill(value) for key, value in env.items()},
        tmp_path / "operator.log",
    )
    process.start()
    try:
        apply(cluster, namespace, s3_secret(s3), s3_destination("d", s3, secret="s3"))
        body = wait_for(cluster, namespace, "d", "Ready", "True", timeout=60)
        assert condition(body, "Verified")["reason"] == "ProbeSucceeded"
        assert process.alive(), process.text()[-3000:]
    finally:
        process.stop()


def test_without_the_context_nothing_is_verified(
    cluster: Cluster,
    namespace: str,
    s3: S3Server,
    kubeconfigs: tuple[Path, Path],
    no_session_operator: None,
    tmp_path: Path,
) -> None:
    """The control: the same kubeconfig at its current-context reaches nothing."""
    two, _ = kubeconfigs
    process = CliOperator(["--kubeconfig", str(two)], {}, tmp_path / "operator.log")
    process.start()
    try:
        apply(cluster, namespace, s3_secret(s3), s3_destination("d", s3, secret="s3"))
        with pytest.raises(AssertionError, match="never became"):
            wait_for(cluster, namespace, "d", "Ready", "True", timeout=10)
        assert "status" not in json.loads(
            cluster.kubectl("get", "dst", "d", "-n", namespace, "-o", "json").stdout
        )
    finally:
        process.stop()


# --- lint a chart: helm template | destination-operator lint - ------------------------------


def lint_stdin(text: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BINARY), "lint", *args, "-"], input=text, capture_output=True, text=True, timeout=60
    )


def test_the_projects_rendered_chart_lints_clean(cluster: Cluster) -> None:
    rendered = chart.helm_template(cluster.bin_dir / "helm")
    done = lint_stdin(rendered)
    assert (done.returncode, done.stdout) == (0, ""), done.stderr
    assert "0 error(s)" in done.stderr


def test_a_chart_of_destinations_is_linted_once_rendered(cluster: Cluster, tmp_path: Path) -> None:
    """The pipe the skip notice suggests finds a rendered Destination's errors."""
    folder = tmp_path / "dst-chart"
    (folder / "templates").mkdir(parents=True)
    (folder / "Chart.yaml").write_text("apiVersion: v2\nname: dst-chart\nversion: 0.1.0\n")
    (folder / "values.yaml").write_text("type: AmazonS3\n")
    (folder / "templates" / "destination.yaml").write_text(
        textwrap.dedent(
            """\
            apiVersion: destinations.io/v1alpha1
            kind: Destination
            metadata:
              name: {{ .Release.Name }}
            spec:
              type: {{ .Values.type }}
              amazonS3: {bucket: reports, region: eu-west-1}
              pathPrefix: reports/
              credentials: {secretRef: {name: s3}}
            """
        )
    )
    helm = str(cluster.bin_dir / "helm")
    for value, code in (("AmazonS3", 0), ("Nope", 1)):
        rendered = subprocess.run(
            [helm, "template", "rel", str(folder), "--set", f"type={value}"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        done = lint_stdin(rendered)
        assert done.returncode == code, (value, done.stdout, done.stderr)
        assert "lint: 1 Destination(s) in 1 file(s)" in done.stderr
        if code:
            # FILE:LINE:COL: NAME: FIELD: MESSAGE, at spec.type's line in helm's output
            assert re.match(r"<stdin>:\d+:\d+: rel: spec\.type: Unsupported value", done.stdout)
    # without rendering, the folder is skipped with the notice, not failed on template syntax
    done = subprocess.run(
        [str(BINARY), "lint", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout) == (0, ""), done.stderr
    assert done.stderr.splitlines()[0] == (
        f"lint: skipping {folder / 'templates'} (Helm templates); lint a chart with: "
        f"helm template <release> {folder} | destination-operator lint -"
    )
