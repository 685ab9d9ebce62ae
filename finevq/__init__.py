"""finevq: fine-grained quality assessment of user-generated videos.
Importing the package is cheap; torch and the model load only when `FineVQ` is first used."""

__version__ = "0.1.0"

__all__ = ["FineVQ", "__version__"]


def __getattr__(name: str):
    if name == "FineVQ":
        from finevq.inference import FineVQ

        return FineVQ
    raise AttributeError(f"module 'finevq' has no attribute {name!r}")
