#!/usr/bin/env python3
"""Generates docs/errors.md: every error a user of fmc and fmviz can get,
each with its input, its command and the exact output, by running the
commands against a build.

    tools/gen-errors-doc.py [BUILD_DIR]     (default: build-test)

tests/test_errors_doc.c parses the page back and runs every case again,
comparing byte for byte, so the page cannot go stale: after changing a
message, run this again and review the diff.

The compile errors are the front end's malformed-file table
(tests/dsl_cases.h); the other cases are listed below."""
import ast
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

root = pathlib.Path(__file__).resolve().parent.parent
build = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else root / "build-test").resolve()
tools = {"fmc": build / "tools" / "fmc", "fmviz": build / "tools" / "fmviz"}
for t in tools.values():
    if not t.exists():
        sys.exit(f"gen-errors-doc: {t} not found; build first")


def c_bytes(lit):
    raw = "".join(c if ord(c) < 128 else "".join("\\x%02x" % b for b in c.encode()) for c in lit)
    return ast.literal_eval('b"' + raw + '"')


def table_cases():
    text = (root / "tests" / "dsl_cases.h").read_text()
    for m in re.finditer(r'BAD\(\s*"([^"]*)",\s*((?:"(?:[^"\\]|\\.)*"\s*)+),', text):
        lits = re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(2))
        yield m.group(1), b"".join(c_bytes(lit) for lit in lits)


def npy(descr, shape, data):
    """A .npy file image (version 1.0)."""
    h = "{'descr': '%s', 'fortran_order': False, 'shape': %r, }" % (descr, tuple(shape))
    h = h.encode() + b" " * ((-(11 + len(h))) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h + data


def f32(n):
    return b"\x00\x00\x80\x3f" * n  # 1.0


def i32(*v):
    return b"".join(x.to_bytes(4, "little", signed=True) for x in v)


def i64(*v):
    return b"".join(x.to_bytes(8, "little", signed=True) for x in v)


# (id, title, {file: bytes}, command). Files that are not readable text are
# written by the command itself (printf), so the page shows how to make them.
W = b"param w;\nmask m = kv <= q && q - kv < w;\n"
DOC = b"input doc[KV_LEN];\nmask m = doc[kv] == doc[q] && kv <= q;\n"
SW = b"param window = 256;\nlet causal = kv <= q;\nmask m = causal && q - kv < window;\n"
SECTIONS = [
    ("Reading mask files", "fmc check, print, blockmask, cuda, ptx and fmviz read mask files the same way.", [
        ("no_such_file", "the file does not exist", {}, "fmc check missing.mask"),
        ("directory", "the path is a folder", {}, "mkdir d.mask && fmc check d.mask"),
        ("file_too_large", "past the 16 MiB file-size limit", {},
         "head -c 16777217 /dev/zero | tr '\\0' ' ' > big.mask && fmc check big.mask"),
    ]),
    ("Limits of the language", "Resource limits: each error names the limit.", [
        ("nesting_too_deep", "expressions nest at most 1,000 levels", {},
         "awk 'BEGIN { s = \"mask m = \"; for (i = 0; i < 1001; i++) s = s \"(\"; s = s \"q < kv\"; "
         "for (i = 0; i < 1001; i++) s = s \")\"; print s \";\" }' > deep.mask && fmc check deep.mask"),
        ("too_many_declarations", "a file holds at most 100,000 declarations", {},
         "awk 'BEGIN { for (i = 0; i <= 100000; i++) print \"param p\" i \" = 1;\"; "
         "print \"mask m = kv <= q;\" }' > many.mask && fmc check many.mask"),
    ]),
    ("Params and inputs", "Binding errors: exit status 1.", [
        ("param_without_value", "a param with no default and no -D", {"w.mask": W},
         "fmc blockmask w.mask --q-len 8"),
        ("param_not_declared", "-D for a name the file does not declare", {"w.mask": W},
         "fmc blockmask w.mask --q-len 8 -D w=2 -D width=3"),
        ("param_misspelt", "-D for a name close to a declared one", {"sw.mask": SW},
         "fmc blockmask sw.mask --q-len 8 -D windw=3"),
        ("param_not_a_param", "-D for a name declared as something else", {"sw.mask": SW},
         "fmc blockmask sw.mask --q-len 8 -D causal=1"),
        ("param_out_of_range", "a -D value past 64 bits", {"w.mask": W},
         "fmc blockmask w.mask --q-len 8 -D w=9223372036854775808"),
        ("input_not_bound", "an input the mask reads has no --input", {"doc.mask": DOC},
         "fmc blockmask doc.mask --q-len 8"),
        ("input_wrong_length", "an input of the wrong size", {"doc.mask": DOC},
         "fmc blockmask doc.mask --q-len 8 --input doc=0,0,1,1"),
        ("input_not_declared", "--input for a name the file does not declare", {"doc.mask": DOC},
         "fmc blockmask doc.mask --q-len 4 --input doc=0,0,1,1 --input id=1,2"),
        ("input_value_range", "a list value outside int32", {"doc.mask": DOC},
         "fmc blockmask doc.mask --q-len 2 --input doc=0,2147483648"),
        ("input_npy_wrong_rank", "a .npy input of the wrong rank", {"doc.mask": DOC, "doc2.npy": npy("<i4", (2, 2), i32(0, 0, 1, 1))},
         "fmc blockmask doc.mask --q-len 4 --input doc=@doc2.npy"),
        ("input_npy_int64_range", "an int64 .npy value outside int32", {"doc.mask": DOC, "doc.npy": npy("<i8", (2,), i64(0, 1 << 32))},
         "fmc blockmask doc.mask --q-len 2 --input doc=@doc.npy"),
        ("input_npy_float", "a floating-point .npy input", {"doc.mask": DOC, "docf.npy": npy("<f4", (2,), f32(2))},
         "fmc blockmask doc.mask --q-len 2 --input doc=@docf.npy"),
        ("no_such_mask", "--mask names no mask of the file", {"w.mask": W},
         "fmc blockmask w.mask --q-len 8 -D w=2 --mask sliding"),
    ]),
    ("Safety rules", "The build fails when some point of the shape breaks a rule; the message names one such point.", [
        ("index_out_of_range", "an index past its dimension",
         {"doc.mask": b"input doc[KV_LEN];\nmask m = doc[kv + 1] == doc[kv];\n"},
         "fmc blockmask doc.mask --q-len 4 --input doc=0,0,1,1"),
        ("index_negative", "a negative index",
         {"doc.mask": b"input doc[KV_LEN];\nmask m = doc[kv - 1] == doc[kv];\n"},
         "fmc blockmask doc.mask --q-len 4 --input doc=0,0,1,1"),
        ("division_by_zero", "a divisor that is zero at some point",
         {"div.mask": b"mask m = q / (kv - 3) < 2;\n"}, "fmc blockmask div.mask --q-len 8"),
        ("modulus_zero", "a modulus that is zero for the given param",
         {"mod.mask": b"param n;\nmask m = q % n == kv % n;\n"}, "fmc blockmask mod.mask --q-len 8 -D n=0"),
        ("overflow", "a value past the signed 64-bit range",
         {"big.mask": b"param s = 4611686018427387904;\nmask m = q * s < kv;\n"}, "fmc blockmask big.mask --q-len 8"),
        ("division_overflow", "the smallest int64 divided by -1",
         {"min.mask": b"param lo = -9223372036854775808;\nparam d = -1;\nmask m = lo / d < q;\n"},
         "fmc blockmask min.mask --q-len 8"),
        ("input_dimension_param", "an input whose dimension is a param the build cannot use",
         {"tab.mask": b"param n;\ninput tab[n];\nmask m = tab[q % n] > 0;\n"},
         "fmc blockmask tab.mask --q-len 4 -D n=-2 --input tab=1,2"),
    ]),
    ("Shapes and memory", "The shape and block sizes are checked before anything is allocated.", [
        ("q_len_too_large", "a sequence past 2^31 - 1 positions", {"c.mask": b"mask m = kv <= q;\n"},
         "fmc blockmask c.mask --q-len 2147483648"),
        ("batch_too_large", "more than 2^24 batches", {"b.mask": b"mask m = kv <= q || b == 1;\n"},
         "fmc blockmask b.mask --q-len 8 --batch 16777217"),
        ("memory_budget", "tile lists past the memory budget (1 GiB)", {"c.mask": b"mask m = kv <= q;\n"},
         "fmc blockmask c.mask --q-len 2000000 --block 1"),
        ("memory_budget_flag", "tile lists past a smaller --memory-budget", {"c.mask": b"mask m = kv <= q;\n"},
         "fmc blockmask c.mask --q-len 4096 --block 16 --memory-budget 256K"),
        ("evaluation_bound", "a build past --max-evaluations (this mask is false everywhere, "
         "which the analysis cannot prove, so all 90,000 positions would be evaluated)",
         {"nt.mask": b"mask m = q * q % 7 == 3 || kv * kv % 7 == 5;\n"},
         "fmc blockmask nt.mask --q-len 300 --block 300 --max-evaluations 1000"),
        ("check_evaluation_bound", "`fmviz --check` past --max-evaluations (the check evaluates "
         "every position, whatever the analysis proved)",
         {"c.mask": b"mask m = kv <= q;\n"},
         "fmviz c.mask --q-len 300 --block 100 --check --max-evaluations 1000"),
    ]),
    (".npy files", "Arrays for --input NAME=@FILE and fmc attend.", [
        ("npy_missing", "the file does not exist", {"doc.mask": DOC},
         "fmc blockmask doc.mask --q-len 2 --input doc=@missing.npy"),
        ("npy_not_npy", "not a .npy file", {"doc.mask": DOC, "doc.npy": b"0,1\n"},
         "fmc blockmask doc.mask --q-len 2 --input doc=@doc.npy"),
        ("npy_truncated", "fewer data bytes than the header promises", {"doc.mask": DOC, "doc.npy": npy("<i4", (4,), i32(0, 1))},
         "fmc blockmask doc.mask --q-len 4 --input doc=@doc.npy"),
        ("npy_fortran", "Fortran order", {"doc.mask": DOC, "doc.npy": npy("<i4", (2,), i32(0, 1)).replace(b"False", b"True ")},
         "fmc blockmask doc.mask --q-len 2 --input doc=@doc.npy"),
        ("npy_big_endian", "big-endian data", {"doc.mask": DOC, "doc.npy": npy(">i4", (2,), b"\0\0\0\0\0\0\0\1")},
         "fmc blockmask doc.mask --q-len 2 --input doc=@doc.npy"),
        ("npy_trailing", "bytes after the data", {"doc.mask": DOC, "doc.npy": npy("<i4", (2,), i32(0, 1, 2))},
         "fmc blockmask doc.mask --q-len 2 --input doc=@doc.npy"),
        ("npy_stream_not_npy", "a stream that is not a .npy file (refused after its first bytes, "
         "whatever its length)", {"c.mask": b"mask m = kv <= q;\n", "q.npy": npy("<f4", (1, 1, 2, 2), f32(4))},
         "fmc attend c.mask --q /dev/zero --k q.npy --v q.npy --out o.npy --device cpu"),
        ("npy_stdin_trailing", "standard input (`-`) holds more than the array", {"c.mask": b"mask m = kv <= q;\n", "q.npy": npy("<f4", (1, 1, 2, 2), f32(4))},
         "(cat q.npy; printf x) | fmc attend c.mask --q - --k q.npy --v q.npy --out o.npy --device cpu"),
        ("npy_stdin_twice", "two `--input NAME=@-` (standard input can be read once)",
         {"two.mask": b"input x[KV_LEN];\ninput y[KV_LEN];\nmask m = x[kv] == y[q];\n", "x.npy": npy("<i4", (2,), i32(0, 1))},
         "fmc blockmask two.mask --q-len 2 --input x=@- --input y=@- < x.npy"),
        ("npy_escaped_key", "an unexpected header key; bytes that could drive the terminal are shown escaped",
         {"doc.mask": DOC, "doc.npy": b"\x93NUMPY\x01\x00\x42\x00{'descr': '<i4', 'fortran_order': False, 'shape': (2,), '\x1b[2J': 1}\0\0\0\0\0\0\0\0"},
         "fmc blockmask doc.mask --q-len 2 --input doc=@doc.npy"),
    ]),
    ("Writing files", "Outputs are written to a temporary file in the same folder and renamed into place when complete: "
     "a failed write leaves an existing file as it was (a FIFO or device is written directly).", [
        ("write_to_folder", "the output names a folder", {"c.mask": b"mask m = kv <= q;\n", "q.npy": npy("<f4", (1, 1, 2, 2), f32(4))},
         "mkdir out.npy && fmc attend c.mask --q q.npy --k q.npy --v q.npy --out out.npy --device cpu"),
        ("write_no_folder", "the output's folder does not exist", {"c.mask": b"mask m = kv <= q;\n"},
         "fmc blockmask c.mask --q-len 8 --safetensors missing/m.safetensors"),
    ]),
    ("Attention (fmc attend)", "Q is [BATCH, HEADS, Q_LEN, D], K and V [BATCH, KV_HEADS, KV_LEN, D].", [
        ("attend_missing_array", "a required array flag is missing", {"c.mask": b"mask m = kv <= q;\n", "q.npy": npy("<f4", (1, 1, 2, 2), f32(4))},
         "fmc attend c.mask --q q.npy --k q.npy --out o.npy"),
        ("attend_shape_mismatch", "K's length disagrees with --kv-len", {"c.mask": b"mask m = kv <= q;\n", "q.npy": npy("<f4", (1, 1, 2, 2), f32(4))},
         "fmc attend c.mask --q q.npy --k q.npy --v q.npy --out o.npy --kv-len 3 --device cpu"),
        ("attend_kv_heads", "KV_HEADS does not divide HEADS", {"c.mask": b"mask m = kv <= q;\n", "q.npy": npy("<f4", (1, 3, 2, 2), f32(12)), "k.npy": npy("<f4", (1, 2, 2, 2), f32(8))},
         "fmc attend c.mask --q q.npy --k k.npy --v k.npy --out o.npy --device cpu"),
        ("attend_dtype", "an array that is not float32 or float16", {"c.mask": b"mask m = kv <= q;\n", "q.npy": npy("<i4", (1, 1, 2, 2), i32(0, 0, 0, 0))},
         "fmc attend c.mask --q q.npy --k q.npy --v q.npy --out o.npy --device cpu"),
        ("attend_rank", "an array that is not 4-D", {"c.mask": b"mask m = kv <= q;\n", "q.npy": npy("<f4", (2, 2), f32(4))},
         "fmc attend c.mask --q q.npy --k q.npy --v q.npy --out o.npy --device cpu"),
    ]),
    ("JSON diagnostics", "With `--diagnostics json` every error is one JSON object per line (docs/cli.md).", [
        ("json_compile_error", "a compile error as JSON",
         {"t.mask": b"param window = 256;\nmask m = q - kv < windw;\n"},
         "fmc check --diagnostics json t.mask"),
        ("json_safety_error", "a safety error as JSON",
         {"doc.mask": b"input doc[KV_LEN];\nmask m = doc[kv + 1] == doc[kv];\n"},
         "fmc blockmask doc.mask --q-len 4 --input doc=0,0,1,1 --diagnostics json"),
        ("json_binding_error", "a binding error as JSON", {"w.mask": W},
         "fmviz w.mask --q-len 8 --diagnostics json"),
    ]),
    ("Command-line usage", "Bad usage of the programs themselves: exit status 2.", [
        ("unknown_subcommand", "an unknown subcommand", {}, "fmc frobnicate"),
        ("misspelt_subcommand", "a misspelt subcommand", {}, "fmc chek c.mask"),
        ("unknown_flag", "an unknown flag", {"c.mask": b"mask m = kv <= q;\n"}, "fmc blockmask c.mask --q-len 8 --qlen 8"),
        ("flag_without_value", "a flag without its value", {"c.mask": b"mask m = kv <= q;\n"}, "fmc blockmask c.mask --q-len"),
        ("malformed_number", "a malformed number", {"c.mask": b"mask m = kv <= q;\n"}, "fmc blockmask c.mask --q-len 8k"),
        ("zero_length", "a length that is not positive", {"c.mask": b"mask m = kv <= q;\n"}, "fmc blockmask c.mask --q-len 0"),
        ("zero_block", "a block size that is not positive", {"c.mask": b"mask m = kv <= q;\n"}, "fmc blockmask c.mask --q-len 8 --block 0"),
        ("q_len_missing", "--q-len is required", {"c.mask": b"mask m = kv <= q;\n"}, "fmc blockmask c.mask"),
        ("define_malformed", "-D without NAME=VALUE", {"c.mask": b"mask m = kv <= q;\n"}, "fmc blockmask c.mask --q-len 8 -D window"),
        ("attend_two_stdin", "two of fmc attend's arrays are `-` (standard input)", {"c.mask": b"mask m = kv <= q;\n", "q.npy": npy("<f4", (1, 1, 2, 2), f32(4))},
         "fmc attend c.mask --q - --k q.npy --v - --out o.npy < q.npy"),
        ("input_malformed", "--input with a malformed list", {"doc.mask": DOC}, "fmc blockmask doc.mask --q-len 2 --input doc=0,,1"),
        ("diagnostics_value", "--diagnostics is text or json", {"c.mask": b"mask m = kv <= q;\n"}, "fmc check --diagnostics xml c.mask"),
        ("format_value", "--format is text or json", {"c.mask": b"mask m = kv <= q;\n"}, "fmc blockmask c.mask --q-len 8 --format yaml"),
        ("memory_budget_suffix", "--memory-budget with an unknown suffix", {"c.mask": b"mask m = kv <= q;\n"},
         "fmc blockmask c.mask --q-len 8 --memory-budget 1T"),
        ("max_evaluations_negative", "--max-evaluations below 0", {"c.mask": b"mask m = kv <= q;\n"},
         "fmc blockmask c.mask --q-len 8 --max-evaluations -1"),
        ("check_unknown_flag", "an unknown flag to fmc check", {"c.mask": b"mask m = kv <= q;\n"},
         "fmc check --strict c.mask"),
        ("check_no_file", "fmc check without a file", {}, "fmc check"),
        ("print_two_files", "fmc print takes one file", {"c.mask": b"mask m = kv <= q;\n"}, "fmc print c.mask c.mask"),
        ("fmviz_no_file", "fmviz without a file", {}, "fmviz --q-len 8"),
        ("fmviz_check_mismatch_flags", "fmviz with an unknown flag", {"c.mask": b"mask m = kv <= q;\n"}, "fmviz c.mask --q-len 8 --pngg x.png"),
    ]),
]


def printable(b):
    """Whether bytes can sit in a fenced block of the page unchanged."""
    try:
        s = b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return "```" not in s and all(c in "\n\t" or (ord(c) >= 32 and ord(c) != 127) for c in s)


def printf_arg(b):
    out = []
    for x in b:
        c = chr(x)
        if c == "'" or c == "\\" or c == "%" or x < 32 or x >= 127:
            out.append("\\%03o" % x)
        else:
            out.append(c)
    return "'" + "".join(out) + "'"


def run(files, cmd):
    with tempfile.TemporaryDirectory() as d:
        bindir = pathlib.Path(d) / ".bin"
        bindir.mkdir()
        for name, path in tools.items():
            os.symlink(path, bindir / name)
        work = pathlib.Path(d) / "work"
        work.mkdir()
        for name, data in files.items():
            (work / name).write_bytes(data)
        env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", LC_ALL="C", NO_COLOR="1")
        env.pop("FLEXMASK_CACHE_DIR", None)
        p = subprocess.run(["sh", "-c", cmd], cwd=work, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
        return p.returncode, p.stderr


def fence(lang, text):
    return f"```{lang}\n{text}```\n"


def case_md(cid, title, files, cmd):
    lines = [f"### {cid}\n", f"{title[0].upper()}{title[1:]}.\n"]
    shown, written = {}, []
    for name, data in files.items():
        if printable(data) and data.endswith(b"\n") and not name.endswith(".npy"):
            shown[name] = data
        else:
            written.append(f"printf {printf_arg(data)} > {name}")
    full_cmd = "\n".join(written + [cmd])
    for name, data in shown.items():
        lines.append(f"File `{name}`:\n")
        lines.append(fence("mask", data.decode()))
    lines.append(fence("sh", full_cmd + "\n"))
    rc, err = run(files, full_cmd)  # files shown are written by the test too
    if not err:
        lines.append(f"Exit status {rc}; nothing on stderr.\n")
    elif printable(err) and err.endswith(b"\n"):
        lines.append(f"Exit status {rc}; stderr:\n")
        lines.append(fence("text", err.decode()))
    else:
        sys.exit(f"gen-errors-doc: {cid}: stderr is not printable text: {err!r}")
    return "\n".join(lines), rc


def main():
    out = ["# Errors\n",
           "Every error a user of `fmc` and `fmviz` can get: an example input, the\n"
           "command, and the exact output. Generated by `tools/gen-errors-doc.py` from\n"
           "the current build; `tests/test_errors_doc.c` runs every case again and\n"
           "compares the output byte for byte, so this page cannot go stale.\n",
           "Messages follow one form: `FILE:LINE:COL: error: MESSAGE`, the source line,\n"
           "a caret line under the offending text, and sometimes a `hint:` line.\n"
           "Errors with no place in a mask file start with `error:` and the\n"
           "program (`error: fmc blockmask: MESSAGE`). With\n"
           "`--diagnostics json` each error is one JSON object per line instead.\n"
           "Exit status (docs/cli.md): 0 ok, 1 the mask file, a param or an input is\n"
           "wrong, 2 bad usage, 3 a check found a mismatch.\n",
           "Each case writes its files (shown, or made by the `printf` in the\n"
           "command), runs the command in their folder, and shows stderr.\n"]
    sections = [("Compile errors",
                 "The front end's checks (`fmc check`; every subcommand reports the same). "
                 "Each file is `t.mask`.",
                 [(f"{name}", name.replace("_", " "), {"t.mask": src}, "fmc check t.mask")
                  for name, src in table_cases()])] + SECTIONS
    toc = []
    body = []
    count = 0
    for title, intro, cases in sections:
        anchor = re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-")
        toc.append(f"- [{title}](#{anchor}) ({len(cases)})")
        body.append(f"## {title}\n\n{intro}\n")
        for cid, ctitle, files, cmd in cases:
            md, rc = case_md(cid, ctitle, files, cmd)
            if rc == 0:
                sys.exit(f"gen-errors-doc: {cid}: exit status 0, not an error")
            body.append(md)
            count += 1
    out.append("\n".join(toc) + "\n")
    out.extend(body)
    text = "\n".join(out)
    (root / "docs" / "errors.md").write_text(text)
    print(f"docs/errors.md: {count} cases", file=sys.stderr)


main()
