"""Model architectures, built from the design documents' code (see each spec's `decisions`)."""
