"""Generators of the data the models train on: seeded, deterministic, hashed."""
