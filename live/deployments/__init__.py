"""Deployment manifests on disk and the set of active deployments."""
