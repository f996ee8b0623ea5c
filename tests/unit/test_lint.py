"""`destination-operator lint`: files, folders, stdin, and every kind of bad input."""

from __future__ import annotations

import io
import re
import textwrap
from pathlib import Path

import pytest

import samples
from destination_operator.tools import lint

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "manifests" / "samples"

GOOD = textwrap.dedent(
    """\
    apiVersion: destinations.io/v1alpha1
    kind: Destination
    metadata:
      name: good
    spec:
      type: GoogleCloudStorage
      googleCloudStorage: {bucket: example-bucket}
      credentials: {secretRef: {name: gcs}}
    """
)


def destination(spec: str, name: str = "d") -> str:
    return (
        "apiVersion: destinations.io/v1alpha1\nkind: Destination\n"
        f"metadata:\n  name: {name}\nspec:\n{textwrap.indent(textwrap.dedent(spec), '  ')}"
    )


def run(
    capsys: pytest.CaptureFixture[str], argv: list[str], stdin: str | bytes | None = None
) -> tuple[int, str, str]:
    if stdin is not None:
        data = stdin.encode() if isinstance(stdin, str) else stdin
        wrapper = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("sys.stdin", wrapper)
            code = lint.main(argv)
    else:
        code = lint.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_samples_pass(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, [str(SAMPLES)])
    assert code == 0, out
    assert out == ""
    assert "7 Destination(s) in 7 file(s): 0 error(s)" in err


def test_samples_hold_only_a_destination_each() -> None:
    """Applying a sample can create or change nothing but its own Destination (no Secret)."""
    import yaml

    files = sorted(p for p in SAMPLES.rglob("*") if p.is_file())
    assert files == samples.SAMPLES, "every file under manifests/samples/ is a sample"
    for path in files:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
        assert [(d["apiVersion"], d["kind"]) for d in docs] == [
            ("destinations.io/v1alpha1", "Destination")
        ], path.name
        assert "namespace" not in docs[0]["metadata"], f"{path.name}: `apply -n` must choose it"


def test_samples_cover_every_type_and_show_its_secret_command() -> None:
    """Each sample's `kubectl create secret` names the Secret its Destination reads, with
    exactly the keys its provider needs: the required ones, plus one set of alternatives."""
    import yaml

    from destination_operator.api.spec import DestinationType, parse_spec
    from destination_operator.providers.registry import default_registry

    seen = set()
    for path in samples.SAMPLES:
        spec = parse_spec(yaml.safe_load(path.read_text(encoding="utf-8"))["spec"])
        seen.add(spec.type)
        assert path.name == f"destinations.io_v1alpha1_destination_{spec.type.lower()}.yaml"
        command = samples.secret_command(path)
        assert command.name == spec.secret_name, path.name
        assert command.namespace == samples.NAMESPACE_PLACEHOLDER, path.name
        keys = default_registry().get(spec.type).secret_keys
        extra = command.keys - set(keys.required)
        assert set(keys.required) <= command.keys, (path.name, sorted(command.keys))
        if keys.alternatives:
            assert extra in [set(choice) for choice in keys.alternatives], (path.name, extra)
        else:
            assert extra == set(), (path.name, extra)
        # Placeholders only: a value to paste never sits in the repository.
        assert set(command.literals.values()) <= {samples.VALUE_PLACEHOLDER}, path.name
        assert all(name.endswith(".json") for name in command.files.values()), path.name
        apply = f"kubectl apply -n {samples.NAMESPACE_PLACEHOLDER} -f {path.name}"
        assert apply in samples.header(path), f"{path.name}: the comment shows how to apply it"
        text = "\n".join(samples.header(path))
        assert text.index("kubectl create secret") < text.index("kubectl apply"), path.name
    assert seen == set(DestinationType)


@pytest.mark.parametrize(
    ("command", "error"),
    [
        ("kubectl create secret tls x --cert=a", "not `kubectl create secret generic"),
        ("kubectl create secret generic x --from-literal=a", "needs KEY=VALUE"),
        ("kubectl create secret generic x --from-literal=a=1 --from-file=a=f", "given twice"),
        ("kubectl create secret generic x --type=Opaque", "unexpected argument"),
    ],
)
def test_sample_secret_commands_are_read_strictly(command: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        samples.parse_secret_command(command)


def test_sample_secret_command_is_read_across_continuation_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.yaml",
        "# intro\n#   kubectl create secret generic creds -n <namespace> \\\n"
        "#     --from-literal=a='x y' \\\n#     --from-file=b=key.json\n# outro\n" + GOOD,
    )
    command = samples.secret_command(path)
    assert command == samples.SecretCommand("creds", "<namespace>", {"a": "x y"}, {"b": "key.json"})
    assert command.argv("ns", {"a": "1"}, {"b": Path("k")}) == [
        *("create", "secret", "generic", "creds", "-n", "ns"),
        *("--from-literal=a=1", "--from-file=b=k"),
    ]


def test_good_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, [str(write(tmp_path, "good.yaml", GOOD))])
    assert (code, out) == (0, "")


def test_multi_document_reports_the_line_and_the_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = destination("type: AmazonS3\ncredentials: {secretRef: {name: s}}\n")
    text = "\n---\n".join(
        ["apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n", GOOD, bad, "", GOOD]
    )
    path = write(tmp_path, "multi.yaml", text)
    code, out, _ = run(capsys, [str(path)])
    assert code == 1
    assert out.splitlines() == [
        f"{path}:20:1: d: spec.amazonS3: is required when spec.type is AmazonS3"
    ]


def test_folders_are_searched_recursively(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, "a/one.yaml", GOOD)
    write(tmp_path, "a/b/two.yml", destination("type: Nope\ncredentials: {secretRef: {name: s}}"))
    write(tmp_path, "a/b/skip.json", "not yaml at all: [")
    write(tmp_path, "a/.git/three.yaml", "broken: [")
    code, out, err = run(capsys, [str(tmp_path / "a")])
    assert code == 1
    assert out.count("\n") == 1 and "two.yml:6:9: d: spec.type: Unsupported value" in out
    assert "2 Destination(s) in 2 file(s)" in err


@pytest.mark.parametrize("argv", [[], ["-"]])
def test_stdin(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    text = (
        GOOD
        + "---\n"
        + destination(
            "type: Webhook\nwebhook: {url: 'http://x'}\ncredentials: {secretRef: {name: s}}"
        )
    )
    code, out, _ = run(capsys, argv, stdin=text)
    assert code == 1
    assert out.startswith("<stdin>:16:18: d: spec.webhook.url: must start with https://")


def test_malformed_yaml_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "bad.yaml", GOOD + "---\nspec: [unclosed\n")
    code, out, err = run(capsys, [str(path)])
    assert code == 1
    assert out.splitlines() == [
        f"{path}:11:1: yaml: malformed YAML: expected ',' or ']', but got '<stream end>'"
    ]
    assert "Traceback" not in out + err


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a: [", "malformed YAML"),
        ("a: {b: 1, b: 2}", "duplicate key 'b'"),
        ("? [a]\n: 1", "a key that is a list or a mapping"),
        ("\t- a", "malformed YAML"),
        ("a: *nope", "malformed YAML"),
        ("[" * 10_000 + "]" * 10_000, "nested too deeply"),
        ("!!python/object:os.system {}", "malformed YAML"),
    ],
)
def test_bad_yaml(text: str, fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, ["-"], stdin=text)
    assert code == 1
    assert fragment in out
    assert len(out.splitlines()) == 1


def test_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, [str(write(tmp_path, "bin.yaml", b"\xff\xfe\x00kind"))])
    assert code == 1 and "not UTF-8 text" in out


def test_missing_path(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, [str(tmp_path / "nope.yaml")])
    assert code == 2 and "no such file or folder" in err


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (
            "apiVersion: destinations.io/v1alpha1\nkind: Destination\nmetadata: {name: d}\n",
            "spec: Required value",
        ),
        (
            "apiVersion: destinations.io/v1alpha1\nkind: Destination\nmetadata: {name: d}\nspec:\n",
            "spec: Required value",
        ),
        (
            destination("type: AmazonS3\namazonS3:\ncredentials: {secretRef: {name: s}}"),
            "spec.amazonS3: is required when spec.type is AmazonS3",
        ),
        (
            destination(
                "type: AmazonS3\namazonS3: {bucket: b-1, region: us-east-1}\n"
                "credentials: {secretRef: {name: s}}\nextra: 1"
            ),
            "spec.extra: unknown field",
        ),
        (
            destination(
                "type: AmazonS3\namazonS3: {bucket: b-1, region: us-east-1}\n"
                "credentials: {secretRef: {name: s}}\nenabled: 'yes'"
            ),
            "spec.enabled: must be of type boolean",
        ),
        (
            destination(
                "type: AmazonS3\namazonS3: {bucket: b-1, region: us-east-1}\n"
                "credentials: {secretRef: {name: s}}\nenabled: yes"
            ),
            None,
        ),
        (
            destination(
                "type: AmazonS3\namazonS3: {bucket: 12345, region: us-east-1}\n"
                "credentials: {secretRef: {name: s}}"
            ),
            "spec.amazonS3.bucket: must be of type string",
        ),
        (
            destination(
                "type: Webhook\nwebhook: {url: https://h.example.com}\n"
                "credentials: {secretRef: {name: s}}\ndisplayName: 2024-01-01"
            ),
            None,
        ),
        (
            destination(
                "type: Webhook\nwebhook: {url: https://h.example.com}\n"
                "credentials: {secretRef: {name: s}}\ndisplayName: Données 🚀"
            ),
            None,
        ),
        (
            destination(
                "type: Webhook\nwebhook: {url: https://h.example.com}\n"
                "credentials: {secretRef: {name: s}}",
                name="dëstination",
            ),
            "metadata.name: must be a lowercase RFC 1123 subdomain",
        ),
        (
            destination(
                "type: Webhook\nwebhook: {url: https://h.example.com}\n"
                "credentials: {secretRef: {name: s}}\n1: x"
            ),
            "spec.1: unknown field",
        ),
        (
            "apiVersion: destinations.io/v1alpha1\nkind: Destination\nspec: {}\n",
            "metadata.name: Required value",
        ),
        (
            "apiVersion: destinations.io/v1beta1\nkind: Destination\nmetadata: {name: d}\n",
            "apiVersion: Destination must use apiVersion destinations.io/v1alpha1",
        ),
        ("kind: Destination\nmetadata: {name: d}\n", "apiVersion: Destination must use"),
        (GOOD + "specs: {}\n", 'specs: unknown field, did you mean "spec"?'),
        (
            GOOD.replace("metadata:\n  name: good", "metadata: [good]"),
            "metadata: must be of type object",
        ),
        ("apiVersion: other.io/v1\nkind: Destination\nspec: 5\n", None),
        ("- just\n- a list\n", None),
        ("plain scalar", None),
    ],
)
def test_documents(doc: str, expected: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, ["-q", "-"], stdin=doc)
    if expected is None:
        assert (code, out) == (0, "")
    else:
        assert code == 1
        # FILE:LINE:COL: [NAMESPACE/NAME: ]FIELD: MESSAGE
        assert re.search(rf"^<stdin>:\d+:\d+: (\S+: )?{re.escape(expected)}", out, re.M), out


def test_huge_values_are_not_echoed(capsys: pytest.CaptureFixture[str]) -> None:
    big = "b" * 2_000_000
    code, out, _ = run(
        capsys,
        ["-"],
        stdin=destination(
            f"type: AmazonS3\namazonS3: {{bucket: {big}, region: us-east-1}}\n"
            "credentials: {secretRef: {name: s}}"
        ),
    )
    assert code == 1
    assert "Too long: may not be more than 63" in out
    assert len(out) < 500


def test_alias_bombs_stay_cheap(capsys: pytest.CaptureFixture[str]) -> None:
    lines = ["a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']"]
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    doc = destination("type: Webhook\nwebhook: {url: *i}\ncredentials: {secretRef: {name: s}}")
    code, out, _ = run(capsys, ["-"], stdin="\n".join(lines) + "\n" + doc)
    assert code == 1
    assert "spec.webhook.url: must be of type string" in out


def test_list_kind_items_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    doc = (
        "apiVersion: v1\nkind: List\nitems:\n"
        "- apiVersion: destinations.io/v1alpha1\n  kind: Destination\n  metadata: {name: x}\n"
    )
    code, out, _ = run(capsys, ["-"], stdin=doc)
    assert code == 1 and "<stdin>:4:3: x: items[0].spec: Required value" in out


def test_secret_warning_names_keys_not_values(capsys: pytest.CaptureFixture[str]) -> None:
    secret = (
        "apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\n"
        "stringData: {accessKeyId: AKIAEXAMPLEVALUE, secretAccessKey: s3cr3t-value, note: hi}\n"
        "data: {sasToken: c2FzLXRva2Vu}\n"
    )
    code, out, err = run(capsys, ["-"], stdin=secret)
    assert code == 0 and out == ""
    assert "Secret creds holds credential values in cleartext (accessKeyId, secretAccessKey)" in err
    assert "(sasToken)" in err
    for value in ("AKIAEXAMPLEVALUE", "s3cr3t-value", "c2FzLXRva2Vu", "hi"):
        assert value not in err
    code, out, err = run(capsys, ["-q", "-"], stdin=secret)
    assert (code, out, err) == (0, "", "")


def test_empty_secret_does_not_warn(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, ["-"], stdin="apiVersion: v1\nkind: Secret\nmetadata: {name: x}\n")
    assert code == 0 and "warning:" not in err


def test_help_and_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert lint.main(["--help"]) == 0
    assert lint.main(["--nope"]) == 2
    capsys.readouterr()


# --- identity, did you mean, lines, formats, --strict, empty input, regions ----------

S3 = (
    "type: AmazonS3\namazonS3: {bucket: b-1, region: us-east-1}\n"
    "credentials: {secretRef: {name: s}}"
)


def errors(out: str) -> list[str]:
    return out.splitlines()


@pytest.mark.parametrize("group", ["destination.io", "destinations. io", "Destinations.io"])
def test_a_group_typo_is_an_error_with_did_you_mean(
    group: str, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = destination(S3).replace("destinations.io/v1alpha1", f"{group}/v1alpha1")
    code, out, _ = run(capsys, ["-q", "-"], stdin=doc)
    assert code == 1
    assert errors(out) == [
        f'<stdin>:1:13: d: apiVersion: unknown API group "{group}", '
        'did you mean "destinations.io/v1alpha1"?'
    ]


@pytest.mark.parametrize("kind", ["destination", "Destinaton", "Destinations"])
def test_a_kind_typo_is_an_error_with_did_you_mean(
    kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = destination(S3).replace("kind: Destination", f"kind: {kind}")
    code, out, _ = run(capsys, ["-q", "-"], stdin=doc)
    assert code == 1
    assert errors(out) == [
        f'<stdin>:2:7: d: kind: unknown kind "{kind}" in destinations.io, '
        'did you mean "Destination"?'
    ]


def test_an_unknown_kind_of_our_group_is_an_error_without_a_suggestion(
    capsys: pytest.CaptureFixture[str],
) -> None:
    doc = destination(S3).replace("kind: Destination", "kind: Bucket")
    code, out, _ = run(capsys, ["-q", "-"], stdin=doc)
    assert code == 1
    assert errors(out) == ['<stdin>:2:7: d: kind: unknown kind "Bucket" in destinations.io']


def test_an_unserved_version_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    doc = destination(S3).replace("v1alpha1", "v1")
    code, out, _ = run(capsys, ["-q", "-"], stdin=doc)
    assert code == 1
    assert errors(out) == [
        "<stdin>:1:13: d: apiVersion: Destination must use apiVersion destinations.io/v1alpha1 "
        '(the only version served; "v1" is not)'
    ]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "type: AmazonS3\namazonS3:\n  bucket: b-1\n  regoin: us-east-1\n"
            "credentials: {secretRef: {name: s}}",
            '<stdin>:9:5: d: spec.amazonS3.regoin: unknown field, did you mean "region"?',
        ),
        (
            "type: AmazonS3\namazonS33: {bucket: b-1, region: us-east-1}\n"
            "credentials: {secretRef: {name: s}}",
            '<stdin>:7:3: d: spec.amazonS33: unknown field, did you mean "amazonS3"?',
        ),
        (
            S3 + "\nenabeld: false",
            '<stdin>:9:3: d: spec.enabeld: unknown field, did you mean "enabled"?',
        ),
    ],
)
def test_a_misspelt_field_is_one_error_with_did_you_mean(
    spec: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, ["-q", "-"], stdin=destination(spec))
    assert code == 1
    assert errors(out) == [expected]  # not also "the field it meant: Required value"


def test_errors_name_the_line_column_and_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (
        GOOD
        + "---\n"
        + destination(
            "type: Webhook\nwebhook:\n  url: http://h.example.com\n"
            "credentials: {secretRef: {name: s}}",
            name="hook",
        ).replace("  name: hook", "  name: hook\n  namespace: team-a")
    )
    path = write(tmp_path, "two.yaml", text)
    code, out, _ = run(capsys, [str(path)])
    assert code == 1
    # the second document starts on line 10; `url:` is on line 18, its value at column 10
    assert errors(out) == [
        f"{path}:18:10: team-a/hook: spec.webhook.url: must start with https:// when "
        "spec.environment is Production or Staging (http:// is allowed only in Development)"
    ]
    assert text.splitlines()[17][9:] == "http://h.example.com"


@pytest.mark.parametrize(
    "spec",
    [
        S3 + "\nenabled: 'yes'",
        S3.replace("b-1", "12345"),
        S3.replace("b-1", "b"),
        "type: AmazonS3\ncredentials: {secretRef: {name: s}}",
        "type: Webhook\nwebhook: {url: 'http://x'}\ncredentials: {secretRef: {name: s}}",
        S3 + "\nextra: 1",
    ],
)
def test_messages_name_the_field_once(spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, ["-q", "-"], stdin=destination(spec))
    assert code == 1 and out
    for line in errors(out):
        field, message = line.split(": ", 3)[2:]
        assert field.startswith("spec.")
        assert field not in message, line


def test_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    bad = destination(S3 + "\nenabled: 'yes'", name="bad")
    other = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
    path = write(tmp_path, "m.yaml", f"{GOOD}---\n{bad}\n---\n{other}")
    code, out, _ = run(capsys, ["--output", "json", str(path)])
    assert code == 1
    body = json.loads(out)
    assert body["findings"] == [
        {
            "file": str(path),
            "line": 18,
            "column": 12,
            "namespace": None,
            "name": "bad",
            "field": "spec.enabled",
            "message": "must be of type boolean",
            "severity": "error",
        }
    ]
    assert [(o["name"], o["kind"], o["status"]) for o in body["objects"]] == [
        ("good", "Destination", "valid"),
        ("bad", "Destination", "invalid"),
        ("c", "ConfigMap", "skipped"),
    ]
    assert body["summary"] == {
        "files": 1,
        "objects": 3,
        "checked": 2,
        "valid": 1,
        "invalid": 1,
        "skipped": 1,
        "errors": 1,
        "warnings": 0,
    }


def test_junit_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from xml.etree import ElementTree as ET

    bad = destination("type: AmazonS3\namazonS3: {bucket: b-1, region: eu-centrl-1}", name="bad")
    other = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: x}\n"
    one = write(tmp_path, "one.yaml", f"{GOOD}---\n{bad}\n---\n{other}")
    two = write(tmp_path, "two.yaml", "spec: [unclosed\n")
    code, out, _ = run(capsys, ["-o", "junit", str(one), str(two)])
    assert code == 1
    top = ET.fromstring(out.encode())
    assert top.tag == "testsuites"
    assert (top.get("tests"), top.get("failures"), top.get("skipped")) == ("4", "2", "1")
    suites = {suite.get("name"): suite for suite in top.findall("testsuite")}
    assert list(suites) == [str(one), str(two)]
    cases = {case.get("name"): case for case in suites[str(one)].findall("testcase")}
    assert list(cases) == [
        "Destination good (line 1)",
        "Destination bad (line 10)",
        "Deployment x/web (line 18)",
    ]
    assert cases["Destination good (line 1)"].find("failure") is None
    failures = cases["Destination bad (line 10)"].findall("failure")
    assert [f.get("message") for f in failures] == ["spec.credentials: Required value"]
    warnings = cases["Destination bad (line 10)"].findtext("system-out") or ""
    assert 'warning: spec.amazonS3.region: unknown AWS region "eu-centrl-1"' in warnings
    assert cases["Deployment x/web (line 18)"].find("skipped") is not None
    (malformed,) = suites[str(two)].findall("testcase")
    assert malformed.get("name") == "(file)"
    failure = malformed.find("failure")
    assert failure is not None
    assert failure.get("message", "").startswith("yaml: malformed YAML")


def test_strict_makes_unknown_fields_and_kinds_errors(capsys: pytest.CaptureFixture[str]) -> None:
    doc = GOOD.replace("  name: good", "  name: good\n  lables: {a: b}")
    code, out, err = run(capsys, ["-"], stdin=doc)
    assert (code, out) == (0, "")  # an unknown metadata field: the API server drops it
    assert (
        '<stdin>:5:3: good: warning: metadata.lables: unknown field, did you mean "labels"?' in err
    )
    code, out, _ = run(capsys, ["--strict", "-q", "-"], stdin=doc)
    assert code == 1
    assert errors(out) == [
        '<stdin>:5:3: good: metadata.lables: unknown field, did you mean "labels"?'
    ]
    # a document that is not a Kubernetes object: skipped, and an error under --strict
    odd = GOOD + "---\nname: not-an-object\n"
    assert run(capsys, ["-q", "-"], stdin=odd) == (0, "", "")
    code, out, _ = run(capsys, ["--strict", "-q", "-"], stdin=odd)
    assert code == 1
    assert errors(out) == ["<stdin>:10:1: not a Kubernetes object: no apiVersion or no kind"]


@pytest.mark.parametrize("where", ["folder", "stdin", "comments only"])
def test_empty_input_warns_even_under_quiet_and_fails_under_strict(
    where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    argv, stdin, name, what = [str(tmp_path / "empty")], None, str(tmp_path / "empty"), "file"
    if where != "folder":
        argv, stdin, name, what = (
            ["-"],
            "" if where == "stdin" else "# nothing\n---\n",
            "<stdin>",
            "document",
        )
    for quiet in ([], ["-q"]):
        code, out, err = run(capsys, [*quiet, *argv], stdin=stdin)
        assert (code, out) == (0, "")
        assert f"{name}: warning: empty input: no YAML {what}" in err.splitlines()
    code, out, _ = run(capsys, ["--strict", "-q", *argv], stdin=stdin)
    assert code == 1
    assert errors(out) == [f"{name}: empty input: no YAML {what}"]


@pytest.mark.parametrize(
    ("spec", "field", "region", "nearest"),
    [
        (
            S3.replace("us-east-1", "eu-centrl-1"),
            "spec.amazonS3.region",
            "eu-centrl-1",
            "eu-central-1",
        ),
        (
            S3.replace("us-east-1", "us-gov-wst-1"),
            "spec.amazonS3.region",
            "us-gov-wst-1",
            "us-gov-west-1",
        ),
        (
            "type: S3Compatible\ns3Compatible: {endpoint: 'https://s3.eu-wst-1.amazonaws.com', "
            "bucket: b-1}\ncredentials: {secretRef: {name: s}}",
            "spec.s3Compatible.endpoint",
            "eu-wst-1",
            "eu-west-1",
        ),
    ],
)
def test_an_unknown_aws_region_warns_and_names_the_nearest(
    spec: str, field: str, region: str, nearest: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, ["-"], stdin=destination(spec))
    assert (code, out) == (0, "")  # a warning: a region newer than lint's list is fine
    assert f'd: warning: {field}: unknown AWS region "{region}", did you mean "{nearest}"?' in err
    code, out, _ = run(capsys, ["--strict", "-q", "-"], stdin=destination(spec))
    assert code == 1 and f'{field}: unknown AWS region "{region}"' in out


def test_known_aws_regions_do_not_warn(capsys: pytest.CaptureFixture[str]) -> None:
    from destination_operator.tools.checks import AWS_REGIONS

    assert {"us-east-1", "eu-central-1", "cn-north-1", "us-gov-west-1"} <= AWS_REGIONS
    for region in ("eu-central-1", "cn-northwest-1", "us-gov-east-1"):
        code, _, err = run(capsys, ["-"], stdin=destination(S3.replace("us-east-1", region)))
        assert code == 0 and "warning:" not in err


def test_other_groups_are_skipped_and_counted(capsys: pytest.CaptureFixture[str]) -> None:
    others = [
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
        "apiVersion: other.io/v1\nkind: Destination\nmetadata: {name: o}\nspec: 5\n",
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: Bucket\nmetadata: {name: b}\n",
    ]
    text = "---\n".join([GOOD, *others])
    code, out, err = run(capsys, ["-"], stdin=text)
    assert (code, out) == (0, "")
    assert err.splitlines()[-1] == (
        "lint: 1 Destination(s) in 1 file(s): 0 error(s), 0 warning(s), "
        "3 object(s) of other kinds skipped"
    )
    code, out, err = run(capsys, ["--summary", "-"], stdin=text)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "Summary: 4 object(s) found in 1 file(s) - Checked: 1, Valid: 1, Invalid: 0, "
        "Skipped: 3, Errors: 0, Warnings: 0"
    ]


def test_a_long_or_multiline_key_stays_on_one_short_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key in ("k" * 1000, '"a\\nb"'):
        code, out, _ = run(capsys, ["-q", "-"], stdin=destination(f"{S3}\n{key}: 1"))
        assert code == 1
        assert len(errors(out)) == 1 and len(out) < 500, out[:500]
        assert errors(out)[0].startswith("<stdin>:9:3: d: ")


def test_junit_names_an_empty_input_under_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from xml.etree import ElementTree as ET

    code, out, _ = run(capsys, ["--strict", "-o", "junit", str(tmp_path)])
    assert code == 1
    (suite,) = ET.fromstring(out.encode()).findall("testsuite")
    assert (suite.get("name"), suite.get("failures")) == (str(tmp_path), "1")
