# Before anything imports ESPnet: its import-time type instrumentation, off only when asked
# (BENCH_TYPEGUARD=0, the unit tests; see the module).
from bench import espnet_checks  # noqa: F401
