"""The output of a batch: a folder of Parquet files, one row per audio file.

Each run appends files named ``part-<run>-<n>.parquet``, each written under a hidden temporary
name and then renamed, so a reader (or a run killed part way) never sees half a file; readers such
as pyarrow, pandas and DuckDB skip the hidden names. Before a run transcribes a file again (it
failed, it changed, or the options did), its old row is removed, so the folder keeps one row per
file.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import DattavaniError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs

PART_PREFIX = "part-"
_TEMPORARY_PREFIX = ".writing-"
#: The columns a run reads to decide what to do: not the transcripts.
PLAN_COLUMNS = ("id", "path", "fingerprint", "model", "options_hash", "error", "finished_at")


def row_schema() -> pa.Schema:
    """The columns of every row (see docs/distributed.md)."""
    import pyarrow as pa

    word = pa.struct(
        [
            ("start", pa.float64()),
            ("end", pa.float64()),
            ("word", pa.string()),
            ("probability", pa.float64()),
        ]
    )
    segment = pa.struct(
        [
            ("start", pa.float64()),
            ("end", pa.float64()),
            ("text", pa.string()),
            ("words", pa.list_(word)),
        ]
    )
    return pa.schema(
        [
            ("id", pa.string()),
            ("path", pa.string()),
            ("fingerprint", pa.string()),
            ("text", pa.string()),
            ("language", pa.string()),
            ("language_probability", pa.float64()),
            ("duration", pa.float64()),
            ("processing_time", pa.float64()),
            ("segments", pa.list_(segment)),
            ("model", pa.string()),
            ("options_hash", pa.string()),
            ("dattavani_version", pa.string()),
            ("error", pa.string()),
            ("worker", pa.string()),
            ("finished_at", pa.timestamp("ms", tz="UTC")),
        ]
    )


class OutputStore:
    """The Parquet folder ``output`` (a local path or a URI pyarrow's filesystems open)."""

    def __init__(self, output: str) -> None:
        import pyarrow.fs

        from .inputs import is_uri, open_uri

        self.output = output
        self.filesystem: pyarrow.fs.FileSystem
        if is_uri(output):
            self.filesystem, self.root = open_uri(output)
        else:
            self.filesystem, self.root = pyarrow.fs.LocalFileSystem(), os.path.abspath(output)
        try:
            self.filesystem.create_dir(self.root, recursive=True)
        except OSError as error:
            raise DattavaniError(f"{output}: cannot create the output folder: {error}") from error
        self.run = secrets.token_hex(4)
        self._written = 0

    def _listing(self) -> list[pyarrow.fs.FileInfo]:
        import pyarrow.fs

        selector = pyarrow.fs.FileSelector(self.root, recursive=False)
        return [i for i in self.filesystem.get_file_info(selector) if i.is_file]

    def part_files(self) -> list[str]:
        """The Parquet files of the dataset, in name order."""
        return sorted(
            i.path
            for i in self._listing()
            if i.base_name.startswith(PART_PREFIX) and i.base_name.endswith(".parquet")
        )

    def remove_temporaries(self) -> None:
        """Delete what a run killed while writing left behind."""
        for info in self._listing():
            if info.base_name.startswith(_TEMPORARY_PREFIX):
                self.filesystem.delete_file(info.path)

    def read(self) -> list[tuple[str, list[dict[str, Any]]]]:
        """Every part file with what planning needs of its rows (not the transcripts)."""
        import pyarrow.parquet as pq

        parts = []
        for path in self.part_files():
            try:
                table = pq.read_table(path, columns=list(PLAN_COLUMNS), filesystem=self.filesystem)
            except (OSError, ValueError) as error:
                raise DattavaniError(
                    f"{path}: not a readable Parquet file of a dattavani batch: {error}"
                ) from error
            parts.append((path, table.to_pylist()))
        return parts

    def read_rows(self, path: str, ids: set[str]) -> list[dict[str, Any]]:
        """The whole rows of ``ids`` in the part file ``path``."""
        table = self._read_full(path)
        rows: list[dict[str, Any]] = table.filter(_id_mask(table, ids)).to_pylist()
        return rows

    def append(self, rows: Sequence[dict[str, Any]]) -> str:
        """Write ``rows`` as a new part file; return its path."""
        self._written += 1
        name = f"{PART_PREFIX}{self.run}-{self._written:05d}.parquet"
        return self._write(name, rows)

    def remove_rows(self, path: str, drop_ids: set[str], rows: Sequence[dict[str, Any]]) -> None:
        """Rewrite the part file ``path`` (whose planning ``rows`` these are) without the rows
        of ``drop_ids``; delete it when nothing is left."""
        import pyarrow.compute as pc

        remaining = [row for row in rows if row["id"] not in drop_ids]
        if not remaining:
            self.filesystem.delete_file(path)
            return
        table = self._read_full(path)
        self._write(path.rsplit("/", 1)[-1], table.filter(pc.invert(_id_mask(table, drop_ids))))

    def _read_full(self, path: str) -> pa.Table:
        import pyarrow.parquet as pq

        return pq.read_table(path, filesystem=self.filesystem, schema=row_schema())

    def _write(self, name: str, rows: Sequence[dict[str, Any]] | pa.Table) -> str:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows, row_schema())
        target = f"{self.root}/{name}"
        temporary = f"{self.root}/{_TEMPORARY_PREFIX}{secrets.token_hex(4)}-{name}"
        try:
            pq.write_table(table, temporary, filesystem=self.filesystem)
            self.filesystem.move(temporary, target)
        except OSError as error:
            raise DattavaniError(f"{target}: cannot write: {error}") from error
        return target


def _id_mask(table: pa.Table, ids: set[str]) -> pa.Array:
    """Which rows of ``table`` have one of ``ids``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.is_in(table.column("id"), value_set=pa.array(sorted(ids), pa.string()))
