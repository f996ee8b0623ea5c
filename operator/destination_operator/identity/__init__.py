"""Workload identity: credentials without static keys, from a ServiceAccount's token.

A Destination's `spec.credentials` names a ServiceAccount of its namespace
(`serviceAccountName`) or asks for the operator's own identity (`operatorIdentity`);
`resolve.Identities` turns that into credentials its cloud issued, which the engine hands
to the probe instead of Secret data (the provider's `load_identity`,
`providers/issued.py`).

The modules:

- `resolve`: the policy (settings), the ServiceAccount, its token, the exchange, the cache,
  the fingerprint; each step's failure with its own reason;
- `clouds`: the `Cloud` protocol, where a cloud plugs in, and `clouds_for` (which clouds
  this build has);
- `aws`: STS `AssumeRoleWithWebIdentity` for `AmazonS3`;
- `google`: the STS token exchange and `generateAccessToken` for `GoogleCloudStorage`;
- `azure`: a client assertion to Entra ID for `AzureBlobStorage`.

Tokens and issued credentials are kept in the operator's one `providers.tokencache`,
beside the access tokens of Google service-account keys.

The Kubernetes calls (reading the ServiceAccount, the TokenRequest) are in
`kube/serviceaccounts.py`. These run in a thread of their own, outside any probe's
control: every endpoint here is an operator setting, never a Destination's.
"""
