"""The SRE dashboard's page and assets, shipped in the package (no CDN: served offline)."""
