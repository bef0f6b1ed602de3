"""enterprise: organizations, clinics and provider-clinic assignments for dental groups."""

__version__ = "0.1.0"
