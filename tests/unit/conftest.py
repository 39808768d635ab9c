"""Unit tests of the runtime modules (extension/vmsnapshot), one test file per module, run in-process.

They import the runtime from the source tree (the venv's editable install), as the engine tests do; whatever
needs a service uses the real one: the session's Azurite over HTTPS and tenant certificate (tests/conftest.py),
the real openssl."""
