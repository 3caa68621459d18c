#!/usr/bin/env python3
"""Checks that every verifier diagnostic of the moe dialects has a test.

Lists each emitOpError/emitError call in dialects/moe/IR/*.cpp, takes the
string literals of its message (the parts between the streamed values) and
looks for a `expected-error` line in the lit tests (test/**/*.mlir) that
contains all of them, in order. Prints the call sites with no such test and
exits 1 if there is any.

Messages are assembled from literals and values (`<< "'k' = " << k << ...`),
so a test "covers" a call site when its expected text holds every literal
fragment of that call; fragments of only spaces and punctuation are ignored.
A choice between literals (`cond ? "static" : "dynamic"`) needs a test for
each alternative.
"""
import itertools
import glob
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CALL = re.compile(r"\bemit(?:Op)?Error\s*\(")
LITERAL = re.compile(r'"((?:[^"\\]|\\.)*)"')
CHOICE = re.compile(r'\?\s*"((?:[^"\\]|\\.)*)"\s*:\s*"((?:[^"\\]|\\.)*)"')


def call_sites(path):
    text = open(path).read()
    for match in CALL.finditer(text):
        # The statement: up to the `;` that ends it (messages span lines).
        end = text.index(";", match.end())
        statement = text[match.start():end]
        line = text.count("\n", 0, match.start()) + 1
        # Each entry: the alternatives at that position of the message.
        parts = []
        pos = 0
        while True:
            choice = CHOICE.search(statement, pos)
            literal = LITERAL.search(statement, pos)
            if not literal:
                break
            if choice and choice.start() < literal.start():
                parts.append([choice.group(1), choice.group(2)])
                pos = choice.end()
            else:
                parts.append([literal.group(1)])
                pos = literal.end()
        parts = [[bytes(a, "utf-8").decode("unicode_escape").strip() for a in alts]
                 for alts in parts]
        parts = [alts for alts in parts if any(re.search(r"[A-Za-z0-9]", a) for a in alts)]
        for fragments in itertools.product(*parts):
            yield line, statement, list(fragments)


def expected_texts():
    texts = []
    for path in glob.glob(os.path.join(ROOT, "test", "**", "*.mlir"), recursive=True):
        for m in re.finditer(r"expected-error[^{]*\{\{(.*?)\}\}", open(path).read()):
            texts.append(m.group(1))
    return texts


def covered(fragments, texts):
    for text in texts:
        pos = 0
        for frag in fragments:
            pos = text.find(frag, pos)
            if pos < 0:
                break
            pos += len(frag)
        else:
            return True
    return False


def main():
    texts = expected_texts()
    missing = 0
    total = 0
    for path in sorted(glob.glob(os.path.join(ROOT, "dialects", "moe", "IR", "*.cpp"))):
        for line, statement, fragments in call_sites(path):
            total += 1
            if not fragments:
                print(f"{os.path.relpath(path, ROOT)}:{line}: message has no literal text: "
                      f"{' '.join(statement.split())[:100]}")
                missing += 1
            elif not covered(fragments, texts):
                print(f"{os.path.relpath(path, ROOT)}:{line}: no test expects "
                      f"{' ... '.join(repr(f) for f in fragments)}")
                missing += 1
    print(f"{total - missing}/{total} verifier diagnostics have a test")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
