"""Make every library we load stay offline and silent, before any of them is imported.

Imported first by ``ragapp/__init__.py``. The values are forced, not defaulted: privacy
is not a preference a stray environment variable may turn off.
"""

import os

OFFLINE_ENV = {
    # Hugging Face hub / transformers / sentence-transformers: never reach a hub.
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    # unstructured pings a telemetry host on import unless these are set.
    "SCARF_NO_ANALYTICS": "true",
    "DO_NOT_TRACK": "true",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
    # chromadb's posthog telemetry (we also pass Settings(anonymized_telemetry=False)).
    "ANONYMIZED_TELEMETRY": "False",
    # OpenTelemetry (the MCP SDK imports its API): no exporter, ever.
    "OTEL_SDK_DISABLED": "true",
    # tokenizers forks badly under our worker processes.
    "TOKENIZERS_PARALLELISM": "false",
}

os.environ.update(OFFLINE_ENV)
