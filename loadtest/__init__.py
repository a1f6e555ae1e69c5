"""Load tests (Locust scenarios, `djserve loadtest`) and the benchmark (`djserve bench`)."""
