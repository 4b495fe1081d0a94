#!/usr/bin/env python3
"""Converts docs/openapi.yaml to JSON and embeds it; GET /openapi.json serves it verbatim."""
import json
import pathlib
import sys

import yaml

src = pathlib.Path(sys.argv[1])
out = pathlib.Path(sys.argv[2])
doc = yaml.safe_load(src.read_text())
if not isinstance(doc, dict) or not str(doc.get("openapi", "")).startswith("3.1"):
    sys.exit(f"{src}: not an OpenAPI 3.1 document")
text = json.dumps(doc, separators=(",", ":"), sort_keys=False)
cpp = (
    '#include "api/openapi.hpp"\n\nnamespace atrium::api {\n\n'
    '// A char array with its length known, not a string_view from a pointer: measuring a literal this long at compile\n'
    '// time exceeds GCC\'s constexpr loop limit.\n'
    'std::string_view openapi_json() {\n  static constexpr char doc[] = R"atrium_json('
    + text
    + ')atrium_json";\n  return std::string_view(doc, sizeof doc - 1);\n}\n\n}  // namespace atrium::api\n'
)
out.parent.mkdir(parents=True, exist_ok=True)
if not out.exists() or out.read_text() != cpp:
    out.write_text(cpp)
