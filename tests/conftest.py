"""The fixtures of the whole test suite, registered once, here.

Every fixture lives in a named module beside what it serves (DEVELOPMENT.md,
"Where the fixtures are"), and each is registered by `pytest_plugins` below,
which pytest reads only in this, the top conftest. So any set of folders
collects and runs together, and a test imports helpers from those modules by
name, never from a conftest.
"""

pytest_plugins = [
    "controlplane_fixtures",  # tests/: the control plane, the CRD, a namespace per test
    "server_fixtures",  # tests/: the S3 server and servers that misbehave
    "operator_fixtures",  # tests/cluster/: the operator under test; the end-of-run checks
    "node_fixtures",  # tests/install/: a real node beside the control plane
    "release_fixtures",  # tests/install/: a release built once into dist/, installed from there
    "parallel",  # tests/: which tests share a worker under pytest-xdist
]
