#!/usr/bin/env python3
"""Embeds the built web console (Vite's output folder) into C++: console::assets() (src/console/assets.hpp).

Usage: embed_console.py DIST OUT.cpp   (DIST "-" embeds nothing: a binary built without the console)
Each file is stored as it is and gzip-compressed; files under assets/ have content-hashed names (immutable)."""
import gzip
import pathlib
import sys

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".woff2": "font/woff2",
}


def literal(data: bytes) -> str:
    # Octal escapes never run into a following digit the way hex ones do; split to keep lines short.
    out, line = [], []
    for i, b in enumerate(data):
        if 32 <= b < 127 and chr(b) not in '"\\?':
            line.append(chr(b))
        else:
            line.append("\\%03o" % b)
        if len(line) >= 100:
            out.append('"' + "".join(line) + '"')
            line = []
    if line or not out:
        out.append('"' + "".join(line) + '"')
    return "\n    ".join(out)


def main() -> None:
    dist, out = sys.argv[1], pathlib.Path(sys.argv[2])
    files = []
    if dist != "-":
        root = pathlib.Path(dist)
        if not (root / "index.html").is_file():
            sys.exit(f"{root}: no index.html (the console's build did not run)")
        files = sorted(p for p in root.rglob("*") if p.is_file())
    lines = ['#include "console/assets.hpp"', "", "namespace atrium::console {", "", "namespace {", ""]
    entries = []
    for n, path in enumerate(files):
        rel = path.relative_to(pathlib.Path(dist)).as_posix()
        kind = TYPES.get(path.suffix)
        if kind is None:
            sys.exit(f"{path}: no content type known for {path.suffix}")
        data = path.read_bytes()
        packed = gzip.compress(data, compresslevel=9, mtime=0)
        if len(packed) >= len(data):
            packed = b""
        lines.append(f"constexpr char k_body_{n}[] =\n    {literal(data)};")
        lines.append(f"constexpr char k_gzip_{n}[] =\n    {literal(packed)};")
        immutable = "true" if rel.startswith("assets/") else "false"
        entries.append(
            f'    {{"{rel}", "{kind}", {{k_body_{n}, {len(data)}}}, {{k_gzip_{n}, {len(packed)}}}, {immutable}}},'
        )
    lines += ["", f"constexpr Asset k_assets[] = {{"] if entries else [""]
    if entries:
        lines += entries + ["};", ""]
    lines += ["}  // namespace", ""]
    if entries:
        lines.append("std::span<const Asset> assets() { return k_assets; }")
    else:
        lines.append("std::span<const Asset> assets() { return {}; }")
    lines += ["", "}  // namespace atrium::console", ""]
    text = "\n".join(lines)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.exists() or out.read_text() != text:
        out.write_text(text)


main()
