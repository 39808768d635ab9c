"""Route plugins: how other areas add emulator routes without editing the core.

Drop a module in this package (e.g. `harness/armemu/plugins/deployments.py`) that defines

    def register(router):
        @router.route("PUT", "/subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.Resources/"
                             "deployments/{name}")
        def put_deployment(req):          # req: harness.armemu.router.Request
            ...                           # req.emu.estate (lock: req.emu.estate.lock), req.body, req.params
            return json_response({...}, status=201)

Every emulator instance imports every module here (sorted by name) and calls its `register(router)` after the
core routes, so core routes match first; pass `first=True` to `router.add` to override one. Per-emulator
scratch state for a plugin goes in `req.emu.ops` (a dict). Routes are case-insensitive, `{x}` matches one
path segment, percent-decoded. Requests to plugin routes are metered, throttled, delayed and logged like
any other ARM request.
"""

import importlib
import pkgutil


def load_all(router):
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if callable(register):
            register(router)
