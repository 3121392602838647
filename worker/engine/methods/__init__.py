"""The registry of distillation methods, imported lazily so a broken method breaks only itself."""

from importlib import import_module

from worker.engine.methods.base import Method, MethodContext

METHOD_CLASSES: dict[str, str] = {
    "supervised": "worker.engine.methods.supervised:SupervisedTraining",
    "response": "worker.engine.methods.response:ResponseDistillation",
    "feature": "worker.engine.methods.feature:FeatureDistillation",
    "attention": "worker.engine.methods.attention:AttentionDistillation",
    "relation": "worker.engine.methods.relation:RelationDistillation",
    "self": "worker.engine.methods.self_distill:SelfDistillation",
    "mutual": "worker.engine.methods.mutual:MutualDistillation",
}


def get_method_class(name: str) -> type[Method]:
    """The class that implements `method.type == name`, imported on first use."""
    try:
        target = METHOD_CLASSES[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(sorted(METHOD_CLASSES))}") from None
    module_name, class_name = target.split(":")
    method_class = getattr(import_module(module_name), class_name)
    if not (isinstance(method_class, type) and issubclass(method_class, Method)):
        raise TypeError(f"{target} is not a Method subclass")
    return method_class


__all__ = ["METHOD_CLASSES", "Method", "MethodContext", "get_method_class"]
