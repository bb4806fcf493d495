"""The ``verify`` section (``global`` or one database) of ``config.yaml``.

```yaml
verify:
  schedule: "30 4 * * *"     # verify the latest completed backup (null: never on a schedule)
  test_restore: true         # restore it into a scratch database and compare row counts
  scratch:                   # optional, config-only: where the scratch database is created
    host: restore-check.internal
    port: 5432
    username: verifier
    password_file: /run/secrets/verifier
    engine: postgres         # optional: only databases of this engine use it
    options: {sslmode: require}
```

A database's section overrides the global one key by key. Without ``scratch`` the
scratch database is created on the source's own server (its user needs ``CREATEDB``).
"""

from __future__ import annotations

from typing import Any

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from shared.config.types import ENGINES, ScratchServer, VerifySettings, validate_cron
from shared.engines.options import option_errors


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class ScratchSchema(_Strict):
    host = fields.String(required=True, validate=validate.Length(min=1, max=255))
    port = fields.Integer(validate=validate.Range(min=1, max=65535))
    username = fields.String(allow_none=True)
    password = fields.String(allow_none=True)
    password_file = fields.String()
    engine = fields.String(validate=validate.OneOf(ENGINES))
    options = fields.Dict(keys=fields.String())

    @validates_schema
    def engine_options(self, data: dict[str, Any], **_: Any) -> None:
        if not data.get("options"):
            return
        engines = [data["engine"]] if data.get("engine") else list(ENGINES)
        # Without an engine, an option is fine if some engine takes it.
        problems = [option_errors(engine, data["options"]) for engine in engines]
        if all(problems):
            raise ValidationError({"options": {k: [v] for k, v in problems[0].items()}})

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> ScratchServer:
        if "password_file" in data:
            path = data.pop("password_file")
            try:
                with open(path, encoding="utf-8") as handle:
                    data["password"] = handle.read().rstrip("\r\n")
            except OSError as exc:
                raise ValidationError(f"cannot read {path!r}: {exc.strerror}",
                                      field_name="password_file") from exc
        return ScratchServer(**data)


class VerifySchema(_Strict):
    schedule = fields.String(allow_none=True, validate=validate_cron)
    test_restore = fields.Boolean()
    scratch = fields.Nested(ScratchSchema, allow_none=True)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> VerifySettings:
        return VerifySettings(schedule=data.get("schedule"),
                              test_restore=bool(data.get("test_restore", False)),
                              scratch=data.get("scratch"), given=frozenset(data))


def merged(own: VerifySettings | None, default: VerifySettings | None) -> VerifySettings:
    """Return ``default`` with the keys ``own`` sets replacing its own."""
    base = default or VerifySettings()
    if own is None:
        return base
    pick = {name: getattr(own if name in own.given else base, name)
            for name in ("schedule", "test_restore", "scratch")}
    return VerifySettings(**pick, given=own.given | base.given)
