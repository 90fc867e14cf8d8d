"""The exceptions persona raises on purpose, in one place.

    PersonaError
    ├── ConfigError             a setting or config file is invalid
    ├── AuthError               missing or unknown key (HTTP 401)
    │   └── Forbidden           a valid key without the right scope (HTTP 403)
    ├── RequestError            a client request is unusable as a whole (HTTP 400/413)
    │   └── PayloadTooLarge     over a size or count limit (HTTP 413 or 400)
    ├── NotFound                an identifier or resource does not exist (HTTP 404)
    ├── NotEnoughData           too few customers to fit a model on (personas)
    ├── ModelNotTrained         recommendations asked for before `persona recs train` (HTTP 503)
    └── StoreError              the storage backend failed (HTTP 503)

Each carries a machine-readable `code` and, where it applies, the `field` at fault,
so the HTTP layer can turn any of them into a JSON error without knowing the details.
"""

from __future__ import annotations


class PersonaError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code

    def to_json(self) -> dict[str, object]:
        return error_body(self.code, self.message, self.field)


def error_body(code: str, message: str, field: str | None = None) -> dict[str, object]:
    """The JSON of every error answer. `code` repeats `error` because Segment's SDKs read
    `code` and `message` from an error answer (and report "unknown" without them)."""
    body: dict[str, object] = {"error": code, "code": code, "message": message}
    if field is not None:
        body["field"] = field
    return body


class ConfigError(PersonaError):
    code = "invalid_config"


class AuthError(PersonaError):
    status = 401
    code = "unauthorized"


class Forbidden(AuthError):
    status = 403
    code = "forbidden"


class RequestError(PersonaError):
    status = 400
    code = "invalid_request"


class PayloadTooLarge(RequestError):
    status = 413
    code = "payload_too_large"


class NotFound(PersonaError):
    status = 404
    code = "not_found"


class NotEnoughData(PersonaError):
    status = 409
    code = "not_enough_data"


class ModelNotTrained(PersonaError):
    status = 503
    code = "model_not_trained"


class StoreError(PersonaError):
    status = 503
    code = "store_unavailable"
