"""Lazy package exports: a package names its public objects and the submodule each lives in, and that
submodule (with its heavy imports such as torch or datasets) loads only when the name is first used."""

from collections.abc import Callable
from importlib import import_module


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], object]:
    """A module-level `__getattr__` for `package` that imports `package.<exports[name]>` on first use."""

    def __getattr__(name: str) -> object:
        if name in exports:
            return getattr(import_module(f"{package}.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
