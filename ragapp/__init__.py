"""ragapp: private, fully local question answering over your own documents."""

from ragapp import _offline  # noqa: F401  (must run before any third-party import)
from ragapp.errors import RagappError
from ragapp.settings import Settings, load_settings
from ragapp.types import Answer, Source, Timings

__version__ = "0.1.0"

__all__ = [
    "Answer",
    "RagappError",
    "Settings",
    "Source",
    "Timings",
    "__version__",
    "load_settings",
]
