"""The README's `kubectl get dst` picture is one a default install can produce.

Its columns are the CRD's, its reasons are the operator's, each TARGET is written the way the
operator writes it for its type, and every endpoint in it passes the endpoint guard with the
default settings (private and loopback addresses refused): a picture of `http://127.0.0.1`
targets, which only `allowPrivateEndpoints` allows, fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from destination_operator.api.status import Reason
from destination_operator.probe.endpoints import check_endpoint
from destination_operator.settings import OperatorSettings

ROOT = Path(__file__).resolve().parents[2]
SCHEMES = {"AmazonS3": "s3://", "GoogleCloudStorage": "gs://", "AlibabaOSS": "oss://"}
SCHEMES["OracleCloudStorage"] = "oci://"
PUBLIC = "151.101.1.1"  # what a name in the picture is taken to resolve to: a public address


def picture() -> list[dict[str, str]]:
    """The rows of the README's `kubectl get dst`, cut at the header's column starts."""
    (block,) = re.findall(r"```console\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    lines = block.split("$ kubectl get dst", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    header, rows = lines[0], lines[1:]
    starts = [m.start() for m in re.finditer(r"(?:^|(?<=  ))\S", header)]
    names = [header[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    return [
        {n: row[a:b].strip() for n, a, b in zip(names, starts, [*starts[1:], None], strict=True)}
        for row in rows
    ]


def test_the_columns_are_the_crds() -> None:
    crd = yaml.safe_load((ROOT / "crds" / "destinations.destinations.io.yaml").read_text())
    (version,) = crd["spec"]["versions"]
    columns = [c["name"].upper() for c in version["additionalPrinterColumns"]]
    shown = [c for c in columns if c not in ("NEXT VERIFICATION", "EXPIRY")]  # -o wide only
    assert list(picture()[0]) == ["NAME", *shown]


def test_every_row_is_one_a_default_install_can_show() -> None:
    assert OperatorSettings().allow_private_endpoints is False  # the default the chart keeps
    rows = picture()
    assert len(rows) >= 3
    for row in rows:
        assert row["REASON"] in {reason.value for reason in Reason}, row
        target = row["TARGET"]
        if row["TYPE"] in SCHEMES:
            assert target.startswith(SCHEMES[row["TYPE"]]), row
        else:
            check_endpoint(target, allow_private=False, resolve=lambda host, port: [PUBLIC])
        archived = row["ARCHIVED"] == "true"
        assert row["READY"] == ("" if archived else row["VERIFIED"]), row
        assert (row["REASON"] == "Archived") == archived, row
        assert (row["REASON"] == "ProbeSucceeded") == (row["VERIFIED"] == "True"), row
