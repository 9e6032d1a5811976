"""Shared pytest set-up. Fixture plugins live in tests/fixtures/."""

pytest_plugins = ["fixtures.postgres", "fixtures.jupyterhub", "fixtures.governance_stack", "fixtures.keycloak"]
