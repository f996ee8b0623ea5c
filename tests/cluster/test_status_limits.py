"""The longest status a hostile answer can make is one the real API server stores.

A status string over its CRD `maxLength` makes the API server refuse the whole
patch (422), and the Destination's status then never changes again. Here the
status of each sample Destination (one per type) is built as the operator
builds it, from an outcome carrying the longest hostile text: messages of
64 kB in the shapes that were slow to scrub, an object key and a
verify-request annotation far past their limits. It is patched by the
operator's own status writer into the real API server, which must store it.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
import yaml
from dst import apply, get

from destination_operator.api.spec import VerificationMode, parse_spec
from destination_operator.api.status import Reason, StepOutcome
from destination_operator.conditions import build_status
from destination_operator.outcome import Outcome, StepName, StepResult
from harness import Cluster, patch_status_as
from samples import SAMPLES

pytestmark = pytest.mark.cluster

NOW = datetime.datetime(2026, 12, 7, 6, 0, tzinfo=datetime.UTC)
HOSTILE = ("a." * 16_000, "eyJ-" * 16_000, "http://" + "a:" * 32_000, "\x1b]0;x\x07" * 9_000)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda path: path.stem.rsplit("_", 1)[-1])
def test_the_longest_hostile_status_is_stored(
    cluster: Cluster, namespace: str, destination_crd: str, sample: Path
) -> None:
    body = yaml.safe_load(sample.read_text())
    body["metadata"] = {"name": "hostile", "namespace": namespace}
    apply(cluster, namespace, body)
    stored = get(cluster, namespace, "hostile")
    for text in HOSTILE:
        outcome = Outcome(
            verified=False,
            reason=Reason.ProbeFailed,
            message=text,
            steps=(
                StepResult(StepName.Write, StepOutcome.Failed, 1, text),
                StepResult(StepName.Delete, StepOutcome.Skipped, 0, text),
            ),
            object_key="k/" * 4_000,
            mode=VerificationMode.WriteDelete,
            fingerprint="0123456789abcdef",
            time=NOW,
            probed=True,
        )
        status = build_status(
            old=stored.get("status"),
            generation=stored["metadata"]["generation"],
            spec=parse_spec(body["spec"]),
            outcome=outcome,
            now=NOW,
            next_verification=NOW,
            verify_request="2026-12-07T06:00:00Z " + text,
        )
        done = patch_status_as(
            cluster.kubeconfig,
            namespace,
            "hostile",
            stored["metadata"]["uid"],
            json.loads(json.dumps(status)),
        )
        assert done.returncode == 0, done.stderr[-2000:]
        # What the API server stored, as it answered the patch (an operator running in the
        # same session may write its own status right after).
        written = json.loads(done.stdout)["status"]
        verified = next(c for c in written["conditions"] if c["type"] == "Verified")
        assert verified["reason"] == "ProbeFailed"
        assert len(verified["message"]) <= 32768
        assert all(len(step["message"]) <= 4096 for step in written["lastProbe"]["steps"])
        assert len(written["lastProbe"]["objectKey"]) <= 1024
        assert len(written["lastHandledVerifyRequest"]) <= 256
        assert written["lastProbe"]["steps"][0]["message"].startswith(text[:100])
