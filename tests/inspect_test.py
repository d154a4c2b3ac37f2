"""`quarrel inspect`: output on a real model, the command line, and bad files.

- stories260K: the text output names architecture llama and lists every tensor that
  gguf.GGUFReader finds, with its type and shape; --json parses and agrees.
- Usage: --help exits 0; unknown flags and a missing FILE exit 2 with the usage.
- Every shared GGUF: truncated copies (seeded cut points before the end of the data)
  exit 1 with exactly one line on stderr; copies with seeded random byte flips in the
  header region exit 0 (a flip inside a string or a float can leave a valid file) or 1
  with exactly one line on stderr, and never die from a signal or hang.
"""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

BIN = os.environ.get("QUARREL_BIN", "build/bin/quarrel")
SHARED = os.environ.get("QUARREL_SHARED", "../shared")
FLIPS_PER_FILE = 40
CUTS_PER_FILE = 12

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg, file=sys.stderr)


def run(*args):
    return subprocess.run([BIN, "inspect", *args], capture_output=True, timeout=60)


def test_stories(path):
    r = run(path)
    out = r.stdout.decode()
    check(r.returncode == 0, f"inspect stories260K: exit {r.returncode}: {r.stderr.decode()}")
    arch = [l for l in out.splitlines() if l.split()[:1] == ["general.architecture"]]
    check(len(arch) == 1 and '"llama"' in arch[0], f"architecture line: {arch}")
    try:
        import gguf
    except ImportError:
        print("SKIPPED (part): gguf package absent; tensor list not cross-checked")
        return
    ref = gguf.GGUFReader(path)
    rows = {l.split()[1]: l.split() for l in out.splitlines() if l.strip()[:1].isdigit() and len(l.split()) > 3}
    for t in ref.tensors:
        row = rows.get(t.name)
        check(row is not None and row[2] == t.tensor_type.name, f"tensor {t.name}: row {row}")
        if row:
            shape = " ".join(row[3:3 + len(t.shape)]).strip("[]").replace(",", "").split()
            check([int(x) for x in shape] == [int(x) for x in t.shape], f"tensor {t.name}: shape {shape}")
    check(f"tensors: {len(ref.tensors)}" in out, "tensor count line")
    doc = json.loads(run("--json", path).stdout)
    arch_kv = [m for m in doc["metadata"] if m["key"] == "general.architecture"]
    check(arch_kv and arch_kv[0]["value"] == "llama", "JSON architecture")
    check([t["name"] for t in doc["tensors"]] == [t.name for t in ref.tensors], "JSON tensor names")
    toks = [m for m in doc["metadata"] if m["key"] == "tokenizer.ggml.tokens"][0]
    check(toks["count"] == 512 and len(toks["value"]) == 8 and toks["truncated"], "long arrays are summarised")
    print(f"stories260K: architecture llama and {len(ref.tensors)} tensors shown")


def test_usage(path):
    r = run("--help")
    check(r.returncode == 0 and b"usage: quarrel inspect" in r.stdout, "--help")
    for args in (["--bogus", path], [], ["--array-items"], [path, path], ["--array-items", "x", path]):
        r = run(*args)
        check(r.returncode == 2 and b"usage:" in r.stderr, f"inspect {args}: exit {r.returncode}")
    r = run("/nonexistent.gguf")
    check(r.returncode == 1 and len(r.stderr.splitlines()) == 1, "missing file")


def bad_run(path, what, must_fail):
    try:
        r = run(path)
    except subprocess.TimeoutExpired:
        check(False, f"{what}: hangs")
        return None
    lines = r.stderr.decode(errors="replace").splitlines()
    check(r.returncode >= 0, f"{what}: killed by signal {-r.returncode}")
    if must_fail:
        check(r.returncode == 1, f"{what}: exit {r.returncode}, expected 1")
    else:
        check(r.returncode in (0, 1), f"{what}: exit {r.returncode}")
    if r.returncode == 1:
        check(len(lines) == 1, f"{what}: {len(lines)} lines on stderr: {lines[:3]}")
    return r.returncode


def corrupt_file(src, tmp, rng):
    name = os.path.basename(src)
    doc = json.loads(run("--json", src).stdout)
    header_end = min(doc["data_offset"], doc["file_size"])
    data_end = max([t["file_offset"] + t["bytes"] for t in doc["tensors"]], default=0)
    # Without tensors the header ends somewhere in the last alignment unit.
    must_end = data_end if doc["tensors"] else header_end - doc["alignment"] + 1
    copy = os.path.join(tmp, name)
    shutil.copyfile(src, copy)
    failed = 0
    with open(copy, "r+b") as f:
        for i in range(FLIPS_PER_FILE):
            positions = [rng.randrange(header_end) for _ in range(rng.randint(1, 4))]
            saved = []
            for p in positions:
                f.seek(p)
                b = f.read(1)
                saved.append((p, b))
                f.seek(p)
                f.write(bytes([b[0] ^ (1 << rng.randrange(8))]))
            f.flush()
            failed += bad_run(copy, f"{name} flip {i} at {positions}", False) == 1
            for p, b in reversed(saved):
                f.seek(p)
                f.write(b)
            f.flush()
    cuts = sorted({rng.randrange(must_end) for _ in range(CUTS_PER_FILE)} | {0, 3, 23, must_end - 1}, reverse=True)
    for n in cuts:
        os.truncate(copy, n)  # descending, so one copy serves every cut
        bad_run(copy, f"{name} truncated to {n} bytes", True)
    os.remove(copy)
    return failed, len(cuts)


def main():
    stories = os.path.join(SHARED, "models", "stories260K.gguf")
    if not os.path.exists(stories):
        print(f"SKIPPED: {stories} is absent (the shared test-data folder)")
        return 77
    test_usage(stories)
    test_stories(stories)
    paths = []
    for sub in ("models", "tokenizer-vectors"):
        for root, _, files in os.walk(os.path.join(SHARED, sub)):
            paths += [os.path.join(root, f) for f in sorted(files) if f.endswith(".gguf")]
    rng = random.Random(20261126)
    total_flips = total_failed = total_cuts = 0
    with tempfile.TemporaryDirectory() as tmp:
        for p in sorted(paths):
            failed, cuts = corrupt_file(p, tmp, rng)
            total_flips += FLIPS_PER_FILE
            total_failed += failed
            total_cuts += cuts
    print(f"{len(paths)} files: {total_cuts} truncated copies all rejected; {total_failed} of {total_flips} "
          f"byte-flipped copies rejected with one line, the rest still valid; no signals, no hangs")
    if failures:
        print(f"inspect_test: {len(failures)} failure(s)", file=sys.stderr)
        return 1
    print("inspect_test: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
