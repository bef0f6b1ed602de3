"""HTTP resources: parse, call a service, set body/ETag/status. No try/except here."""
