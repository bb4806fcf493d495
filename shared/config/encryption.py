"""The ``encryption`` section (``global`` or one database) of ``config.yaml``.

```yaml
encryption:
  type: age                      # or none: no encryption (e.g. one database under a global one)
  recipients: ["age1…"]          # public keys; new artifacts are encrypted to each of them
  identity_file: /run/secrets/backup-age-key   # secret keys for verify and restore
```

Absent (or ``null``) on a database: the global section applies. ``identity_file`` is
only read when a verification or restore needs it, by the worker doing it, so the
API host and the hosts that only take backups never need the secret key.
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

from shared.config.types import EncryptionSettings
from shared.encryption import AGE, TYPES, recipient_problem

MAX_RECIPIENTS = 20


def validate_recipient(value: str) -> None:
    """Raise ``ValidationError`` unless ``value`` is an age public key (never echoing it)."""
    if (problem := recipient_problem(value)) is not None:
        raise ValidationError(problem)


class EncryptionSchema(Schema):
    class Meta:
        unknown = RAISE

    type = fields.String(required=True, validate=validate.OneOf(TYPES))
    recipients = fields.List(fields.String(validate=validate_recipient),
                             validate=validate.Length(max=MAX_RECIPIENTS))
    identity_file = fields.String(validate=validate.Length(min=1))

    @validates_schema
    def recipients_match_type(self, data: dict[str, Any], **_: Any) -> None:
        if data["type"] == AGE and not data.get("recipients"):
            raise ValidationError("type age needs at least one recipient (age1…, from "
                                  "age-keygen -y key.txt)", field_name="recipients")
        if data["type"] != AGE and data.get("recipients"):
            raise ValidationError(f"recipients are for type age, not {data['type']}",
                                  field_name="recipients")

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> EncryptionSettings:
        recipients = tuple(dict.fromkeys(data.get("recipients") or ()))
        return EncryptionSettings(type=data["type"], recipients=recipients,
                                  identity_file=data.get("identity_file"))
