"""Packages whose public names load on first use, and ``isinstance`` against classes not yet imported.

``skgpx.gp``, ``skgpx.kernels``, ``skgpx.solvers`` and ``skgpx.operators`` keep their public
names in a private ``_api`` module (JAX, Equinox and lineax come with it); the package
itself imports nothing, so a JAX-free module of the package (``skgpx.gp._host``,
``skgpx.kernels._sklearn_spec``...) can be imported without JAX. The first public name
used imports the whole ``_api`` (with its side effects, e.g. the solver registrations).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

__all__ = ["lazy_package", "loaded_isinstance"]


def lazy_package(package: str, api: str = "._api"):
    """``(__getattr__, __dir__)`` for the package `package` whose public names live in `api`."""

    def __getattr__(name):
        if name.startswith("__") and name != "__all__":
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if name.startswith("_") and importlib.util.find_spec(f"{package}.{name}") is not None:
            return importlib.import_module(f"{package}.{name}")  # a private submodule: only itself
        module = importlib.import_module(api, package)
        namespace = vars(sys.modules[package])
        if name in namespace:  # a submodule imported by the api module
            return namespace[name]
        try:
            value = getattr(module, name)
        except AttributeError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        namespace[name] = value  # later lookups skip __getattr__
        return value

    def __dir__():
        module = importlib.import_module(api, package)
        return sorted(set(vars(sys.modules[package])) | {n for n in vars(module) if not n.startswith("_")})

    return __getattr__, __dir__


def loaded_isinstance(obj, module: str, name: str) -> bool:
    """``isinstance(obj, module.name)`` without importing `module`: when it is not imported yet,
    no instance of its classes can exist."""
    mod = sys.modules.get(module)
    return mod is not None and isinstance(obj, getattr(mod, name))
