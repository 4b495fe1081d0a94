"""TenantStatement checks its tenant binding at compile time (src/tenancy/tenant_data.hpp): the accepted forms
compile, and each statement that does not bind tenant_id to $1 is a build error naming the check. Run by ctest with
ATRIUM_CXX (the build's compiler) and ATRIUM_SOURCE_DIR."""
import os
import subprocess
import unittest

SOURCE = os.environ.get("ATRIUM_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
CXX = os.environ.get("ATRIUM_CXX", "c++")
HERE = os.path.join(SOURCE, "tests", "tenancy", "statement_binding")
CHECK = "a_tenant_statement_must_bind_tenant_id_to_1"


def compile_file(name, *defines):
    cmd = [CXX, "-std=c++23", "-fsyntax-only", "-I", os.path.join(SOURCE, "src"), *defines, os.path.join(HERE, name)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


class StatementBindingTest(unittest.TestCase):
    def test_bound_statements_compile(self):
        r = compile_file("bound.cpp")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_each_unbound_statement_fails_naming_the_check(self):
        for case, expect in ((1, CHECK), (2, CHECK), (3, CHECK), (4, "not a constant expression"), (5, CHECK),
                             (6, CHECK), (7, CHECK)):
            with self.subTest(case=case):
                r = compile_file("unbound.cpp", f"-DCASE={case}")
                self.assertNotEqual(r.returncode, 0, f"case {case} compiled")
                self.assertIn(expect, r.stderr, r.stderr[-2000:])


if __name__ == "__main__":
    unittest.main()
