"""Cloud metadata, the managed-identity token endpoint and the subscription/tenant lists.

Enough for `az cloud register --endpoint-resource-manager <emu>` + `az login --identity`, and for
azure-identity's ManagedIdentityCredential (App Service flavour: IDENTITY_ENDPOINT + IDENTITY_HEADER).
"""

import base64
import json
import time

from .router import arm_error, json_response

ARM_AUDIENCE = "https://management.core.windows.net/"


def metadata(emu):
    """The newer metadata format (with `suffixes`), pointing every endpoint at the emulator."""
    u = emu.url + "/"
    return {
        "name": "ArmEmulator",
        "resourceManager": u,
        "galleryEndpoint": u,
        "graphEndpoint": u,
        "portalEndpoint": u,
        "sqlManagement": u,
        "batch": u,
        "media": u,
        "microsoftGraphResourceId": u,
        "graphAudience": "https://graph.windows.net/",
        "activeDirectoryDataLake": "https://datalake.azure.net/",
        "vmImageAliasDoc": u + "aliases.json",
        "authentication": {
            "loginEndpoint": u,
            "audiences": [ARM_AUDIENCE, "https://management.azure.com/"],
            "tenant": "common",
            "identityProvider": "AAD",
        },
        "suffixes": {
            "storage": "core.windows.net",
            "keyVaultDns": "vault.azure.net",
            "sqlServerHostname": "database.windows.net",
            "acrLoginServer": "azurecr.io",
        },
    }


def _b64(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def make_jwt(tenant_id, audience, lifetime=3600):
    """A JWT-shaped token: az reads `tid` without verifying, so the signature is a dummy."""
    now = int(time.time())
    claims = {
        "aud": audience,
        "iss": f"https://sts.windows.net/{tenant_id}/",
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "tid": tenant_id,
        "oid": "00000000-0000-4000-8000-0000000000aa",
        "sub": "armemu-managed-identity",
        "xms_mirid": "armemu",
    }
    return f"{_b64({'typ': 'JWT', 'alg': 'RS256'})}.{_b64(claims)}.ZHVtbXktc2lnbmF0dXJl", now + lifetime


def register(router):
    @router.route("GET", "/metadata/endpoints")
    def cloud_metadata(req):
        return json_response(metadata(req.emu))

    @router.route("*", "/msi/token")
    def msi_token(req):
        # App Service style (X-IDENTITY-HEADER) and the older MSI_SECRET style (secret header) both work.
        if not (req.headers.get("x-identity-header") or req.headers.get("secret") or req.headers.get("metadata")):
            return arm_error(400, "invalid_request", "Required header X-IDENTITY-HEADER is missing")
        resource = req.query.get("resource") or ARM_AUDIENCE
        token, exp = make_jwt(req.emu.estate.tenant_id, resource)
        return json_response(
            {
                "access_token": token,
                "expires_on": str(exp),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": "00000000-0000-4000-8000-0000000000bb",
            }
        )

    @router.route("GET", "/subscriptions")
    def list_subscriptions(req):
        est = req.emu.estate
        with est.lock:
            return json_response({"value": [_subscription(est, s, n) for s, n in sorted(est.subscriptions.items())]})

    @router.route("GET", "/subscriptions/{sub}")
    def get_subscription(req):
        est = req.emu.estate
        sub = req.params["sub"].lower()
        with est.lock:
            if sub not in est.subscriptions:
                return subscription_not_found(req.params["sub"])
            return json_response(_subscription(est, sub, est.subscriptions[sub]))

    @router.route("GET", "/tenants")
    def list_tenants(req):
        tid = req.emu.estate.tenant_id
        return json_response(
            {
                "value": [
                    {
                        "id": f"/tenants/{tid}",
                        "tenantId": tid,
                        "tenantCategory": "Home",
                        "displayName": "ArmEmulator tenant",
                        "defaultDomain": "armemu.local",
                    }
                ]
            }
        )


def subscription_not_found(sub):
    return arm_error(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")


def _subscription(est, sub, name):
    return {
        "id": f"/subscriptions/{sub}",
        "subscriptionId": sub,
        "tenantId": est.tenant_id,
        "displayName": name,
        "state": "Enabled",
        "authorizationSource": "RoleBased",
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "PayAsYouGo_2014-09-01",
            "spendingLimit": "Off",
        },
    }
