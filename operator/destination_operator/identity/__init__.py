"""Workload identity: credentials without static keys, from a ServiceAccount's token.

A Destination's `spec.credentials` names a ServiceAccount of its namespace
(`serviceAccountName`) or asks for the operator's own identity (`operatorIdentity`);
`resolve.Identities` turns that into credentials its cloud issued, which the engine hands
to the probe instead of Secret data (the provider's `load_identity`,
`providers/issued.py`).

The modules:

- `resolve`: the policy (settings), the ServiceAccount, its token, the exchange, the cache,
  the fingerprint; each step's failure with its own reason;
- `cache`: `CredentialCache`, tokens and issued credentials until shortly before expiry;
- `clouds`: the `Cloud` protocol, where a cloud plugs in, and `clouds_for` (which clouds
  this build has);
- `aws`: STS `AssumeRoleWithWebIdentity` for `AmazonS3`.

The Kubernetes calls (reading the ServiceAccount, the TokenRequest) are in
`kube/serviceaccounts.py`. These run in a thread of their own, outside any probe's
control: every endpoint here is an operator setting, never a Destination's.
"""
