#!/usr/bin/env python3
"""Turns migrations/{control,tenant,warehouse}/<backend>/NNNN_name.sql into C++ tables compiled into the binary."""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1])
out = pathlib.Path(sys.argv[2])
pattern = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
lines = ['#include "storage/migrations.hpp"', "", "namespace atrium::storage {", ""]
for group in ("control", "tenant", "warehouse"):
    for backend in ("sqlite", "postgres"):
        folder = root / group / backend
        entries = []
        versions = []
        for path in sorted(folder.glob("*.sql")):
            m = pattern.match(path.name)
            if not m:
                sys.exit(f"{path}: migration files are named NNNN_lower_snake.sql")
            sql = path.read_text()
            if ')atrium_sql"' in sql:
                sys.exit(f"{path}: contains the raw-string delimiter")
            versions.append(int(m.group(1)))
            entries.append(f'  {{{int(m.group(1))}, "{m.group(2)}", R"atrium_sql({sql})atrium_sql"}},')
        if versions != list(range(1, len(versions) + 1)) or not versions:
            sys.exit(f"{folder}: migration numbers must run 1, 2, 3, ... without gaps")
        lines.append(f"const Migration k_{group}_{backend}[] = {{")
        lines.extend(entries)
        lines.append("};")
        lines.append("")
lines.append("std::span<const Migration> builtin_migrations(Backend backend, MigrationSet set) {")
lines.append("  if (set == MigrationSet::control_plane) {")
lines.append("    return backend == Backend::sqlite ? std::span<const Migration>(k_control_sqlite)")
lines.append("                                      : std::span<const Migration>(k_control_postgres);")
lines.append("  }")
lines.append("  if (set == MigrationSet::warehouse) {")
lines.append("    return backend == Backend::sqlite ? std::span<const Migration>(k_warehouse_sqlite)")
lines.append("                                      : std::span<const Migration>(k_warehouse_postgres);")
lines.append("  }")
lines.append("  return backend == Backend::sqlite ? std::span<const Migration>(k_tenant_sqlite)")
lines.append("                                    : std::span<const Migration>(k_tenant_postgres);")
lines.append("}")
lines.append("")
lines.append("}  // namespace atrium::storage")
out.parent.mkdir(parents=True, exist_ok=True)
text = "\n".join(lines) + "\n"
if not out.exists() or out.read_text() != text:
    out.write_text(text)
