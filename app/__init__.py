"""Tidings core: domain model, storage, services, web archive and JSON API, settings, CLI."""
