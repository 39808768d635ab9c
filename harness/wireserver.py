"""An in-process fake of Azure's WireServer (168.63.129.16) and HostGAPlugin (:32526) for the real guest agent.

It stands in for `azurelinuxagent.common.utils.restutil.http_request` and nothing else (contract §15): every
document the agent fetches is generated here from the goal state the test sets (handler version, state,
sequence number, settings), the tenant certificate travels as a PFX in a CMS envelope to the agent's own
TransportCert.pem (so the agent itself writes <THUMB>.crt/.prv), the plugin manifest and zip bytes come from
the built extension zips, and every status the agent uploads is decoded and kept. Requests nobody answers
are recorded as unhandled, so calls added by newer agents show up in the test output.

The HostGAPlugin serves `/vmSettings` as a current host does (harness.fasttrack): a goal state goes out as
FastTrack (vmSettings only) to an agent whose last status advertised FastTrack, else as Fabric (a new
incarnation and ExtensionsConfig, mirrored into vmSettings); every vmSettings change has a new ETag and an
`If-None-Match` naming the current one gets 304. `deliveries` records which document carried which goal state.
"""

import base64
import json
import os
import subprocess
import threading
import urllib.parse
from xml.sax.saxutils import escape, quoteattr

from .fasttrack import FABRIC, FAST_TRACK, Publication, advertises_fast_track, vm_settings_document

WIRESERVER = "168.63.129.16"
HOST_PLUGIN = WIRESERVER + ":32526"
ARTIFACT_HOST = "https://artifacts.wireserver.invalid"  # .invalid: can never resolve, even by mistake
STATUS_BLOB_URL = "https://statusblob.wireserver.invalid/vmstatus/status.blob?sv=2019-12-12&sr=b&sp=rw&sig=FAKE"
CONTAINER_ID = "4a4a7a29-ec1b-4bd2-8b0f-67c2e7b1c4d5"
ROLE_INSTANCE = "b7a4e3d2c1f04e0f8a6b5c4d3e2f1a0b._vm"
ROLE_GUID = "{6c3a1f6e-2b9d-4c1e-9d8f-7a6b5c4d3e2f}"
DEPLOYMENT = "e5b2d6c9a1f34a7b9c8d7e6f5a4b3c2d"


class FakeResponse(object):
    """The subset of http.client.HTTPResponse the agent uses: status, reason, read(), getheaders()."""

    def __init__(self, status, body=b"", headers=None, reason=None):
        self.status = status
        self.reason = reason or {200: "OK", 201: "Created", 304: "Not Modified", 404: "Not Found", 410: "Gone"}.get(
            status, "Status"
        )
        self._body = body if isinstance(body, bytes) else body.encode("utf-8")
        self._pos = 0
        self._headers = list(headers or [])

    def read(self, amt=None):
        end = len(self._body) if amt is None or amt < 0 else min(len(self._body), self._pos + amt)
        chunk, self._pos = self._body[self._pos : end], end
        return chunk

    def getheaders(self):
        return list(self._headers)

    def getheader(self, name, default=None):
        for key, value in self._headers:
            if key.lower() == name.lower():
                return value
        return default


class GoalState(object):
    """What the fabric asks of the VM for our one handler."""

    def __init__(self, handler, version, state="enabled", seq=None, handler_settings=None):
        self.handler = handler  # <Publisher>.<Type>
        self.version = version
        self.state = state  # enabled | disabled | uninstall
        self.seq = seq  # None: no PluginSettings at all
        self.handler_settings = handler_settings  # {publicSettings, protectedSettings, ...Thumbprint}


def _openssl(*args, data=None):
    return subprocess.run(["openssl"] + list(args), input=data, check=True, capture_output=True).stdout


class FakeWireServer(object):
    def __init__(self, lib_dir, tenant, zips):
        """lib_dir: the agent's Lib.Dir (where it creates TransportCert.pem); tenant: harness.certs.TenantCert;
        zips: {version: path of <H>__<version>.zip} served by the plugin manifest."""
        self.lib_dir = lib_dir
        self.tenant = tenant
        self.zips = dict(zips)
        self.incarnation = 0
        self.goal_state = None  # the most recently published goal state (either source)
        self.fabric = None  # the Publication the WireServer's ExtensionsConfig carries
        self.vm_settings = None  # the Publication /vmSettings carries (the newest of either source)
        self.publications = []
        self.vm_settings_supported = True  # False: a HostGAPlugin without vmSettings (404, pre-FastTrack hosts)
        self.deliveries = []  # (document, Publication) for every 200 answer that carried a goal state
        self.not_modified = 0  # vmSettings requests answered 304 (If-None-Match named the current ETag)
        self.requests = []  # (method, url without query secrets)
        self.unhandled = []
        self.status_uploads = []  # decoded VM status documents, in upload order
        self._certificates = {}  # transport cert PEM -> wrapped tenant PFX (a restarted agent makes a new one)
        self._lock = threading.Lock()

    # -- what the test changes --------------------------------------------------------------------
    def publish(self, goal_state, source=None):
        """A new goal state, sent the way the host would (`source` None) or as FABRIC / FAST_TRACK.
        Fabric: the incarnation goes up and ExtensionsConfig changes; FastTrack: only vmSettings change."""
        with self._lock:
            if source is None:
                source = (
                    FAST_TRACK if self.vm_settings_supported and advertises_fast_track(self.last_status) else FABRIC
                )
            if source == FABRIC:
                self.incarnation += 1
            publication = Publication(goal_state, source, len(self.publications) + 1, self.incarnation)
            self.publications.append(publication)
            self.goal_state = goal_state
            self.vm_settings = publication
            if source == FABRIC:
                self.fabric = publication
            return publication

    def supplied(self, status):
        """(document, Publication) of the extension goal state an uploaded status says the agent processed
        (aggregateStatus.vmArtifactsAggregateStatus.goalStateAggregateStatus.inSvdSeqNo): the vmSettings of a
        FastTrack goal state, the WireServer's ExtensionsConfig of a Fabric one; None if it names none of ours."""
        artifacts = (status.get("aggregateStatus") or {}).get("vmArtifactsAggregateStatus") or {}
        reported = (artifacts.get("goalStateAggregateStatus") or {}).get("inSvdSeqNo")
        for publication in self.publications:
            if str(publication.in_svd_seq_no) == str(reported):
                return ("vmSettings" if publication.source == FAST_TRACK else "extensionsConfig"), publication
        return None

    def documents_carrying(self, publication):
        """The documents whose 200 answers carried `publication` to the agent."""
        return sorted({doc for doc, p in self.deliveries if p is publication})

    @property
    def last_status(self):
        return self.status_uploads[-1] if self.status_uploads else None

    # -- the replacement for restutil.http_request --------------------------------------------------
    def http_request(self, method, url, data=None, *args, **kwargs):
        headers = kwargs.get("headers") or (args[0] if args and isinstance(args[0], dict) else None) or {}
        with self._lock:
            self.requests.append((method, url.split("?")[0] + ("?" + _safe_query(url) if "?" in url else "")))
            return self._route(method, url, data, headers)

    def _route(self, method, url, data, headers):
        parts = urllib.parse.urlsplit(url)
        query = dict(urllib.parse.parse_qsl(parts.query))
        netloc, path = parts.netloc, parts.path
        if netloc in (WIRESERVER, WIRESERVER + ":80"):
            if query.get("comp") == "versions":
                return FakeResponse(200, self._versions_xml())
            if query.get("comp") == "goalstate":
                return FakeResponse(200, self._goal_state_xml())
            if query.get("comp") == "config":
                doc = {
                    "hostingEnvironmentConfig": self._hosting_env_xml,
                    "sharedConfig": self._shared_config_xml,
                    "extensionsConfig": self._extensions_config_xml,
                    "fullConfig": self._full_config_xml,
                }.get(query.get("type"))
                if doc is not None:
                    if query.get("type") == "extensionsConfig":
                        self.deliveries.append(("extensionsConfig", self.fabric))
                    return FakeResponse(200, doc())
            if query.get("comp") == "certificates":
                return FakeResponse(200, self._certificates_xml())
            if method == "POST":  # health, roleProperties, telemetrydata, HealthService
                return FakeResponse(200)
        if netloc == HOST_PLUGIN:
            if path == "/vmSettings":
                return self._vm_settings(headers)
            if path == "/versions":
                return FakeResponse(200, '["2015-09-01"]')
            if path == "/health":
                return FakeResponse(200)
            if path == "/status" and method == "PUT":
                envelope = json.loads(data if isinstance(data, str) else data.decode("utf-8"))
                self._capture_status(base64.b64decode(envelope["content"]))
                return FakeResponse(200)
            if path == "/vmAgentLog":
                return FakeResponse(200)
            if path == "/extensionArtifact":
                location = _header(headers, "x-ms-artifact-location")
                if location:
                    return self._artifact(location)
        if url.startswith(ARTIFACT_HOST):
            return self._artifact(url)
        if url.split("?")[0] == STATUS_BLOB_URL.split("?")[0] and method == "PUT":
            self._capture_status(data if isinstance(data, bytes) else data.encode("utf-8"))
            return FakeResponse(201)
        self.unhandled.append((method, url.split("?")[0]))
        return FakeResponse(404, "unhandled by the fake WireServer")

    def _vm_settings(self, headers):
        """GET /vmSettings as the HostGAPlugin answers it: 404 when unsupported, 304 when If-None-Match names
        the current ETag, else the document with its ETag."""
        if not self.vm_settings_supported:
            return FakeResponse(404, "vmSettings are not supported by this HostGAPlugin")
        if _header(headers, "x-ms-containerid") not in (None, CONTAINER_ID):
            return FakeResponse(410, "the container id changed: refresh the goal state")
        current = self.vm_settings
        if current is None:
            return FakeResponse(404, "no goal state yet")
        etag_header = [("ETag", current.etag)]
        if _header(headers, "if-none-match") == current.etag:
            self.not_modified += 1
            return FakeResponse(304, b"", etag_header)
        self.deliveries.append(("vmSettings", current))
        body = vm_settings_document(
            current,
            [self.manifest_uri("location"), self.manifest_uri("failover")],
            STATUS_BLOB_URL,
            "%s/ga/Prod_manifest.xml" % ARTIFACT_HOST,
        )
        return FakeResponse(200, body, etag_header + [("Content-Type", "application/json; charset=utf-8")])

    def _capture_status(self, raw):
        self.status_uploads.append(json.loads(raw.decode("utf-8").rstrip()))

    # -- artifacts: plugin version manifest and zips -------------------------------------------------
    def manifest_uri(self, which="location"):
        return "%s/%s/%s_manifest.xml" % (ARTIFACT_HOST, which, self.goal_state.handler.replace(".", "_"))

    def zip_uri(self, version):
        return "%s/zips/%s__%s.zip" % (ARTIFACT_HOST, self.goal_state.handler, version)

    def _artifact(self, url):
        url = url.split("?")[0]
        if url in (self.manifest_uri("location"), self.manifest_uri("failover")):
            return FakeResponse(200, self._plugin_manifest_xml())
        for version, path in self.zips.items():
            if url == self.zip_uri(version):
                with open(path, "rb") as f:
                    return FakeResponse(200, f.read(), [("Content-Type", "application/zip")])
        self.unhandled.append(("GET", url))
        return FakeResponse(404, "no such artifact")

    def _plugin_manifest_xml(self):
        plugins = "".join(
            "<Plugin><Version>%s</Version><Uris><Uri>%s</Uri></Uris></Plugin>" % (escape(v), escape(self.zip_uri(v)))
            for v in sorted(self.zips)
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?><PluginVersionManifest '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">'
            "<Plugins>%s</Plugins><InternalPlugins /></PluginVersionManifest>" % plugins
        )

    # -- goal state documents ------------------------------------------------------------------------
    def _config_url(self, kind):
        if kind == "certificates":
            return "http://%s/machine/%s/%s?comp=certificates&incarnation=%d" % (
                WIRESERVER,
                CONTAINER_ID,
                ROLE_INSTANCE,
                self.incarnation,
            )
        return "http://%s/machine/%s/%s?comp=config&type=%s&incarnation=%d" % (
            WIRESERVER,
            CONTAINER_ID,
            ROLE_INSTANCE,
            kind,
            self.incarnation,
        )

    @staticmethod
    def _versions_xml():
        return (
            '<?xml version="1.0" encoding="utf-8"?><Versions><Preferred><Version>2012-11-30</Version>'
            "</Preferred><Supported><Version>2010-12-15</Version><Version>2012-11-30</Version></Supported>"
            "</Versions>"
        )

    def _goal_state_xml(self):
        urls = {
            k: escape(self._config_url(k))
            for k in ("hostingEnvironmentConfig", "sharedConfig", "extensionsConfig", "fullConfig", "certificates")
        }
        return (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<GoalState xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation='
            '"goalstate10.xsd"><Version>2010-12-15</Version><Incarnation>%d</Incarnation>'
            "<Machine><ExpectedState>Started</ExpectedState><StopRolesDeadlineHint>300000</StopRolesDeadlineHint>"
            "<LBProbePorts><Port>16001</Port></LBProbePorts><ExpectHealthReport>FALSE</ExpectHealthReport>"
            "</Machine><Container><ContainerId>%s</ContainerId><RoleInstanceList><RoleInstance>"
            "<InstanceId>%s</InstanceId><State>Started</State><Configuration>"
            "<HostingEnvironmentConfig>%s</HostingEnvironmentConfig><SharedConfig>%s</SharedConfig>"
            "<ExtensionsConfig>%s</ExtensionsConfig><FullConfig>%s</FullConfig><Certificates>%s</Certificates>"
            "<ConfigName>%s.%d.%s.1.xml</ConfigName></Configuration></RoleInstance></RoleInstanceList>"
            "</Container></GoalState>"
            % (
                self.incarnation,
                CONTAINER_ID,
                ROLE_INSTANCE,
                urls["hostingEnvironmentConfig"],
                urls["sharedConfig"],
                urls["extensionsConfig"],
                urls["fullConfig"],
                urls["certificates"],
                DEPLOYMENT,
                self.incarnation,
                ROLE_INSTANCE,
            )
        )

    def _hosting_env_xml(self):
        return (
            '<?xml version="1.0" encoding="utf-8"?><HostingEnvironmentConfig version="1.0.0.0" '
            'goalStateIncarnation="%d"><StoredCertificates /><Deployment name="%s" guid="{%s}" '
            'incarnation="%d" isNonCancellableTopologyChangeEnabled="false"><Service name="vmsnapshot-kit" '
            'guid="{00000000-0000-0000-0000-000000000000}" /><ServiceInstance name="%s.0" guid="%s" />'
            '</Deployment><Incarnation number="1" instance="%s" guid="%s" /><Role guid="%s" name="_vm" '
            'hostingEnvironmentVersion="1" software="" softwareType="ApplicationPackage" entryPoint="" '
            'parameters="" settleTimeSeconds="10" /><HostingEnvironmentSettings name="full" '
            'Runtime="rd_fabric_stable.RuntimePackage.zip"><CAS mode="full" /><PrivilegeLevel mode="max" />'
            "</HostingEnvironmentSettings><ApplicationSettings /><ResourceReferences /></HostingEnvironmentConfig>"
            % (
                self.incarnation,
                DEPLOYMENT,
                DEPLOYMENT,
                self.incarnation,
                DEPLOYMENT,
                ROLE_GUID,
                ROLE_INSTANCE,
                ROLE_GUID,
                ROLE_GUID,
            )
        )

    def _shared_config_xml(self):
        return (
            '<?xml version="1.0" encoding="utf-8"?><SharedConfig version="1.0.0.0" goalStateIncarnation="%d">'
            '<Deployment name="%s" guid="{%s}" incarnation="%d" isNonCancellableTopologyChangeEnabled="false">'
            '<Service name="vmsnapshot-kit" guid="{00000000-0000-0000-0000-000000000000}" />'
            '<ServiceInstance name="%s.0" guid="%s" /></Deployment><Incarnation number="1" instance="%s" '
            'guid="%s" /><Role guid="%s" name="_vm" settleTimeSeconds="10" /><Instances><Instance id="%s" '
            'address="10.0.0.4"><FaultDomains randomId="0" /><UpdateDomains randomId="0" /></Instance>'
            "</Instances></SharedConfig>"
            % (
                self.incarnation,
                DEPLOYMENT,
                DEPLOYMENT,
                self.incarnation,
                DEPLOYMENT,
                ROLE_GUID,
                ROLE_INSTANCE,
                ROLE_GUID,
                ROLE_GUID,
                ROLE_INSTANCE,
            )
        )

    def _full_config_xml(self):
        return (
            '<?xml version="1.0" encoding="utf-8"?><FullConfig><Incarnation>%d</Incarnation></FullConfig>'
            % self.incarnation
        )

    def _certificates_xml(self):
        return (
            '<?xml version="1.0" encoding="utf-8"?><CertificateFile><Version>2012-11-30</Version>'
            "<Incarnation>%d</Incarnation><Format>Pkcs7BlobWithPfxContents</Format><Data>%s</Data>"
            "</CertificateFile>" % (self.incarnation, self._wrap_tenant_pfx())
        )

    def _wrap_tenant_pfx(self):
        """The tenant PFX (empty password) in a DER CMS envelope (AES-128) to the agent's transport cert."""
        transport = os.path.join(self.lib_dir, "TransportCert.pem")
        if not os.path.exists(transport):
            raise RuntimeError("the agent has not created %s yet (protocol detection runs first)" % transport)
        with open(transport, "rb") as f:
            key = f.read()
        if key not in self._certificates:
            self._certificates[key] = self._envelope(transport)
        return self._certificates[key]

    def _envelope(self, transport):
        pfx = _openssl("pkcs12", "-export", "-in", self.tenant.cert, "-inkey", self.tenant.key, "-passout", "pass:")
        der = _openssl("cms", "-encrypt", "-binary", "-outform", "DER", "-aes128", transport, data=pfx)
        text = base64.b64encode(der).decode()
        return "\n".join(text[i : i + 64] for i in range(0, len(text), 64))

    def _extensions_config_xml(self):
        fabric = self.fabric
        gs = fabric.goal_state
        plugin = (
            '<Plugin name=%s version=%s location=%s failoverlocation=%s state=%s autoUpgrade="false" '
            'runAsStartupTask="false" isJson="true" useExactVersion="true" />'
            % (
                quoteattr(gs.handler),
                quoteattr(gs.version),
                quoteattr(self.manifest_uri("location")),
                quoteattr(self.manifest_uri("failover")),
                quoteattr(gs.state),
            )
        )
        settings = ""
        if gs.seq is not None:
            runtime = json.dumps({"runtimeSettings": [{"handlerSettings": gs.handler_settings or {}}]})
            settings = (
                '<PluginSettings><Plugin name=%s version=%s><RuntimeSettings seqNo="%d">%s</RuntimeSettings>'
                "</Plugin></PluginSettings>" % (quoteattr(gs.handler), quoteattr(gs.version), gs.seq, escape(runtime))
            )
        return (
            '<?xml version="1.0" encoding="utf-8"?><Extensions version="1.0.0.0" goalStateIncarnation="%d">'
            '<GuestAgentExtension xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><GAFamilies>'
            "<GAFamily><Name>Prod</Name><Uris><Uri>%s/ga/Prod_manifest.xml</Uri></Uris></GAFamily>"
            "</GAFamilies><Location>eastus</Location></GuestAgentExtension><Plugins>%s</Plugins>%s"
            '<StatusUploadBlob statusBlobType="BlockBlob">%s</StatusUploadBlob>'
            '<InVMGoalStateMetaData inSvdSeqNo="%d" createdOnTicks="%d" activityId="%s" correlationId="%s" />'
            "</Extensions>"
            % (
                self.incarnation,
                ARTIFACT_HOST,
                plugin,
                settings,
                escape(STATUS_BLOB_URL),
                fabric.in_svd_seq_no,
                fabric.created_on_ticks,
                fabric.activity_id,
                fabric.correlation_id,
            )
        )


def _header(headers, name):
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return value
    return None


def _safe_query(url):
    """The query string with any SAS signature blanked, for the request log."""
    query = url.split("?", 1)[1]
    return "&".join("sig=REDACTED" if p.lower().startswith("sig=") else p for p in query.split("&"))
