"""Diagnostics as the compiler would show them: coloured on a terminal, plain
on a pipe, on a miss and on a hit, whoever stored the entry
(docs/direct-mode.md, "Colours")."""

from __future__ import annotations

import os
import pty
import subprocess
import tty

import kilntest

WARNING_SOURCE = "int f(void) { int unused; return 1 / 0; }\n"


class Colours:
    cxx: str

    def setUp(self):
        super().setUp()
        self.write("w.cpp", WARNING_SOURCE)
        # TERM=xterm without COLORTERM: gcc 12 colours but adds no links.
        self.env["TERM"] = "xterm"
        self.env.pop("COLORTERM", None)
        self.args = ["-c", "w.cpp", "-Wall", "-o", "w.o"]

    def on_terminal(self, argv, env=None):
        """Runs argv with stderr on a pseudo-terminal; returns what it wrote there."""
        self.settle()
        master, slave = pty.openpty()
        tty.setraw(slave)  # no "\n" -> "\r\n"
        p = subprocess.Popen([str(a) for a in argv], cwd=self.dir, env=env or self.env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        out = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                break
            if not chunk:
                break
            out += chunk
        os.close(master)
        p.wait(timeout=120)
        return out

    def test_terminal_then_pipe(self):
        coloured = self.on_terminal([self.cxx, *self.args])
        plain = self.plain(self.cxx, *self.args).err
        self.assertIn(b"\x1b[", coloured, "the compiler did not colour on a terminal")
        self.assertNotIn(b"\x1b[", plain)
        # A miss on a terminal is coloured, a hit on a pipe is not, and a hit
        # on a terminal is coloured again: the same entry serves all three.
        self.assertEqual(self.on_terminal([kilntest.KILN, self.cxx, *self.args]), coloured)
        self.assertEqual(self.ok(self.compile(self.cxx, *self.args)).err, plain)
        self.assertEqual(self.on_terminal([kilntest.KILN, self.cxx, *self.args]), coloured)
        self.assertEqual(self.stats()["direct_hit"], 2)

    def test_pipe_then_terminal(self):
        coloured = self.on_terminal([self.cxx, *self.args])
        plain = self.plain(self.cxx, *self.args).err
        self.assertEqual(self.ok(self.compile(self.cxx, *self.args)).err, plain)
        self.assertEqual(self.on_terminal([kilntest.KILN, self.cxx, *self.args]), coloured)
        self.assertEqual(self.stats()["direct_hit"], 1)

    def test_dumb_terminal_and_explicit_choices(self):
        dumb = dict(self.env, TERM="dumb")
        self.ok(self.compile(self.cxx, *self.args))
        self.assertEqual(self.on_terminal([kilntest.KILN, self.cxx, *self.args], env=dumb),
                         self.on_terminal([self.cxx, *self.args], env=dumb))
        # An explicit choice is the user's: in the key, replayed as it was.
        for choice in (["-fdiagnostics-color=always"] if "g++" in self.cxx else
                       ["-fcolor-diagnostics"], ["-fno-diagnostics-color"]):
            args = [*self.args, *choice]
            want = self.plain(self.cxx, *args).err
            self.assertEqual(self.ok(self.compile(self.cxx, *args)).err, want)
            self.assertEqual(self.ok(self.compile(self.cxx, *args)).err, want)

    def test_objects_do_not_record_the_colour_option(self):
        args = ["-c", "w.cpp", "-g", "-O2", "-o", "w.o"]
        self.ok(self.compile(self.cxx, *args))
        self.plain(self.cxx, "-c", "w.cpp", "-g", "-O2", "-o", "p.o")
        self.assertEqual(kilntest.read_bytes(self.dir / "w.o"),
                         kilntest.read_bytes(self.dir / "p.o"))


kilntest.instantiate(globals(), Colours)

if __name__ == "__main__":
    kilntest.main()
