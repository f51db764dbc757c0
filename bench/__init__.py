# Before anything imports ESPnet: its import-time type instrumentation off (see the module).
from bench import espnet_checks  # noqa: F401
