"""Building blocks the payload schemas share: database ids and strict query strings."""

from __future__ import annotations

from typing import Any, ClassVar

import marshmallow as ma
from marshmallow import validate

from shared.config import DATABASE_ID_PATTERN, ID_ERROR


def ecma_pattern(pattern: str) -> str:
    """Return a Python pattern anchored with ``\\Z`` as OpenAPI (ECMA-262) writes it.

    In the document's dialect ``$`` already means the end of the input, while ``\\Z``
    would be a literal "Z" (Swagger UI would then refuse every valid id).
    """
    return pattern.removesuffix(r"\Z") + "$" if pattern.endswith(r"\Z") else pattern


def anchored(pattern: str, error: str) -> dict[str, Any]:
    """Return field arguments validating with ``pattern`` and documenting it in ECMA form."""
    return {"validate": validate.Regexp(pattern, error=error),
            "metadata": {"pattern": ecma_pattern(pattern)}}


class DatabaseId(ma.fields.String):
    """A database id: ``DATABASE_ID_PATTERN``, a trailing newline included, is refused."""

    def __init__(self, **kwargs: Any) -> None:
        rule = anchored(DATABASE_ID_PATTERN, ID_ERROR)
        rule["metadata"].update(kwargs.pop("metadata", {}))
        super().__init__(**rule, **kwargs)


class QueryArgs(ma.Schema):
    """Query-string arguments that answer 422 for a name they do not know.

    webargs loads the query string with ``unknown=EXCLUDE`` whatever the schema's Meta
    says, so a misspelled filter (``?database=shop``) would silently list everything.
    ``unknown=RAISE`` would not do either: ``@blp.paginate`` reads page and page_size
    from the same query string. So this check runs first and lets through only the
    schema's fields and ``ALSO_ACCEPTED``.
    """

    ALSO_ACCEPTED: ClassVar[frozenset[str]] = frozenset()

    @ma.pre_load
    def refuse_unknown_names(self, data: Any, **_: Any) -> Any:
        known = {field.data_key or name for name, field in self.load_fields.items()}
        unknown = sorted(set(data) - known - self.ALSO_ACCEPTED)
        if unknown:
            raise ma.ValidationError({name: ["Unknown field."] for name in unknown})
        return data


class ListQueryArgs(QueryArgs):
    """Query-string arguments of a paginated list."""

    ALSO_ACCEPTED = frozenset({"page", "page_size"})
