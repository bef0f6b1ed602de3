"""Cross-cutting HTTP concerns: request context, deadlines, compression and latency budgets.

Nothing here imports ``enterprise``; everything a middleware needs arrives through its
constructor, so each one can be tested with a tiny fake ASGI app or Falcon resource.
"""
