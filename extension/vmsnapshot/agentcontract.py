"""The names the Azure Linux guest agent and this extension share: the environment variables the agent
sets for every handler command, and the words of a status file's `status`."""

# Set by the agent for every handler command.
ENV_EXTENSION_PATH = "AZURE_GUEST_AGENT_EXTENSION_PATH"  # the handler directory
ENV_EXTENSION_VERSION = "AZURE_GUEST_AGENT_EXTENSION_VERSION"
ENV_UPDATING_FROM_VERSION = "AZURE_GUEST_AGENT_UPDATING_FROM_VERSION"  # update: the version replaced
ENV_SEQUENCE_NUMBER = "ConfigSequenceNumber"  # the settings file to act on

# A status file's `status`, lowercase as the agent reads it.
STATUS_TRANSITIONING = "transitioning"
STATUS_SUCCESS = "success"
STATUS_ERROR = "error"
STATUS_WARNING = "warning"
TERMINAL_STATUSES = (STATUS_SUCCESS, STATUS_ERROR, STATUS_WARNING)
