"""Building pydantic records from values already checked, without pydantic's per-call field walk.

`Model.model_construct` looks up aliases and defaults field by field on every call; the planner
and the apply engine build one record per resource (100,000 in a large fleet) from values that
are valid by construction, so that walk was most of their time. `trusted(Model)` does the same
work once, for models that use none of what it skips (aliases, extra fields, post-init hooks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

M = TypeVar("M")
_setattr = object.__setattr__
_IMMUTABLE = frozenset({type(None), bool, int, float, str, bytes})


def trusted(cls: type[M]) -> Callable[..., M]:
    """A function of keyword values that returns the instance `cls.model_construct` would:
    the same `__dict__` (in field order, defaults filled in), the same fields-set. Only for
    frozen models: instances of one shape of call share their fields-set."""
    fields = cls.__pydantic_fields__  # type: ignore[attr-defined]
    unsupported = [
        name for name, field in fields.items() if field.alias not in (None, name) or field.validation_alias is not None
    ]
    if unsupported or not cls.model_config.get("frozen") or cls.model_config.get("extra") == "allow" or cls.__pydantic_post_init__ or cls.__pydantic_root_model__:  # type: ignore[attr-defined]
        raise TypeError(f"{cls.__name__} uses what trusted() does not reproduce: use model_construct")
    order = tuple(fields)
    known = frozenset(order)
    defaults = {name: field for name, field in fields.items() if not field.is_required()}
    # A default that is one immutable value is the same object every time pydantic gives it
    # (its deep copy of None, a bool or a string is itself): looked up once, not per instance.
    fixed = {
        name: field.default
        for name, field in defaults.items()
        if field.default_factory is None and type(field.default) in _IMMUTABLE
    }
    new = cls.__new__

    # The names a call gives -> its fields-set, and how the rest is filled in: nothing to fill
    # (every field given, in order), a template in field order holding the fixed defaults, or
    # (a default made by a factory) field by field as model_construct does.
    shapes: dict[tuple[str, ...], tuple[set[str], bool, dict[str, Any] | None]] = {}

    def build(**values: Any) -> M:
        names = tuple(values)
        shape = shapes.get(names)
        if shape is None:
            unknown = set(names) - known
            if unknown:
                raise TypeError(f"{cls.__name__} has no field {', '.join(sorted(unknown))}")
            given = set(names)
            missing = [name for name in order if name not in given and name in defaults]
            template = None
            if all(name in fixed for name in missing):
                # Updating a copy keeps the template's order: the given values land in their places.
                template = {name: fixed.get(name) for name in order if name in given or name in fixed}
            # One set per shape of call, shared: the models are frozen, and pydantic copies it
            # (model_copy) rather than change it.
            shape = shapes[names] = (given, names == order, template)
        given, in_order, template = shape
        if in_order:
            pass
        elif template is not None:
            filled = template.copy()
            filled.update(values)
            values = filled
        else:
            filled = {}
            for name in order:
                if name in values:
                    filled[name] = values[name]
                elif name in fixed:
                    filled[name] = fixed[name]
                elif name in defaults:
                    filled[name] = defaults[name].get_default(call_default_factory=True, validated_data=filled)
            values = filled
        instance = new(cls)
        _setattr(instance, "__dict__", values)
        _setattr(instance, "__pydantic_fields_set__", given)
        _setattr(instance, "__pydantic_extra__", None)
        _setattr(instance, "__pydantic_private__", None)
        return instance

    return build


def whole(cls: type[M]) -> Callable[[dict[str, Any]], M]:
    """A function of one dict that holds every field of `cls` in field order, which becomes
    the instance's `__dict__` as it is: what `trusted(cls)` builds from those values as keywords,
    without its keyword dict and shape lookup. For a caller that writes out every field itself
    (the apply engine, two records per resource); the dict is the instance's from then on."""
    trusted(cls)  # refuses the models that trusted() refuses
    given = set(cls.__pydantic_fields__)  # type: ignore[attr-defined]
    new = cls.__new__

    def build(values: dict[str, Any]) -> M:
        instance = new(cls)
        _setattr(instance, "__dict__", values)
        _setattr(instance, "__pydantic_fields_set__", given)
        _setattr(instance, "__pydantic_extra__", None)
        _setattr(instance, "__pydantic_private__", None)
        return instance

    return build
