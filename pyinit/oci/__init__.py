"""The OCI runtime spec: config.json parsing and defaults."""
