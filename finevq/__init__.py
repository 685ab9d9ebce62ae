"""finevq: fine-grained quality assessment of user-generated videos.
Importing the package is cheap; torch and the model load only when `FineVQ` is first used."""

from finevq.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {"FineVQ": "inference"}

__all__ = ["FineVQ", "__version__"]

__getattr__ = lazy_exports(__name__, _EXPORTS)
