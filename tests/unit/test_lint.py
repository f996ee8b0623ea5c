"""`destination-operator lint`: files, folders, stdin, and every kind of bad input."""

from __future__ import annotations

import io
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


def test_multi_document_reports_the_document_index(
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
        f"{path}:3: spec.amazonS3: spec.amazonS3 is required when spec.type is AmazonS3"
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
    assert out.count("\n") == 1 and "two.yml:1: spec.type: Unsupported value" in out
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
    assert out.startswith("<stdin>:2: spec.webhook.url: spec.webhook.url must start with https://")


def test_malformed_yaml_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "bad.yaml", GOOD + "---\nspec: [unclosed\n")
    code, out, err = run(capsys, [str(path)])
    assert code == 1
    assert out.splitlines() == [
        f"{path}:2: yaml: malformed YAML: expected ',' or ']', but got '<stream end>' "
        "(line 11, column 1)"
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
            "spec.amazonS3: spec.amazonS3 is required when spec.type is AmazonS3",
        ),
        (
            destination(
                "type: AmazonS3\namazonS3: {bucket: b-1, region: us-east-1}\n"
                "credentials: {secretRef: {name: s}}\nextra: 1"
            ),
            'spec.extra: unknown field "spec.extra"',
        ),
        (
            destination(
                "type: AmazonS3\namazonS3: {bucket: b-1, region: us-east-1}\n"
                "credentials: {secretRef: {name: s}}\nenabled: 'yes'"
            ),
            "spec.enabled: spec.enabled must be of type boolean",
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
            "spec.amazonS3.bucket: spec.amazonS3.bucket must be of type string",
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
            'spec.1: unknown field "spec.1"',
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
        (GOOD + "specs: {}\n", 'specs: unknown field "specs"'),
        (
            GOOD.replace("metadata:\n  name: good", "metadata: [good]"),
            "metadata: metadata must be of type object",
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
        assert f"<stdin>:1: {expected}" in out


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
    assert "spec.webhook.url must be of type string" in out


def test_list_kind_items_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    doc = (
        "apiVersion: v1\nkind: List\nitems:\n"
        "- apiVersion: destinations.io/v1alpha1\n  kind: Destination\n  metadata: {name: x}\n"
    )
    code, out, _ = run(capsys, ["-"], stdin=doc)
    assert code == 1 and "<stdin>:1: items[0].spec: Required value" in out


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
