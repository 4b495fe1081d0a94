"""The module layering check (cmake/check_layers.py) that the build runs before compiling: it passes on src/ as it
is, and fails on a copy of src/ with a deliberate include in the wrong direction, with a cycle, or with an undeclared
folder. Run by ctest (test `layering`) with the table CMake declared (build/generated/modules.txt)."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

SOURCE_DIR = os.environ["ATRIUM_SOURCE_DIR"]
CHECK = os.path.join(SOURCE_DIR, "cmake", "check_layers.py")
with open(os.environ["ATRIUM_MODULE_TABLE"], encoding="utf-8") as f:
    TABLE = f.read().split()  # "name:dep,dep" per line, as CMake declared them


def run_check(src, table=TABLE):
    return subprocess.run([sys.executable, CHECK, src, "-"] + table, capture_output=True, text=True)


class LayeringTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="atrium-layers-")
        self.src = os.path.join(self.tmp, "src")
        shutil.copytree(os.path.join(SOURCE_DIR, "src"), self.src)

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def append(self, relative, text):
        with open(os.path.join(self.src, relative), "a", encoding="utf-8") as f:
            f.write(text)

    def test_src_follows_the_declared_layers(self):
        r = run_check(self.src)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_every_folder_is_a_module_and_app_is_the_top(self):
        modules = dict(item.split(":") for item in TABLE)
        self.assertEqual(set(modules), {d for d in os.listdir(self.src) if os.path.isdir(os.path.join(self.src, d))})
        self.assertEqual(modules["core"], "")
        # Nothing depends on app, and app reaches every other module through its dependencies.
        self.assertFalse(any("app" in deps.split(",") for deps in modules.values()))

    def test_a_lower_module_including_a_higher_one_fails(self):
        self.append("core/clock.cpp", '\n#include "billing/billing.hpp"\n')
        r = run_check(self.src)
        self.assertEqual(r.returncode, 1)
        self.assertIn("core/clock.cpp", r.stderr)
        self.assertIn("module core includes billing/", r.stderr)

    def test_a_sibling_it_does_not_name_fails(self):
        self.append("tenancy/tenant_store.hpp", '\n#include "identity/jwt.hpp"\n')
        r = run_check(self.src)
        self.assertEqual(r.returncode, 1)
        self.assertIn("module tenancy includes identity/", r.stderr)

    def test_a_cycle_in_the_declared_table_fails(self):
        table = ["core:api" if item == "core:" else item for item in TABLE]
        self.assertNotEqual(table, TABLE)
        r = run_check(self.src, table)
        self.assertEqual(r.returncode, 1)
        self.assertIn("form a cycle", r.stderr)

    def test_an_undeclared_folder_fails(self):
        os.mkdir(os.path.join(self.src, "forecasting"))
        self.append("forecasting/ets.cpp", '#include "core/clock.hpp"\n')
        r = run_check(self.src)
        self.assertEqual(r.returncode, 1)
        self.assertIn("src/forecasting is not a declared module", r.stderr)


if __name__ == "__main__":
    unittest.main()
