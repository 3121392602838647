"""The distillation methods: every module here is imported, so each registers its class by its schema."""

import pkgutil
from importlib import import_module

from engine.methods.base import Method, MethodContext
from engine.methods.registry import IMPLEMENTATIONS, get_method_class, method_class_for

for _module in pkgutil.iter_modules(__path__):
    import_module(f"{__name__}.{_module.name}")

__all__ = ["IMPLEMENTATIONS", "Method", "MethodContext", "get_method_class", "method_class_for"]
