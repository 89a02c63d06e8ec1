"""Assets: ``client.assets`` (create from a URL or a local file, retrieve, list, delete, wait)."""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterable, Mapping, Sequence
from typing import IO, Any, ClassVar, Final, Literal

import msgspec

from .._config import Timeout
from .._decode import decode
from .._exceptions import InvalidFileError
from .._paginator import AsyncPaginator
from .._transport import FormFile, FormValue
from .._types import WatchKind
from ..types.assets import ASSET_FINAL_STATUSES, Asset
from ._base import TaskResource, build_options

__all__ = ["DIRECT_UPLOAD_LIMIT", "Assets", "FileInput", "check_local_file"]

DIRECT_UPLOAD_LIMIT: Final = 200 * 1024 * 1024
"""The most a direct upload may carry: the larger reading (MiB) of the documented 200 MB.
The server judges the band between 200 x 10^6 and this; above it, use a multipart upload."""

FileInput = str | os.PathLike[str] | bytes | IO[bytes] | AsyncIterable[bytes]
"""What ``assets.create(method="direct", file=...)`` takes: a local path, bytes, a binary file
object or an async byte stream."""


def check_local_file(path: str | os.PathLike[str], *, limit: int | None = None) -> int:
    """The size of a regular, non-empty local file, or :class:`InvalidFileError`."""
    shown = os.fspath(path)
    try:
        stat = os.stat(shown)
    except FileNotFoundError:
        raise InvalidFileError(f"No such file: {shown!r}") from None
    except OSError as exc:
        raise InvalidFileError(f"Cannot read {shown!r}: {exc.strerror or exc}") from None
    if os.path.isdir(shown):
        raise InvalidFileError(f"{shown!r} is a directory, not a file")
    if stat.st_size == 0:
        raise InvalidFileError(f"{shown!r} is empty (0 bytes); there is nothing to upload")
    if limit is not None and stat.st_size > limit:
        raise InvalidFileError(
            f"{shown!r} has {stat.st_size:,} bytes, more than a direct upload takes "
            f"({limit:,}); use client.multipart_upload.upload_file() instead"
        )
    return stat.st_size


def _file_object_size(handle: IO[bytes]) -> int | None:
    """The bytes left in a seekable file object from its start, else ``None``."""
    if not handle.seekable():
        return None
    position = handle.tell()
    try:
        return handle.seek(0, io.SEEK_END)
    finally:
        handle.seek(position)


def _direct_part(file: FileInput, filename: str | None) -> FormFile:
    """The form part for ``file``; every bad input is refused here, before any request."""
    if isinstance(file, str | os.PathLike):
        check_local_file(file, limit=DIRECT_UPLOAD_LIMIT)
        name = filename or os.path.basename(os.fspath(file))
        return FormFile(_as_path(file), name)
    if isinstance(file, bytes | bytearray | memoryview):
        if len(file) == 0:
            raise InvalidFileError("file is empty (0 bytes); there is nothing to upload")
        if len(file) > DIRECT_UPLOAD_LIMIT:
            raise InvalidFileError(
                f"file has {len(file):,} bytes, more than a direct upload takes "
                f"({DIRECT_UPLOAD_LIMIT:,}); use client.multipart_upload instead"
            )
        return FormFile(bytes(file), filename or "file")
    if isinstance(file, io.TextIOBase):
        raise InvalidFileError("file is a text stream; open the file in binary mode ('rb')")
    if isinstance(file, AsyncIterable):
        return FormFile(file, filename or "file")
    if hasattr(file, "read"):
        size = _file_object_size(file)
        if size == 0:
            raise InvalidFileError("file is empty (0 bytes); there is nothing to upload")
        if size is not None and size > DIRECT_UPLOAD_LIMIT:
            raise InvalidFileError(
                f"file has {size:,} bytes, more than a direct upload takes "
                f"({DIRECT_UPLOAD_LIMIT:,}); use client.multipart_upload instead"
            )
        name = filename or os.path.basename(str(getattr(file, "name", "") or "file"))
        return FormFile(file, name)
    raise InvalidFileError(
        f"file must be a path, bytes, a binary file object or an async byte stream, "
        f"not {type(file).__name__}"
    )


def _as_path(file: str | os.PathLike[str]) -> os.PathLike[str]:
    # A str is a path here (the official SDK would upload the string itself as the content).
    import pathlib

    return pathlib.Path(os.fspath(file))


class Assets(TaskResource[Asset, Asset, Asset]):
    """Create, list, retrieve, delete and wait for assets (final: ``ready``, ``failed``)."""

    kind: ClassVar[WatchKind] = "asset"
    collection: ClassVar[str] = "/assets"
    final_statuses: ClassVar[frozenset[str]] = ASSET_FINAL_STATUSES
    known_statuses: ClassVar[frozenset[str]] = ASSET_FINAL_STATUSES | {"processing"}
    sweep_statuses: ClassVar[tuple[str, ...]] = ()
    """The asset list has no status filter: assets are watched one by one."""
    sweep_time_window: ClassVar[bool] = False
    task_type = Asset
    item_type = Asset

    async def create(
        self,
        *,
        method: Literal["direct", "url"],
        file: FileInput | None = None,
        url: str | None = None,
        filename: str | None = None,
        enable_hls: bool | None = None,
        enable_thumbnail: bool | None = None,
        user_metadata: Mapping[str, Any] | None = None,
        timeout: Timeout | float | None = None,
        max_retries: int | None = None,
        request_options: Mapping[str, Any] | None = None,
    ) -> Asset:
        """Create an asset from a public URL (``method="url"``) or a local file
        (``method="direct"``, at most 200 MB; larger files go through
        ``client.multipart_upload.upload_file``). The asset starts ``processing``: call
        :meth:`wait` before using it.

        ``file`` may be a path (``str`` or ``PathLike``; unlike the official SDK, a ``str`` is
        a path, never the content), bytes, a binary file object or an async byte stream. A
        path or bytes are sent again from the start on a retry; an async stream cannot be
        replayed, so a call with one is never retried once sent. ``enable_hls`` and
        ``enable_thumbnail`` are sent only when given (the server's default applies).

        Raises:
            InvalidFileError: a missing path, a directory, an empty or oversized file, a text
                stream: refused before any request.
            BadRequestError: the server refused the file or the fields.
        """
        fields: list[tuple[str, FormValue]] = [("method", method)]
        if method == "direct":
            if file is None:
                raise InvalidFileError('method="direct" needs file=')
            if url is not None:
                raise ValueError('url= goes with method="url", not "direct"')
            part = _direct_part(file, filename)
            fields.append(("file", part))
        elif method == "url":
            if not url:
                raise ValueError('method="url" needs url=')
            if file is not None:
                raise ValueError('file= goes with method="direct", not "url"')
            fields.append(("url", url))
        else:
            raise ValueError(f'method must be "direct" or "url", not {method!r}')
        if filename is not None:
            fields.append(("filename", filename))
        for name, flag in (("enable_hls", enable_hls), ("enable_thumbnail", enable_thumbnail)):
            if flag is not None:
                fields.append((name, "true" if flag else "false"))
        if user_metadata is not None:
            # A JSON-encoded object sent as text, as the API documents for this form.
            fields.append(("user_metadata", msgspec.json.encode(dict(user_metadata)).decode()))
        # A retry sends the file again from its start; an async stream, read once, is not
        # retried once it may have been read (the transport knows which parts can be replayed).
        response = await self._transport.request(
            "POST",
            self.collection,
            form=fields,
            options=build_options(timeout, max_retries, request_options),
        )
        return decode(Asset, response)

    def list(
        self,
        *,
        asset_ids: Sequence[str] | None = None,
        asset_types: Sequence[str] | None = None,
        filename: str | None = None,
        page: int | None = None,
        page_limit: int | None = None,
        timeout: Timeout | float | None = None,
        max_retries: int | None = None,
        request_options: Mapping[str, Any] | None = None,
    ) -> AsyncPaginator[Asset]:
        """Assets newest first, optionally only ``asset_ids``, of ``asset_types`` (``video``,
        ``audio``, ``image``...) or whose file name contains ``filename``."""
        filters: dict[str, str | Sequence[str] | None] = {
            "asset_ids": asset_ids,
            "asset_types": asset_types,
            "filename": filename,
        }
        options = build_options(timeout, max_retries, request_options)
        return self._paginate(filters, page, page_limit, options)

    async def delete(
        self,
        asset_id: str,
        *,
        force: bool | None = None,
        timeout: Timeout | float | None = None,
        max_retries: int | None = None,
        request_options: Mapping[str, Any] | None = None,
    ) -> None:
        """Delete an asset (irreversible).

        Raises:
            ConflictError: indexed assets still reference it (pass ``force=True``).
            NotFoundError: no such asset.
        """
        await self._transport.request(
            "DELETE",
            self._task_path(asset_id),
            params=None if force is None else {"force": "true" if force else "false"},
            options=build_options(timeout, max_retries, request_options),
        )
