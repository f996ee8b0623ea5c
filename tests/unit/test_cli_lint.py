"""`destination-operator lint` as a user calls it: -q, Helm charts in folders, --help."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from destination_operator import cli

ROOT = Path(__file__).resolve().parents[2]

BAD = textwrap.dedent(
    """\
    apiVersion: destinations.io/v1alpha1
    kind: Destination
    metadata: {name: bad}
    spec: {type: Nope}
    """
)
SECRET = textwrap.dedent(
    """\
    apiVersion: v1
    kind: Secret
    metadata: {name: s3}
    stringData: {secretAccessKey: from-git}
    """
)
# What a chart's template looks like before `helm template`: not YAML.
TEMPLATE = textwrap.dedent(
    """\
    {{- range .Values.destinations }}
    ---
    apiVersion: destinations.io/v1alpha1
    kind: Destination
    metadata:
      name: {{ .name }}
    {{- end }}
    """
)


def lint(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["lint", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def chart(folder: Path, name: str = "x") -> Path:
    """A Helm chart whose templates/ holds Go template syntax."""
    path = folder / name
    (path / "templates").mkdir(parents=True)
    (path / "Chart.yaml").write_text(f"apiVersion: v2\nname: {name}\nversion: 0.1.0\n")
    (path / "values.yaml").write_text("destinations: []\n")
    (path / "templates" / "destinations.yaml").write_text(TEMPLATE)
    return path


def notice(templates: Path) -> str:
    return (
        f"lint: skipping {templates} (Helm templates); lint a chart with: "
        f"helm template <release> {templates.parent} | destination-operator lint -"
    )


def test_quiet_prints_errors_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mixed.yaml"
    path.write_text(f"{SECRET}---\n{BAD}")
    code, out, err = lint(capsys, str(path))
    assert code == 1
    assert f"{path}:9:14: bad: spec.type: Unsupported value" in out
    assert "warning: stringData" in err and "lint: 1 Destination(s)" in err
    # -q, before or after the paths: the same errors and status, nothing else
    for argv in (["-q", str(path)], [str(path), "-q"], ["--quiet", str(path)]):
        assert lint(capsys, *argv) == (1, out, "")


def test_quiet_still_names_a_path_it_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = lint(capsys, "-q", str(tmp_path / "missing.yaml"))
    assert (code, out) == (2, "")
    assert err.strip() == f"{tmp_path / 'missing.yaml'}: no such file or folder"


def test_a_charts_templates_are_skipped_with_a_notice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    top = chart(tmp_path)
    sub = chart(top / "charts", "sub")  # a subchart: its own templates/ too
    # templates/ beside no Chart.yaml is an ordinary folder and is linted
    plain = tmp_path / "plain" / "templates"
    plain.mkdir(parents=True)
    (plain / "bad.yaml").write_text(BAD)
    code, out, err = lint(capsys, str(tmp_path))
    assert code == 1
    assert out.splitlines() == [
        f"{plain / 'bad.yaml'}:4:14: bad: spec.type: Unsupported value: supported values: "
        '"AmazonS3", "S3Compatible", "GoogleCloudStorage", "AzureBlobStorage", "AlibabaOSS", '
        '"OracleCloudStorage", "Webhook"',
        f"{plain / 'bad.yaml'}:4:1: bad: spec.credentials: Required value",
    ]
    lines = err.splitlines()
    assert notice(top / "templates") in lines
    assert notice(sub / "templates") in lines
    # Chart.yaml and values.yaml are YAML and are read; the templates are not
    assert lines[-1] == "lint: 1 Destination(s) in 5 file(s): 2 error(s), 0 warning(s)"


def test_a_charts_templates_folder_named_directly_is_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    templates = chart(tmp_path) / "templates"
    code, out, err = lint(capsys, str(templates))
    assert (code, out) == (0, "")
    assert err.splitlines()[0] == notice(templates)


def test_the_projects_charts_pass(capsys: pytest.CaptureFixture[str]) -> None:
    charts = ROOT / "charts"
    code, out, err = lint(capsys, str(charts))
    assert (code, out) == (0, "")
    assert notice(charts / "destination-operator" / "templates") in err.splitlines()
    # -q: a skipped folder is no error, so nothing is printed; the status is the same
    assert lint(capsys, "-q", str(charts)) == (0, "", "")


def test_help_documents_quiet_and_charts(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = lint(capsys, "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "usage: destination-operator lint" in text
    assert "-q, --quiet print errors only" in text
    assert "helm template <release> charts/x | destination-operator lint -" in text
    assert "exit status" in text


def test_help_documents_outputs_strict_summary_and_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = lint(capsys, "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "-o {text,json,junit}, --output {text,json,junit}" in text
    assert "--strict warnings are errors" in text
    assert "--summary print the counts" in text
    assert "FILE:LINE:COL: NAMESPACE/NAME: FIELD: MESSAGE" in text
    assert (
        "0 no error (warnings allowed unless --strict), 1 an error, 2 a path that cannot be "
        "read or a bad option"
    ) in text


def test_outputs_and_summary_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    from xml.etree import ElementTree as ET

    path = tmp_path / "mixed.yaml"
    path.write_text(f"{SECRET}---\n{BAD}")
    code, out, err = lint(capsys, "--summary", str(path))
    assert code == 1
    assert out.splitlines()[-1] == (
        "Summary: 2 object(s) found in 1 file(s) - Checked: 1, Valid: 0, Invalid: 1, "
        "Skipped: 1, Errors: 2, Warnings: 1"
    )
    assert "warning: stringData" in err
    code, out, _ = lint(capsys, "-o", "json", "-q", str(path))
    assert code == 1
    assert [f["severity"] for f in json.loads(out)["findings"]] == ["warning", "error", "error"]
    code, out, _ = lint(capsys, str(path), "--output=junit", "--strict")
    assert code == 1
    assert ET.fromstring(out.encode()).get("failures") == "2"  # the Secret's warning fails too


def test_unknown_output_is_a_bad_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = lint(capsys, "-o", "yaml", "-")
    assert code == 2 and "invalid choice: 'yaml'" in err
