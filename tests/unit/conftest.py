"""Unit tests of the runtime modules (extension/vmsnapshot), one test file per module, run in-process.

They import the runtime from the source tree, as the engine tests do; whatever needs a service uses the
real one: the session's Azurite over HTTPS and tenant certificate (tests/conftest.py), the real openssl."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXTENSION = os.path.join(ROOT, "extension")
if EXTENSION not in sys.path:
    sys.path.insert(0, EXTENSION)
