"""The only package in `enterprise` that imports pymongo."""
