"""Errors the user can act on, and their exit codes; azure-core exceptions are translated here.

Every failure reaches the user as one clear line naming what is wrong: never a traceback, never a token.
"""

import contextlib

EXIT_OK = 0
EXIT_FAILED = 1  # the check ran and something failed (verify), or some VMs could not be enabled
EXIT_USAGE = 2  # bad arguments or input files
EXIT_AUTH = 3  # no usable credentials
EXIT_FORBIDDEN = 4  # 403: the identity lacks a permission
EXIT_NOT_FOUND = 5  # unknown subscription, vault or policy
EXIT_SERVICE = 6  # network, TLS or service errors
EXIT_INTERRUPTED = 130


class KitError(Exception):
    def __init__(self, message, exit_code=EXIT_USAGE):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def _error_field(exc, name):
    """A field of the ARM error body: from the SDK's parsed `error`, else from the raw response JSON."""
    value = getattr(getattr(exc, "error", None), name, None)
    if value:
        return str(value)
    try:
        return str(exc.response.json()["error"][name])
    except Exception:
        return ""


def error_code(exc):
    """The ARM error code of an HttpResponseError, or ''."""
    return _error_field(exc, "code")


def error_message(exc):
    return _error_field(exc, "message") or (str(getattr(exc, "reason", "") or exc).splitlines() or [""])[0]


@contextlib.contextmanager
def translated(what=""):
    """Inside this block an azure-core / azure-identity exception leaves as a KitError naming `what`;
    KitErrors and anything else pass through unchanged."""
    try:
        yield
    except KitError:
        raise
    except Exception as exc:
        err = translate(exc, what)
        if err is None:
            raise
        raise err from None


def translate(exc, what=""):
    """Turn an azure-core / azure-identity exception into a KitError (or None when it is not one of them)."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    try:
        from azure.identity import CredentialUnavailableError
    except ImportError:  # pragma: no cover - azure-identity is a hard dependency
        CredentialUnavailableError = ClientAuthenticationError
    where = f" ({what})" if what else ""
    if isinstance(exc, CredentialUnavailableError) or (
        isinstance(exc, ClientAuthenticationError) and getattr(exc, "status_code", None) is None
    ):
        return KitError(
            "no usable Azure credentials: run `az login`, set AZURE_CLIENT_ID/AZURE_TENANT_ID/"
            "AZURE_CLIENT_SECRET, or run where a managed identity is available"
            f"{where}. Detail: {_first_line(exc)}",
            EXIT_AUTH,
        )
    if isinstance(exc, HttpResponseError):
        status, code = exc.status_code, error_code(exc)
        if status == 401:
            return KitError(f"authentication refused{where}: {error_message(exc)}", EXIT_AUTH)
        if status == 403:
            return KitError(f"permission denied{where}: {code or 'Forbidden'}: {error_message(exc)}", EXIT_FORBIDDEN)
        if status == 404 and code in ("SubscriptionNotFound", "InvalidSubscriptionId"):
            return KitError(f"unknown subscription{where}: {error_message(exc)}", EXIT_NOT_FOUND)
        if status == 404:
            return KitError(f"not found{where}: {code or 'NotFound'}: {error_message(exc)}", EXIT_NOT_FOUND)
        return KitError(f"Azure answered {status} {code}{where}: {error_message(exc)}", EXIT_SERVICE)
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return KitError(f"cannot reach Azure{where}: {_first_line(exc)}", EXIT_SERVICE)
    return None


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
