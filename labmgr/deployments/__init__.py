"""Deployments: a lab snapshot compiled for a host, and its lifecycle state machine."""
