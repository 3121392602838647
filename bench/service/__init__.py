"""The service under load (API load and bursts, queue hygiene) and the servers every benchmark starts."""
