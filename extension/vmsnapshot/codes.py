"""Status codes compatible with Microsoft's VMSnapshotLinux, their health states and their messages.

Codes never change with the locale; only the human-readable text does (en-US and zh-CN, English for
anything else). Every code the runtime can report is in TABLE, so building a status can never fail
on an unknown code (the existing extension's 556 KeyError).
"""

GREEN, YELLOW, RED = 0, 128, 256

SUCCESS_APP_CONSISTENT = 0
SUCCESS = 1
ERROR = 2
ALREADY_PROCESSED = 3
TRANSITIONING = 4
BAD_PARAMETER = 11
CERTIFICATE_NOT_FOUND = 16
INVALID_LUN_LIST = 17
SNAPSHOT_FAILED_NO_NETWORK = 76
SNAPSHOT_LIMIT_REACHED = 85
FREEZE_FAILED = 121
FREEZE_TIMEOUT = 122
UNABLE_TO_OPEN_MOUNT = 123
SNAPSHOT_RATE_EXCEEDED = 173
# Pre/post scripts (Microsoft's numbering): a pre code, the post code one above it.
PRE_SCRIPT_FAILED, POST_SCRIPT_FAILED = 300, 301
PRE_SCRIPT_NOT_FOUND, POST_SCRIPT_NOT_FOUND = 302, 303
SCRIPT_CONFIG_INVALID = 305
PRE_SCRIPT_PERMISSION, POST_SCRIPT_PERMISSION = 306, 307
PRE_SCRIPT_TIMEOUT, POST_SCRIPT_TIMEOUT = 308, 309
PRE_PHASE_TIMEOUT, POST_PHASE_TIMEOUT = 310, 311
SCRIPT_CONFIG_NOT_FOUND = 316
SCRIPT_CONFIG_PERMISSION = 317
SCRIPT_CONFIG_OWNERSHIP = 318
COMMAND_TOO_LATE = 402
# Database branch (workload.conf), Microsoft's FailedWorkload* numbering.
WORKLOAD_PRE_ERROR, WORKLOAD_CONF_ERROR, WORKLOAD_INVALID_ROLE, WORKLOAD_INVALID_NAME = 500, 501, 502, 503
WORKLOAD_POST_ERROR, WORKLOAD_AUTH_MISSING, WORKLOAD_CONNECTION_ERROR, WORKLOAD_IPC_DIR_MISSING = 504, 505, 506, 507
WORKLOAD_STATUS_CHANGED, WORKLOAD_QUIESCE_ERROR, WORKLOAD_QUIESCE_TIMEOUT = 508, 509, 510
SNAPSHOT_PARTIAL_FAILURE = 761

# code: (name, health, english text, chinese text). Texts may use {detail}.
TABLE = {
    0: (
        "success_appconsistent",
        GREEN,
        "Enable succeeded with an application-consistent snapshot. {detail}",
        "启用成功，已创建应用程序一致的快照。{detail}",
    ),
    1: ("success", GREEN, "Enable succeeded. {detail}", "启用成功。{detail}"),
    2: ("error", GREEN, "The snapshot job failed: {detail}", "快照作业失败：{detail}"),
    3: (
        "SuccessAlreadyProcessedInput",
        GREEN,
        "This backup task was already processed: {detail}",
        "此备份任务已处理：{detail}",
    ),
    4: ("ExtensionTempTerminalState", GREEN, "Snapshot job in progress. {detail}", "快照作业正在进行。{detail}"),
    11: ("error_parameter", YELLOW, "Invalid extension settings: {detail}", "扩展设置无效：{detail}"),
    12: (
        "error_12",
        GREEN,
        "A file the snapshot job needs does not exist: {detail}",
        "快照作业所需的文件不存在：{detail}",
    ),
    15: ("error_http_failure", RED, "Storage request failed: {detail}", "存储请求失败：{detail}"),
    16: (
        "FailedHandlerGuestAgentCertificateNotFound",
        YELLOW,
        "Protected settings cannot be decrypted: {detail}",
        "无法解密受保护的设置：{detail}",
    ),
    17: (
        "FailedInvalidDataDiskLunList",
        GREEN,
        "Invalid data disk LUN list: {detail}",
        "数据磁盘 LUN 列表无效：{detail}",
    ),
    76: (
        "FailedRetryableSnapshotFailedNoNetwork",
        RED,
        "Every disk snapshot failed: {detail}",
        "所有磁盘快照均失败：{detail}",
    ),
    85: (
        "FailedSnapshotLimitReached",
        RED,
        "The snapshot count limit of a disk blob was reached: {detail}",
        "磁盘 blob 的快照数量已达上限：{detail}",
    ),
    121: (
        "FailedRetryableFsFreezeFailed",
        YELLOW,
        "Freezing the file systems failed: {detail}",
        "冻结文件系统失败：{detail}",
    ),
    122: (
        "FailedRetryableFsFreezeTimeout",
        YELLOW,
        "Freezing the file systems timed out: {detail}",
        "冻结文件系统超时：{detail}",
    ),
    123: (
        "FailedRetryableUnableToOpenMount",
        YELLOW,
        "A mount point could not be opened for freezing: {detail}",
        "无法打开要冻结的挂载点：{detail}",
    ),
    124: (
        "FailedSafeFreezeBinaryNotFound",
        YELLOW,
        "The freeze helper is missing: {detail}",
        "缺少冻结辅助程序：{detail}",
    ),
    173: (
        "FailedRetryableSnapshotRateExceeded",
        GREEN,
        "The storage snapshot rate limit was exceeded: {detail}",
        "超出存储快照速率限制：{detail}",
    ),
    300: ("FailedPrepostPreScriptFailed", YELLOW, "A pre-script failed: {detail}", "前置脚本失败：{detail}"),
    301: ("FailedPrepostPostScriptFailed", YELLOW, "A post-script failed: {detail}", "后置脚本失败：{detail}"),
    302: ("FailedPrepostPreScriptNotFound", YELLOW, "A pre-script was not found: {detail}", "找不到前置脚本：{detail}"),
    303: (
        "FailedPrepostPostScriptNotFound",
        YELLOW,
        "A post-script was not found: {detail}",
        "找不到后置脚本：{detail}",
    ),
    304: (
        "FailedPrepostPluginhostConfigParsing",
        YELLOW,
        "The plugin host configuration is invalid: {detail}",
        "插件主机配置无效：{detail}",
    ),
    305: (
        "FailedPrepostPluginConfigParsing",
        YELLOW,
        "The script configuration is invalid: {detail}",
        "脚本配置无效：{detail}",
    ),
    306: (
        "FailedPrepostPreScriptPermissionError",
        YELLOW,
        "A pre-script was refused because of its owner or permissions: {detail}",
        "由于所有者或权限问题，前置脚本被拒绝：{detail}",
    ),
    307: (
        "FailedPrepostPostScriptPermissionError",
        YELLOW,
        "A post-script was refused because of its owner or permissions: {detail}",
        "由于所有者或权限问题，后置脚本被拒绝：{detail}",
    ),
    308: (
        "FailedPrepostPreScriptTimeout",
        YELLOW,
        "A pre-script timed out and was killed: {detail}",
        "前置脚本超时并已被终止：{detail}",
    ),
    309: (
        "FailedPrepostPostScriptTimeout",
        YELLOW,
        "A post-script timed out and was killed: {detail}",
        "后置脚本超时并已被终止：{detail}",
    ),
    310: (
        "FailedPrepostPluginhostPreTimeout",
        YELLOW,
        "The pre-scripts timed out: {detail}",
        "前置脚本整体超时：{detail}",
    ),
    311: (
        "FailedPrepostPluginhostPostTimeout",
        YELLOW,
        "The post-scripts timed out: {detail}",
        "后置脚本整体超时：{detail}",
    ),
    313: (
        "FailedPrepostPluginhostConfigNotFound",
        YELLOW,
        "The plugin host configuration was not found: {detail}",
        "找不到插件主机配置：{detail}",
    ),
    314: (
        "FailedPrepostPluginhostConfigPermissionError",
        YELLOW,
        "The plugin host configuration has unsafe permissions: {detail}",
        "插件主机配置的权限不安全：{detail}",
    ),
    315: (
        "FailedPrepostPluginhostConfigOwnershipError",
        YELLOW,
        "The plugin host configuration is not owned by root: {detail}",
        "插件主机配置的所有者不是 root：{detail}",
    ),
    316: (
        "FailedPrepostPluginConfigNotFound",
        YELLOW,
        "The script configuration was not found: {detail}",
        "找不到脚本配置：{detail}",
    ),
    317: (
        "FailedPrepostPluginConfigPermissionError",
        YELLOW,
        "The script configuration has unsafe permissions: {detail}",
        "脚本配置的权限不安全：{detail}",
    ),
    318: (
        "FailedPrepostPluginConfigOwnershipError",
        YELLOW,
        "The script configuration is not owned by root: {detail}",
        "脚本配置的所有者不是 root：{detail}",
    ),
    402: (
        "FailedGuestAgentInvokedCommandTooLate",
        RED,
        "The backup command arrived too late to run: {detail}",
        "备份命令到达太晚，无法运行：{detail}",
    ),
    500: (
        "FailedWorkloadPreError",
        YELLOW,
        "The database quiesce step failed: {detail}",
        "数据库静默步骤失败：{detail}",
    ),
    501: (
        "FailedWorkloadConfParsingError",
        YELLOW,
        "The database workload configuration is invalid: {detail}",
        "数据库工作负载配置无效：{detail}",
    ),
    502: (
        "FailedWorkloadInvalidRole",
        YELLOW,
        "The database role is not supported: {detail}",
        "不支持该数据库角色：{detail}",
    ),
    503: (
        "FailedWorkloadInvalidWorkloadName",
        YELLOW,
        "The database workload name is not supported: {detail}",
        "不支持该数据库工作负载名称：{detail}",
    ),
    504: (
        "FailedWorkloadPostError",
        YELLOW,
        "Releasing the database after the snapshot failed: {detail}",
        "快照后释放数据库失败：{detail}",
    ),
    505: (
        "FailedWorkloadAuthorizationMissing",
        YELLOW,
        "The database refused the credentials or privileges: {detail}",
        "数据库拒绝了凭据或权限：{detail}",
    ),
    506: (
        "FailedWorkloadConnectionError",
        YELLOW,
        "The database cannot be reached: {detail}",
        "无法连接到数据库：{detail}",
    ),
    507: (
        "FailedWorkloadIPCDirectoryMissing",
        YELLOW,
        "The database workload IPC folder is missing: {detail}",
        "数据库工作负载 IPC 文件夹不存在：{detail}",
    ),
    508: (
        "FailedWorkloadDatabaseStatusChanged",
        YELLOW,
        "The database state changed during the snapshot: {detail}",
        "快照期间数据库状态已更改：{detail}",
    ),
    509: (
        "FailedWorkloadQuiescingError",
        YELLOW,
        "Quiescing the database failed: {detail}",
        "数据库静默失败：{detail}",
    ),
    510: (
        "FailedWorkloadQuiescingTimeout",
        YELLOW,
        "Quiescing the database timed out: {detail}",
        "数据库静默超时：{detail}",
    ),
    511: (
        "FailedWorkloadDatabaseInNoArchiveLog",
        YELLOW,
        "The database is not in archive log mode: {detail}",
        "数据库未处于归档日志模式：{detail}",
    ),
    512: (
        "FailedWorkloadLogModeChanged",
        YELLOW,
        "The database log mode changed: {detail}",
        "数据库日志模式已更改：{detail}",
    ),
    761: (
        "FailedRetryableSnapshotFailedRestrictedNetwork",
        RED,
        "Some disk snapshots failed: {detail}",
        "部分磁盘快照失败：{detail}",
    ),
}

# Codes that mean the job succeeded (status "success").
SUCCESS_CODES = (SUCCESS_APP_CONSISTENT, SUCCESS, ALREADY_PROCESSED)

CONSISTENCY_NONE, CONSISTENCY_FS, CONSISTENCY_APP, CONSISTENCY_CRASH = 0, 1, 2, 3
CONSISTENCY_NAMES = {0: "none", 1: "fileSystemConsistent", 2: "applicationConsistent", 3: "crashConsistent"}


def lang_for(locale):
    """The status `lang` for a locale setting: zh-CN for Chinese, en-US otherwise."""
    key = (locale or "").strip().lower().replace("_", "-")
    if key in ("zh-cn", "zh-hans", "zh-hans-cn", "zh-sg", "zh"):
        return "zh-CN"
    return "en-US"


def name_of(code):
    entry = TABLE.get(code)
    return entry[0] if entry else "code_%s" % code


def health_of(code):
    entry = TABLE.get(code)
    return entry[1] if entry else YELLOW


def message(code, detail="", locale=None):
    """(lang, text) for `code` in the locale's language; unknown codes still get a message."""
    lang = lang_for(locale)
    entry = TABLE.get(code)
    if entry is None:
        template = "Snapshot job ended with code %s: {detail}" % code
    else:
        template = entry[3] if lang == "zh-CN" else entry[2]
    text = template.format(detail=detail or "").strip()
    return lang, "%s StatusCode.%s," % (text, name_of(code))
