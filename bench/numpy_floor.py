"""The independent floor for the patch benchmark: read the target tensors of both checkpoints with numpy
and convert them from bf16 to float32 -- the least any implementation must do. Prints seconds as JSON."""
import json
import struct
import sys
import time

import numpy as np


def target_ranges(path, suffixes):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    start = 8 + n
    return [(start + e["data_offsets"][0], e["data_offsets"][1] - e["data_offsets"][0])
            for k, e in header.items() if k != "__metadata__" and k.endswith(suffixes)]


def main():
    paths = sys.argv[1:]
    suffixes = (".self_attn.q_proj.weight", ".self_attn.v_proj.weight")
    began = time.perf_counter()
    total = 0
    checksum = 0.0
    for path in paths:
        with open(path, "rb") as f:
            for offset, length in target_ranges(path, suffixes):
                f.seek(offset)
                raw = np.frombuffer(f.read(length), dtype=np.uint16)
                values = (raw.astype(np.uint32) << 16).view(np.float32)
                checksum += float(values[0])
                total += length
    print(json.dumps({"seconds": time.perf_counter() - began, "bytes": total, "checksum": checksum}))


main()
