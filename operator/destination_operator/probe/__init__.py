"""One verification: the endpoint guard, the probe's deadline and bounds, the named steps."""
