"""Read and write the safetensors format with nothing but json and numpy.

A .safetensors file is three parts, one after the other:

    [8 bytes]   N, the length of the header, an unsigned 64-bit little-endian integer
    [N bytes]   the header: a UTF-8 JSON object
                  {"<tensor name>": {"dtype": "F32", "shape": [384, 384], "data_offsets": [begin, end]},
                   ...,
                   "__metadata__": {"<key>": "<string value>", ...}}      (optional, strings only)
                the writer may pad it with trailing spaces (we pad to a multiple of 8 bytes, so that
                every tensor starts aligned)
    [the rest]  the data buffer: each tensor's bytes, C order, little-endian, at
                [begin, end) counted from the start of the buffer (not of the file)

That is all: no pickle, no code, so loading a file can never run anything. The tensors must not
overlap, must cover the buffer without holes, and end - begin must equal prod(shape) * itemsize;
the reader checks each of these and names what is wrong.
"""
import json
import os
import struct

import numpy as np

from ..atomic import atomic_open

# safetensors dtype names -> little-endian numpy dtypes. BF16 has no numpy dtype: see bf16_to_float32.
DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"), "U32": np.dtype("<u4"), "U16": np.dtype("<u2"), "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
BF16_ITEMSIZE = 2
HEADER_LENGTH_BYTES = 8
MAX_HEADER_BYTES = 100_000_000      # a sanity bound: a real header is kilobytes


def dtype_name(array):
    """The safetensors name of an array's dtype ("F32", ...); ValueError for unsupported ones."""
    for name, dtype in DTYPES.items():
        if array.dtype.kind == dtype.kind and array.dtype.itemsize == dtype.itemsize:
            return name
    raise ValueError(f"dtype {array.dtype} cannot be stored in safetensors by this writer")


def bf16_to_float32(raw):
    """bfloat16 is the top half of a float32 (same sign and exponent, 7 mantissa bits), so shifting
    the 16 bits up by 16 gives the float32 with exactly the same value. raw: uint16 (...) -> float32 (...)."""
    widened = raw.astype(np.uint32) << np.uint32(16)                  # (...) uint32 bit patterns
    return widened.view(np.float32)                                   # (...) float32


def read_header(path):
    """(header dict without __metadata__, metadata dict, byte offset where the data buffer starts)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no safetensors file at {path}")
    file_size = os.path.getsize(path)
    with open(path, "rb") as f:
        length_bytes = f.read(HEADER_LENGTH_BYTES)
        if len(length_bytes) < HEADER_LENGTH_BYTES:
            raise ValueError(f"{path} is not a safetensors file: shorter than the 8-byte header length")
        (header_len,) = struct.unpack("<Q", length_bytes)          # u64, little-endian
        if header_len > min(MAX_HEADER_BYTES, file_size - HEADER_LENGTH_BYTES):
            raise ValueError(f"{path} is not a safetensors file: header length {header_len} does not fit "
                             f"in a file of {file_size} bytes")
        header_bytes = f.read(header_len)
    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: the safetensors header is not valid JSON ({err})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: the safetensors header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    return header, metadata, HEADER_LENGTH_BYTES + header_len


def check_entries(header, buffer_size, path):
    """Every entry names a known dtype, a shape and offsets that match it; together they tile the buffer."""
    spans = []
    for name, entry in header.items():
        try:
            dtype_tag, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: tensor {name!r} has a malformed entry {entry!r}") from None
        if dtype_tag != "BF16" and dtype_tag not in DTYPES:
            raise ValueError(f"{path}: tensor {name!r} has unsupported dtype {dtype_tag!r}")
        itemsize = BF16_ITEMSIZE if dtype_tag == "BF16" else DTYPES[dtype_tag].itemsize
        expected = int(np.prod(shape, dtype=np.int64)) * itemsize
        if end - begin != expected:
            raise ValueError(f"{path}: tensor {name!r} of shape {shape} and dtype {dtype_tag} needs "
                             f"{expected} bytes, its offsets [{begin}, {end}) hold {end - begin}")
        spans.append((begin, end, name))
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise ValueError(f"{path}: tensor {name!r} starts at byte {begin}, expected {position} "
                             "(tensors overlap or leave a hole)")
        position = end
    if position != buffer_size:
        raise ValueError(f"{path}: the tensors cover {position} bytes of a {buffer_size}-byte data buffer")


def read_safetensors(path, names=None):
    """Read a .safetensors file into ({name: numpy array}, {metadata key: string}).

    names: an optional collection of tensor names to read (the others are skipped, not loaded).
    Arrays come back in native byte order, writable, each its own copy; BF16 becomes float32.
    """
    header, metadata, data_start = read_header(path)
    buffer_size = os.path.getsize(path) - data_start
    check_entries(header, buffer_size, path)
    wanted = header.keys() if names is None else names
    tensors = {}
    with open(path, "rb") as f:
        for name in wanted:
            if name not in header:
                raise KeyError(f"{path} has no tensor named {name!r}")
            entry = header[name]
            begin, end = entry["data_offsets"]
            f.seek(data_start + begin)
            raw = f.read(end - begin)
            if entry["dtype"] == "BF16":
                values = bf16_to_float32(np.frombuffer(raw, dtype="<u2"))
            else:
                values = np.frombuffer(raw, dtype=DTYPES[entry["dtype"]])
            native = values.astype(values.dtype.newbyteorder("="), copy=True)   # writable, native order
            tensors[name] = native.reshape(entry["shape"])
    return tensors, dict(metadata)


def write_safetensors(path, tensors, metadata=None):
    """Write {name: numpy array} (and {key: string} metadata) to path, atomically.

    The file is written to a temporary file in the same directory and then moved over path with
    os.replace, so a reader never sees half a file and a crash leaves any old file intact.
    """
    metadata = {} if metadata is None else metadata
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(f"safetensors metadata must map strings to strings, got {key!r}: {value!r}")
    header = {"__metadata__": metadata} if metadata else {}
    blobs = []
    position = 0
    for name, array in tensors.items():
        if name == "__metadata__":
            raise ValueError("'__metadata__' is reserved and cannot name a tensor")
        array = np.asarray(array)
        tag = dtype_name(array)
        little = np.ascontiguousarray(array, dtype=DTYPES[tag])          # C order, little-endian
        blob = little.tobytes()
        header[name] = {"dtype": tag, "shape": list(array.shape), "data_offsets": [position, position + len(blob)]}
        blobs.append(blob)
        position += len(blob)
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)                      # pad: tensors start 8-aligned
    path = os.fspath(path)
    with atomic_open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        for blob in blobs:
            f.write(blob)
