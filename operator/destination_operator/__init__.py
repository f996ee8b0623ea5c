"""Destination Operator: verified cloud storage delivery targets as Kubernetes resources."""

__version__ = "0.1.0"
