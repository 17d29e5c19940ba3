"""External-memory images as ``$readmemh`` / ``$writememh`` text files."""

from pathlib import Path

import numpy as np

__all__ = ["write_hex", "read_hex"]


def write_hex(path, data: np.ndarray | bytes, width_bytes: int) -> None:
    """Write ``data`` (bytes from address 0) as one ``width_bytes`` word per line, hex, for ``$readmemh``."""
    raw = np.frombuffer(bytes(data), np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8)
    pad = (-len(raw)) % width_bytes
    if pad:
        raw = np.concatenate([raw, np.zeros(pad, np.uint8)])
    words = raw.reshape(-1, width_bytes)[:, ::-1]          # most significant byte first
    text = words.tobytes().hex()
    n = 2 * width_bytes
    Path(path).write_text("\n".join(text[i:i + n] for i in range(0, len(text), n)) + "\n")


def read_hex(path, width_bytes: int) -> bytes:
    """Read a ``$writememh`` file (one word per line) back into bytes from address 0."""
    lines = []
    for raw in Path(path).read_text().splitlines():
        line = raw.split("//", 1)[0].strip()     # Icarus writes "// 0x..." address comments
        if not line or line.startswith("@"):
            continue
        lines.append(line.rjust(2 * width_bytes, "0").replace("x", "0").replace("X", "0").replace("z", "0"))
    arr = np.frombuffer(bytes.fromhex("".join(lines)), np.uint8).reshape(-1, width_bytes)[:, ::-1]
    return arr.tobytes()
