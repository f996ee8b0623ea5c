"""Every probe outcome, end to end: real API server, real S3 server, the operator process."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from dst import (
    apply,
    condition,
    events,
    probe_requests,
    s3_destination,
    s3_secret,
    secret,
    wait_for,
)
from operator_fixtures import CANARY_SECRET_KEY, CANARY_TOKEN, OperatorProcess

from harness import Cluster
from loopback import SilentServer
from s3server import S3Server

pytestmark = pytest.mark.cluster


def test_success_is_verified_and_ready(
    cluster: Cluster, namespace: str, s3: S3Server, operator: OperatorProcess
) -> None:
    apply(cluster, namespace, s3_secret(s3), s3_destination("ok", s3, secret="s3"))
    body = wait_for(cluster, namespace, "ok", "Verified", "True", reason="ProbeSucceeded")
    assert condition(body, "Ready")["status"] == "True"
    assert condition(body, "Archived")["status"] == "False"
    status = body["status"]
    assert status["observedGeneration"] == body["metadata"]["generation"]
    assert status["lastVerifiedTime"] and status["nextVerificationTime"]
    assert status["credentialsFingerprint"]
    assert CANARY_SECRET_KEY not in str(status)
    probe = status["lastProbe"]
    assert probe["mode"] == "WriteDelete"
    assert probe["objectKey"].startswith("ok/")
    assert [step["name"] for step in probe["steps"]] == ["Write", "Delete"]
    assert all(step["outcome"] == "Succeeded" for step in probe["steps"])
    methods = [line.split()[1] for line in probe_requests(s3, "ok/")]
    assert methods == ["PUT", "DELETE"]
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", "dst/ok", "--timeout=10s")
    reasons = [e["reason"] for e in events(cluster, namespace, "ok")]
    assert "Verified" not in reasons  # a first verification posts no Event


def test_wrong_secret_key_is_authentication_failed(
    cluster: Cluster, namespace: str, s3: S3Server, operator: OperatorProcess
) -> None:
    key_id = s3.users["admin"].access_key_id
    apply(
        cluster,
        namespace,
        secret("bad", {"accessKeyId": key_id, "secretAccessKey": CANARY_SECRET_KEY}),
        s3_destination("bad", s3, secret="bad"),
    )
    body = wait_for(cluster, namespace, "bad", "Verified", "False", reason="AuthenticationFailed")
    assert condition(body, "Ready")["status"] == "False"
    assert CANARY_SECRET_KEY not in str(body["status"])
    # retries (backoff 1-4 s here) repeat the failure without a new event each time
    first_probe = body["status"]["lastProbe"]["time"]
    wait_for(cluster, namespace, "bad", "Verified", "False", after=first_probe, timeout=30)
    failed = [e for e in events(cluster, namespace, "bad") if e["reason"] == "VerificationFailed"]
    assert len(failed) == 1 and failed[0]["type"] == "Warning"
    assert failed[0].get("count", 1) == 1
    assert "AuthenticationFailed" in failed[0]["message"]


def test_missing_bucket_is_bucket_not_found(
    cluster: Cluster, namespace: str, s3: S3Server, operator: OperatorProcess
) -> None:
    apply(
        cluster,
        namespace,
        s3_secret(s3),
        s3_destination("nb", s3, secret="s3", bucket="no-such-bucket"),
    )
    wait_for(cluster, namespace, "nb", "Verified", "False", reason="BucketNotFound")


@pytest.mark.parametrize(
    ("mode", "verified", "reason"),
    [("WriteDelete", "False", "AccessDenied"), ("Write", "True", "ProbeSucceeded")],
)
def test_write_allowed_delete_denied(
    cluster: Cluster,
    namespace: str,
    s3: S3Server,
    operator: OperatorProcess,
    mode: str,
    verified: str,
    reason: str,
) -> None:
    apply(
        cluster,
        namespace,
        s3_secret(s3, "w", user="writer"),
        s3_destination(
            "w", s3, secret="w", verification={"interval": "1h", "timeout": "5s", "mode": mode}
        ),
    )
    body = wait_for(cluster, namespace, "w", "Verified", verified, reason=reason)
    steps = {step["name"]: step["outcome"] for step in body["status"]["lastProbe"]["steps"]}
    assert steps["Write"] == "Succeeded"
    if mode == "WriteDelete":
        assert steps["Delete"] == "Failed"
    else:
        assert steps.get("Delete", "Skipped") == "Skipped"


def test_closed_port_is_endpoint_unreachable(
    cluster: Cluster, namespace: str, s3: S3Server, operator: OperatorProcess
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    apply(
        cluster,
        namespace,
        s3_secret(s3),
        s3_destination("closed", s3, secret="s3", endpoint=f"http://127.0.0.1:{port}"),
    )
    wait_for(cluster, namespace, "closed", "Verified", "False", reason="EndpointUnreachable")


def test_server_that_never_answers_is_timeout(
    cluster: Cluster,
    namespace: str,
    s3: S3Server,
    operator: OperatorProcess,
    silent_server: SilentServer,
) -> None:
    apply(
        cluster,
        namespace,
        s3_secret(s3),
        s3_destination(
            "silent",
            s3,
            secret="s3",
            endpoint=f"http://127.0.0.1:{silent_server.port}",
            verification={"interval": "1h", "timeout": "2s"},
        ),
    )
    wait_for(cluster, namespace, "silent", "Verified", "False", reason="Timeout", timeout=30)


def test_missing_secret_then_created(
    cluster: Cluster, namespace: str, s3: S3Server, operator: OperatorProcess
) -> None:
    apply(cluster, namespace, s3_destination("later", s3, secret="later"))
    body = wait_for(cluster, namespace, "later", "Verified", "False", reason="SecretNotFound")
    assert "later" in condition(body, "Verified")["message"]
    apply(cluster, namespace, s3_secret(s3, "later"))
    wait_for(cluster, namespace, "later", "Verified", "True", reason="ProbeSucceeded")


def test_secret_without_key_names_the_key(
    cluster: Cluster, namespace: str, s3: S3Server, operator: OperatorProcess
) -> None:
    apply(
        cluster,
        namespace,
        secret(
            "half", {"accessKeyId": s3.users["admin"].access_key_id, "wrongName": CANARY_SECRET_KEY}
        ),
        s3_destination("half", s3, secret="half"),
    )
    body = wait_for(cluster, namespace, "half", "Verified", "False", reason="SecretKeyMissing")
    message = condition(body, "Verified")["message"]
    assert "secretAccessKey" in message
    assert CANARY_SECRET_KEY not in message


def test_metadata_address_is_always_blocked(
    cluster: Cluster, namespace: str, s3: S3Server, operator: OperatorProcess
) -> None:
    """The metadata address is refused even though the test operator allows private endpoints."""
    apply(
        cluster,
        namespace,
        s3_secret(s3),
        s3_destination("meta", s3, secret="s3", endpoint="http://169.254.169.254"),
    )
    wait_for(cluster, namespace, "meta", "Verified", "False", reason="EndpointBlocked")


class _ReflectingReceiver(BaseHTTPRequestHandler):
    """A hostile webhook receiver: refuses, and puts every header it got in its answer."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = ("refused; you sent: " + repr(dict(self.headers.items()))).encode()
        self.send_response(401)
        self.send_header("WWW-Authenticate", f"Bearer error={self.headers.get('Authorization')}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


def test_a_receiver_that_echoes_the_tokens_gets_them_in_no_status(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ReflectingReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        hook = {
            "apiVersion": "destinations.io/v1alpha1",
            "kind": "Destination",
            "metadata": {"name": "hook"},
            "spec": {
                "type": "Webhook",
                "environment": "Development",
                "webhook": {"url": f"http://127.0.0.1:{server.server_port}/deliveries"},
                "credentials": {"secretRef": {"name": "hook"}},
            },
        }
        tokens = {"verificationToken": CANARY_TOKEN, "bearerToken": CANARY_SECRET_KEY}
        apply(cluster, namespace, secret("hook", tokens), hook)
        body = wait_for(
            cluster, namespace, "hook", "Verified", "False", reason="AuthenticationFailed"
        )
        text = str(body["status"]) + str(events(cluster, namespace, "hook"))
        assert "401" in text
        assert CANARY_TOKEN not in text and CANARY_SECRET_KEY not in text
    finally:
        server.shutdown()
        server.server_close()
