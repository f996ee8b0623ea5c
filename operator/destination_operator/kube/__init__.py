"""Kubernetes I/O: the API client, Secrets, status patches, events."""
