"""Offline tools that read the API models: `lint` and the CRD generator."""
