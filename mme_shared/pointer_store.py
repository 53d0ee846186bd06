"""Write and delete a location's pointer document: one code path for the promotion Lambda and the CLI.

Every pointer is written the same way, whoever writes it: the document of
:mod:`mme_shared.model_pointer` at ``pointer.pointer_key``, ``application/json``, SSE-KMS under the
project key. A writer that has read the pointer first passes the ETag it read, so that a write
that lands in between (a promotion during a rollback, say) is not silently undone: S3 then refuses
the request and :class:`PointerChanged` names the key.

``expected_etag`` says what the pointer must be for the request to go ahead:

- :data:`UNCONDITIONAL`: whatever it is (the promotion Lambda, which has just verified its copy);
- ``None``: it must not exist yet (``IfNoneMatch: *``);
- an ETag string: it must still be exactly that object (``IfMatch``).

Standard library only, like all of ``mme_shared`` (the preprocessor packages it too): the caller
passes its boto3 S3 client, and S3's errors are caught as that client's ``exceptions.ClientError``.
"""

from __future__ import annotations

import enum
from typing import Any, Final

from mme_shared import s3_layout
from mme_shared.model_pointer import ModelPointer

_PRECONDITION_CODES: Final = frozenset({"412", "PreconditionFailed", "ConditionalRequestConflict"})


class _Unconditional(enum.Enum):
    UNCONDITIONAL = "unconditional"


UNCONDITIONAL: Final = _Unconditional.UNCONDITIONAL
"""``expected_etag`` for a write that replaces whatever pointer there is."""

ExpectedEtag = str | None | _Unconditional
"""What the pointer must be for a write or delete to go ahead (see the module docstring)."""


class PointerChanged(Exception):  # noqa: N818 (says what happened; not an error of the caller)
    """The pointer is no longer what the caller read: nothing was written or deleted."""

    def __init__(self, bucket: str, key: str) -> None:
        super().__init__(f"s3://{bucket}/{key} changed since it was read; nothing was written")
        self.bucket = bucket
        self.key = key


def _condition(expected_etag: ExpectedEtag) -> dict[str, str]:
    if expected_etag is UNCONDITIONAL:
        return {}
    if expected_etag is None:
        return {"IfNoneMatch": "*"}
    if not isinstance(expected_etag, str) or not expected_etag:
        raise ValueError(f"expected_etag must be UNCONDITIONAL, None or an ETag, got {expected_etag!r}")
    return {"IfMatch": expected_etag}


def _is_precondition_failure(error: Any) -> bool:
    return str(error.response.get("Error", {}).get("Code", "")) in _PRECONDITION_CODES


def write_pointer(
    s3: Any, bucket: str, pointer: ModelPointer, *, kms_key_arn: str, expected_etag: ExpectedEtag
) -> None:
    """Write ``pointer`` to its key, SSE-KMS under ``kms_key_arn``; raise PointerChanged if refused."""
    try:
        s3.put_object(
            Bucket=bucket,
            Key=pointer.pointer_key,
            Body=pointer.to_json().encode("utf-8"),
            ContentType="application/json",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=kms_key_arn,
            **_condition(expected_etag),
        )
    except s3.exceptions.ClientError as error:
        if _is_precondition_failure(error):
            raise PointerChanged(bucket, pointer.pointer_key) from None
        raise


def delete_pointer(
    s3: Any, bucket: str, generation: str, location: str, *, expected_etag: str | _Unconditional
) -> None:
    """Delete ``location``'s pointer in ``generation`` if still ``expected_etag``; else raise PointerChanged.

    A conditional DeleteObject (``IfMatch``) needs an object to compare against, so there is no
    "must not exist" form here.
    """
    key = s3_layout.current_pointer_key(generation, location)
    try:
        s3.delete_object(Bucket=bucket, Key=key, **_condition(expected_etag))
    except s3.exceptions.ClientError as error:
        if _is_precondition_failure(error):
            raise PointerChanged(bucket, key) from None
        raise
