"""Vault events, client customizations, jobs and the job processor."""
