"""Business rules: authorisation, validation, derived fields, cache invalidation, batching."""
