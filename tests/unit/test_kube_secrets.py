"""How the operator words a refused Secret read (the real 403 is in
tests/cluster/test_operator_secret_forbidden.py; these pin the wording's cases)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from destination_operator.kube import secrets
from destination_operator.kube.secrets import SecretForbidden, SecretUnreadable, read_secret

# The body kube-apiserver v1.34 sends with a 403 on a Secret GET.
FORBIDDEN_BODY = json.dumps(
    {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": 'secrets "creds" is forbidden: User "system:serviceaccount:ops:op" cannot '
        'get resource "secrets" in API group "" in the namespace "team-a"',
        "reason": "Forbidden",
        "code": 403,
    }
)


@pytest.fixture(autouse=True)
def no_kubeconfig(monkeypatch: pytest.MonkeyPatch) -> None:
    """The API's answers are replaced below: no configuration needs loading."""
    monkeypatch.setattr(secrets, "api_client", client.ApiClient)


def refusing(status: int, body: str | None) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        error = client.ApiException(status=status, reason="refused")
        error.body = body
        raise error

    return call


@pytest.mark.parametrize(
    ("status", "body", "says"),
    [
        (403, FORBIDDEN_BODY, "RBAC does not let system:serviceaccount:ops:op read Secret 'creds'"),
        (403, "not json", "RBAC does not let the operator read Secret 'creds'"),
        (403, None, "RBAC does not let the operator read Secret 'creds'"),
        (401, None, "refused the operator's own credentials (HTTP 401)"),
    ],
)
def test_a_refused_read_is_forbidden_and_names_the_grant(
    monkeypatch: pytest.MonkeyPatch, status: int, body: str | None, says: str
) -> None:
    monkeypatch.setattr(secrets, "call", refusing(status, body))
    with pytest.raises(SecretForbidden) as raised:
        read_secret("team-a", "creds")
    assert says in str(raised.value)
    if status == 403:
        assert "get on secrets (core API group) in namespace 'team-a'" in str(raised.value)


def test_other_refusals_are_unreadable_not_forbidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secrets, "call", refusing(409, None))
    with pytest.raises(SecretUnreadable) as raised:
        read_secret("team-a", "creds")
    assert not isinstance(raised.value, SecretForbidden)
    assert "HTTP 409" in str(raised.value)


def test_a_missing_secret_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secrets, "call", refusing(404, None))
    assert read_secret("team-a", "creds") is None
