"""Reading fields of the management SDKs' answers.

Some models come back as a base class whose subclass fields raise AttributeError (recoveryservicesbackup
11.x returns protected items as the base `ProtectedItem`), and the newer typespec models are mappings too;
so every read goes through mapping access on the REST (camelCase) keys, which works on hybrid SDK models
and plain dicts alike.
"""


def lookup(obj, *keys, default=None):
    """obj[k1][k2]...; `default` when any step is missing or the value is None."""
    for key in keys:
        if obj is None:
            return default
        try:
            obj = obj[key]
        except (KeyError, TypeError, IndexError):
            return default
    return default if obj is None else obj
