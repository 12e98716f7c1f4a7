"""Every error carries its exit code and HTTP status; the CLI and the API each translate
them in one place."""

from __future__ import annotations

import pytest

from ragapp import errors
from ragapp.errors import RagappError

EXPECTED = {
    "RagappError": 400,
    "ConfigError": 400,
    "InvalidCollectionError": 422,
    "ModelNotFoundError": 503,
    "EmbeddingMismatchError": 409,
    "StoreError": 503,
    "DiskFullError": 507,
    "EmptyCollectionError": 409,
    "NoMatchingFileError": 404,
    "BackendError": 503,
    "ContextOverflowError": 422,
    "BusyError": 503,
}


def test_each_error_has_its_status_and_the_tree_is_documented() -> None:
    classes = {
        name: cls
        for name, cls in vars(errors).items()
        if isinstance(cls, type) and issubclass(cls, RagappError)
    }
    assert {n: c.http_status for n, c in classes.items()} == EXPECTED
    assert all(c.exit_code == 1 for c in classes.values())
    for name in classes:
        assert name in (errors.__doc__ or ""), f"{name} missing from the tree in errors.py"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_to_json(name: str) -> None:
    if name == "BusyError":
        exc = errors.BusyError("one line", retry_after=7)
        extra = {"retry_after": 7}
    else:
        exc, extra = getattr(errors, name)("one line"), {}
    assert exc.to_json() == {"status": EXPECTED[name], "error": name, "detail": "one line", **extra}
