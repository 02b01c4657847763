"""The embedded stack of `make run`: moto in-process, resources from infra/, the API, tick and pumps."""
