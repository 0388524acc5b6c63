"""``predictions.parquet``: one row per input of a ``salience predict`` job, for data warehouses.

A row holds the input's summary (as in ``summary.csv``, figures as numbers: the first fixation's
exactly, from the record), its predicted
fixations and sampled scanpaths as nested lists, the settings they were made with (JSON text)
and ``density``, the file name of its ``<name>_density.npy`` beside the Parquet file (the maps
stay files: a float32 map of a 800 x 600 image is 1.9 MB; null where the job wrote none).
Failed inputs have their error and nulls elsewhere. Needs pyarrow (the ``ray`` extra installs it).
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType

import pyarrow as pa
import pyarrow.parquet as pq

from salience.batch import settings_maps
from salience.io.atomic import atomic_path

FIXATION = pa.struct(
    [("order", pa.int32()), ("x", pa.float64()), ("y", pa.float64()), ("probability", pa.float64())]
)
SCANPATH_FIXATION = pa.struct(
    [("order", pa.int32()), ("x", pa.float64()), ("y", pa.float64()), ("duration", pa.float64())]
)
SCHEMA = pa.schema(
    [
        ("image", pa.string()),
        ("name", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("height", pa.int32()),
        ("width", pa.int32()),
        ("first_x", pa.float64()),
        ("first_y", pa.float64()),
        ("first_probability", pa.float64()),
        ("top10_area_share", pa.float64()),
        ("pixels_per_degree", pa.float64()),
        ("fixations", pa.list_(FIXATION)),
        ("scanpath_seed", pa.int64()),
        ("scanpaths", pa.list_(pa.list_(SCANPATH_FIXATION))),
        ("density", pa.string()),
        ("settings", pa.string()),
    ]
)


def table_row(summary: dict[str, object], record: dict | None) -> dict[str, object]:
    """A Parquet row from a ``summary.csv`` row and the image's fixations record (the content
    of ``<name>_fixations.json``; None for a failed input)."""
    row: dict[str, object] = {k: summary[k] for k in ("image", "name", "status", "error")}
    if record is None:
        return row
    row["height"], row["width"] = record["size"]["height"], record["size"]["width"]
    first = record["fixations"][0]
    row["first_x"], row["first_y"], row["first_probability"] = (
        first["x"],
        first["y"],
        first["probability"],
    )
    share = summary.get("top10_area_share", "")
    row["top10_area_share"] = float(share) if share != "" else None  # "" for images done before
    row["pixels_per_degree"] = record["pixels_per_degree"]
    row["fixations"] = record["fixations"]
    row["scanpath_seed"] = record.get("scanpath_seed")
    row["scanpaths"] = [path["fixations"] for path in record.get("scanpaths", [])]
    wrote_density = "density" in settings_maps(record.get("settings"))
    row["density"] = f"{summary['name']}_density.npy" if wrote_density else None
    row["settings"] = json.dumps(record.get("settings"), sort_keys=True)
    return row


class PredictionTable:
    """Writes ``predictions.parquet`` a row group at a time; the file appears, whole, on
    :meth:`close` (or leaving a ``with`` block without an error), never half-written."""

    def __init__(self, path: str | Path) -> None:
        self._stack = ExitStack()
        tmp = self._stack.enter_context(atomic_path(path))
        self._writer = pq.ParquetWriter(tmp, SCHEMA, compression="zstd")

    def add(self, rows: list[dict[str, object]]) -> None:
        """Append rows made by :func:`table_row`."""
        if rows:
            self._writer.write_table(pa.Table.from_pylist(rows, schema=SCHEMA))

    def close(self, error: BaseException | None = None) -> None:
        """Finish the file (or, after an ``error``, drop it)."""
        self._writer.close()
        if error is None:
            self._stack.close()
        else:
            self._stack.__exit__(type(error), error, error.__traceback__)

    def __enter__(self) -> PredictionTable:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close(error)
