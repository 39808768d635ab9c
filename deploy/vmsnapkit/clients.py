"""One place that builds every SDK client for the chosen cloud: base URL, token scope, CA trust, retries
and the rate-limit hook. Nothing else constructs a client, so no client can miss the cloud settings."""

from .credentials import AsyncCredential, ca_bundle
from .throttle import RateMonitor

USER_AGENT = "vmsnapkit"


class ClientFactory:
    def __init__(self, cloud, credential, *, monitor=None, retry_total=8, polling_interval=5.0):
        self.cloud = cloud
        self.credential = credential
        self.monitor = monitor or RateMonitor()
        self.retry_total = retry_total
        self.polling_interval = polling_interval
        self._aio_credential = AsyncCredential(credential)

    def _kwargs(self, base_url=None):
        kw = {
            "base_url": (base_url or self.cloud.resource_manager).rstrip("/"),
            "credential_scopes": [self.cloud.scope],
            "raw_response_hook": self.monitor.observe,
            "retry_total": self.retry_total,
            "user_agent": USER_AGENT,
        }
        verify = ca_bundle()
        if verify:
            kw["connection_verify"] = verify
        kw["polling_interval"] = self.polling_interval  # used only when Azure sends no Retry-After
        return kw

    # -- sync ---------------------------------------------------------------------------------------
    def subscriptions(self):
        from azure.mgmt.resource.subscriptions import SubscriptionClient

        return SubscriptionClient(self.credential, **self._kwargs())

    def compute(self, subscription):
        from azure.mgmt.compute import ComputeManagementClient

        return ComputeManagementClient(self.credential, subscription, **self._kwargs())

    def backup(self, subscription):
        from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient

        return RecoveryServicesBackupClient(self.credential, subscription, **self._kwargs())

    def vaults(self, subscription):
        from azure.mgmt.recoveryservices import RecoveryServicesClient

        return RecoveryServicesClient(self.credential, subscription, **self._kwargs())

    def graph(self):
        from azure.mgmt.resourcegraph import ResourceGraphClient

        return ResourceGraphClient(self.credential, **self._kwargs(self.cloud.resource_graph))

    # -- async (aiohttp) ----------------------------------------------------------------------------
    def acompute(self, subscription):
        from azure.mgmt.compute.aio import ComputeManagementClient

        return ComputeManagementClient(self._aio_credential, subscription, **self._kwargs())

    def abackup(self, subscription):
        from azure.mgmt.recoveryservicesbackup.aio import RecoveryServicesBackupClient

        return RecoveryServicesBackupClient(self._aio_credential, subscription, **self._kwargs())

    def avaults(self, subscription):
        from azure.mgmt.recoveryservices.aio import RecoveryServicesClient

        return RecoveryServicesClient(self._aio_credential, subscription, **self._kwargs())
