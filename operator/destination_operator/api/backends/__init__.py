"""The member blocks of `Destination.spec`: one model per backend, its rules, where it writes.

`spec.type` selects exactly one of these blocks (`DestinationSpec.member`);
`api.spec` holds the union rules around them. Each block carries its naming
rules as `Rule`s beside its fields (the CRD is generated from them, like the
rest of the spec), and `location()`: where data goes, one line for
`status.target` and the TARGET column. That is formatting of the spec alone,
so it lives here, not with the providers, and the pure status code reads it
without importing them.

One module per backend family, as in `providers/` (`s3`, `gcs`, `azure`,
`oss`, `webhook`), rather than one `backends.py`: the seven blocks with their
rules would come to about 600 lines in one module, and a new backend then
adds a module beside its provider's instead of growing a shared one. This
package holds only `Member`, the union of the blocks.
"""

from __future__ import annotations

from .azure import AzureBlobStorage
from .gcs import GoogleCloudStorage
from .oss import AlibabaOSS
from .s3 import AmazonS3, OracleCloudStorage, S3Compatible
from .webhook import Webhook

__all__ = ["Member"]

Member = (
    AmazonS3
    | S3Compatible
    | GoogleCloudStorage
    | AzureBlobStorage
    | AlibabaOSS
    | OracleCloudStorage
    | Webhook
)
"""One of the member blocks."""
