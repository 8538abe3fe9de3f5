"""A binary Arrow column's values as zero-copy memoryviews: what the Parquet and the Arrow
IPC methods share to reach each stored image's bytes without a copy per value (pyarrow's
``array[i].as_py()`` would make a ``bytes`` object of every image).

pyarrow is imported inside the class, as the method contract asks.
"""

from __future__ import annotations

import numpy as np


class BinaryCells:
    """The values of a binary column (an Arrow array or a chunked one) as zero-copy
    memoryviews, with each array's offsets as numpy."""

    def __init__(self, column):
        import pyarrow as pa

        self.parts = []  # (first row, offsets, data) of each array
        row = 0
        for array in getattr(column, "chunks", [column]):
            if len(array) == 0:
                continue
            if array.null_count:
                raise ValueError("the store's image column has missing values")
            if pa.types.is_binary(array.type):
                offset_type = np.int32
            elif pa.types.is_large_binary(array.type):
                offset_type = np.int64
            else:
                raise ValueError(f"the store's image column is {array.type}, not binary")
            _validity, offsets, data = array.buffers()
            offsets = np.frombuffer(
                offsets,
                dtype=offset_type,
                count=len(array) + 1,
                offset=array.offset * np.dtype(offset_type).itemsize,
            )
            self.parts.append(
                (row, offsets, memoryview(data if data is not None else b"").cast("B"))
            )
            row += len(array)
        self.count = row
        self.starts = np.array([part[0] for part in self.parts], dtype=np.int64)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, row: int) -> memoryview:
        first, offsets, data = self.parts[int(np.searchsorted(self.starts, row, "right")) - 1]
        return data[offsets[row - first] : offsets[row - first + 1]]
