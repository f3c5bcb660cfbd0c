"""Flag groups: options declared once, shared by commands, handed to each as one object.

typer reads a command's options from its function signature. ``with_flag_groups`` rewrites
that signature: a parameter annotated with a ``FlagGroup`` subclass becomes the group's
options on the command line, and the command receives the group built from their values.
A dataclass group declares its options as fields (``Annotated[type, typer.Option(...)]``
with a default); a group can also generate them (``ServerSettings`` from ``ServeConfig``).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, get_type_hints

__all__ = ["FlagGroup", "with_flag_groups"]

Command = TypeVar("Command", bound=Callable[..., Any])


class FlagGroup:
    """Options that travel together; by default a dataclass whose fields are the options."""

    @classmethod
    def parameters(cls) -> list[inspect.Parameter]:
        """The options, as typer reads them from a signature."""
        hints = get_type_hints(cls, include_extras=True)
        return [
            inspect.Parameter(
                field.name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=hints[field.name],
                default=field.default,
            )
            for field in dataclasses.fields(cls)  # type: ignore[arg-type]
        ]

    @classmethod
    def from_flags(cls, values: dict[str, Any]) -> Any:
        """The group, from the values of its options."""
        return cls(**values)


def with_flag_groups(command: Command) -> Command:
    """``command`` with each ``FlagGroup`` parameter spelled out as the group's options."""
    hints = get_type_hints(command, include_extras=True)
    parameters: list[inspect.Parameter] = []
    groups: dict[str, tuple[type[FlagGroup], list[str]]] = {}
    for parameter in inspect.signature(command).parameters.values():
        hint = hints[parameter.name]
        if isinstance(hint, type) and issubclass(hint, FlagGroup):
            own = hint.parameters()
            groups[parameter.name] = (hint, [p.name for p in own])
            parameters += own
        else:
            kind = inspect.Parameter.KEYWORD_ONLY
            parameters.append(parameter.replace(annotation=hint, kind=kind))

    def run(**values: Any) -> Any:
        for name, (group, flags) in groups.items():
            values[name] = group.from_flags({flag: values.pop(flag) for flag in flags})
        return command(**values)

    run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]  # typer reads it
    run.__annotations__ = {p.name: p.annotation for p in parameters}
    for attribute in ("__module__", "__name__", "__qualname__", "__doc__"):
        setattr(run, attribute, getattr(command, attribute))
    return run  # type: ignore[return-value]
