"""Credentials: DefaultAzureCredential against the chosen cloud's authority, checked once up front.

`az login`, managed identity (IMDS or IDENTITY_ENDPOINT) and environment credentials all work. The async
clients share the same (sync, token-caching) credential through a small adapter, so a token is fetched once
per process and every client uses the same identity and CA trust (REQUESTS_CA_BUNDLE).
"""

import asyncio
import os

from .errors import EXIT_AUTH, KitError, translate


def ca_bundle():
    """The CA file the user asked every connection to trust (az's REQUESTS_CA_BUNDLE convention), or None."""
    path = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
    return path if path and os.path.isfile(path) else None


def default_credential(cloud):
    from azure.identity import DefaultAzureCredential

    kwargs = {"authority": cloud.authority_host, "exclude_interactive_browser_credential": True}
    verify = ca_bundle()
    if verify:
        kwargs["connection_verify"] = verify
    return DefaultAzureCredential(**kwargs)


def check(credential, cloud):
    """Fetch one token now, so 'no credentials' is reported before any work starts."""
    try:
        credential.get_token(cloud.scope)
    except Exception as exc:
        err = translate(exc, f"token for {cloud.scope}")
        if err is None:
            raise KitError(f"cannot obtain a token for {cloud.scope}: {type(exc).__name__}", EXIT_AUTH) from None
        raise err from None


class AsyncCredential:
    """Expose a sync credential to the `.aio` clients (tokens are cached, so the thread hop is rare)."""

    def __init__(self, credential):
        self._credential = credential

    async def get_token(self, *scopes, **kwargs):
        return await asyncio.to_thread(self._credential.get_token, *scopes, **kwargs)

    async def get_token_info(self, *scopes, options=None):
        if hasattr(self._credential, "get_token_info"):
            return await asyncio.to_thread(self._credential.get_token_info, *scopes, options=options)
        return await self.get_token(*scopes)

    async def close(self):
        pass

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        pass
