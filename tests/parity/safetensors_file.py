"""The safetensors files of the parity fixtures, laid out as dino writes them: an 8-byte little-endian header
length, the JSON header (keys sorted, padded with spaces to a multiple of 8 bytes), then the tensors' data in
name order, row-major and little-endian. Written to a temporary file first, then renamed."""

import json
import os

import numpy as np
import torch

_DTYPES = {np.dtype("<f8"): "F64", np.dtype("<f4"): "F32", np.dtype("<i8"): "I64", np.dtype("<i4"): "I32",
           np.dtype("u1"): "U8"}


def _as_array(t):
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu().contiguous().numpy()
    a = np.asarray(t)  # (np.ascontiguousarray would turn a 0-dim array into shape [1])
    a = np.require(a.astype(a.dtype.newbyteorder("<"), copy=False), requirements="C")
    if a.dtype not in _DTYPES:
        raise ValueError(f"unsupported dtype {a.dtype}")
    return a


def write_safetensors(path, tensors, metadata):
    """tensors: {name: torch tensor or numpy array}; metadata: {str: str}."""
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        a = _as_array(tensors[name])
        data = a.tobytes(order="C")
        header[name] = {"dtype": _DTYPES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        f.write(b"".join(blobs))
    os.replace(path + ".tmp", path)


# The safetensors names of the torch dtypes (the fixtures' "dtype" metadata).
TORCH_DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.int64: "I64"}
