"""ARM templates of the kit: generated from one description, validated offline against the official schemas.

Entry point: `python -m vmsnapkit.arm generate|check|validate ...` (see __main__.py).
"""
