"""Container labels → a validated, frozen model, with errors that name the label and value.

Scaling policies and probes are both declared this way; each supplies its label → field
map and its model, and gets back either the model or readable errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def parse_labels(
    labels: Mapping[str, str],
    fields: Mapping[str, str],
    model: type[M],
    base: Mapping[str, Any] | None = None,
    clean: Callable[[str, str], Any] = lambda _field, raw: raw.strip(),
    prefixes: tuple[str, ...] = (),
) -> tuple[M | None, tuple[str, ...]]:
    """`fields` maps label → model field; several labels may name one field (a seed-dialect
    key and its native synonym), and errors name the one the operator wrote. Labels under
    `prefixes` that are not in `fields` are unknown keys, so a typo is an error instead of
    a silent default."""
    field_labels = {field: label for label, field in fields.items()}
    errors = [
        f"{key}: unknown key"
        for key in sorted(labels)
        if prefixes and key.startswith(prefixes) and key not in fields
    ]
    data = dict(base or {})
    written: dict[str, str] = {}  # field → the label that set it
    for label, field in fields.items():
        if label not in labels:
            continue
        value = clean(field, labels[label])
        if field in written and data[field] != value:
            first = written[field]
            errors.append(
                f"{label}: conflicts with {first} ({labels[label]!r} vs {labels[first]!r})"
            )
        data[field] = value
        written[field] = field_labels[field] = label
    try:
        parsed = model.model_validate(data)
    except ValidationError as err:
        return None, tuple(errors + describe(err, field_labels))
    return (None, tuple(errors)) if errors else (parsed, ())


def describe(err: ValidationError, field_labels: Mapping[str, str]) -> list[str]:
    lines = []
    for problem in err.errors():
        loc = problem["loc"]
        message = problem["msg"].removeprefix("Value error, ")
        if loc:
            field = str(loc[0])
            lines.append(f"{field_labels.get(field, field)}: {message} (got {problem['input']!r})")
        else:  # a cross-field rule speaks of fields: say the labels the operator wrote
            for field, label in sorted(field_labels.items(), key=lambda kv: -len(kv[0])):
                message = message.replace(f"{field} (", f"{label} (")
            lines.append(message)
    return lines
