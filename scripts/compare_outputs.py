#!/usr/bin/env python3
"""Compare two output trees of scripts/run_bundled.sh, file by file, and report every difference.

Usage:
    .venv/bin/python scripts/compare_outputs.py OLD_DIR NEW_DIR [--max-per-file N]
                                                [--json-key-order {report,ignore}]

Exit status: 0 the trees are the same (up to the documented exceptions below), 1 they differ
(every difference is listed, as are files found in only one tree), 2 bad usage.

What "the same" means, by file kind (the exceptions are the volatile parts: when and where a
run happened and with which build, never what it computed):

* JSON (report.json, model cards, checkpoint state, inspect --json output, ...): parsed and
  compared recursively, types included (1 is not 1.0) and floats bit for bit (-0.0 is not
  0.0). Keys that hold timings are ignored (TIMING_KEYS below). A change of key order is
  reported too (bytes and readers of the text differ), unless --json-key-order=ignore.
  provenance.json (and the `provenance` attribute of HDF5 outputs) is compared the same way
  except for PROVENANCE_VOLATILE_KEYS, at any depth (merged records list their shards with
  their own times and hosts), and the size and hash of inputs that the same harness run made
  (RUN_OUTPUT_PREFIX). The command line, config, config hash, seeds, inputs from data/,
  outputs and status are compared: run_bundled.sh makes command lines independent of
  OUTDIR and of where the binary is (so run both trees with the same THREADS).
* FITS: the same HDUs in the same order; every header card's 80-character image equal, in
  order, except FITS_VOLATILE_CARDS (and DATASUM's comment, which cfitsio timestamps); the
  HISTORY cards joined into one text, whitespace removed, and compared with the build's git
  commit and the hashes of inputs made in the same run masked (see history_text); the
  data unit compared as raw bytes from the file (bit for bit, so NaN payloads too; tables
  with their heap), and when it differs, column by column (or pixel statistics for images)
  to say where.
* HDF5: the same groups and datasets; per dataset dtype, shape, chunks, compression, filters
  and the values (raw bytes for fixed-size types, element by element otherwise); the same
  attributes with equal values on every object, except HDF5_VOLATILE_ATTRS; the
  `provenance` root attribute is parsed and compared like provenance.json. (HDF5 files carry
  object timestamps, so their bytes differ between identical runs.)
* `*.dump.toml` (the --dump-config outputs): parsed with tomllib and compared as values, so
  comments may be added (schemars doc comments) but no key or value may change.
* PDF: bytes, after sorting the entries of resource dictionaries, which the baseline writes
  in a different (hash-map) order on every run (see PDF_REF_DICT).
* Everything else (CSV, DS9 .reg, .txt, plain inspect output, submit --dry-run output,
  safetensors weights, parquet, PNG, SVG, *.exit codes): bytes.
* Skipped: the logs (stdout/stderr of each command: timings, progress) and the harness's
  own notes (SKIP_NAMES), and hidden folders (.work/, .bin/: symlinks to the checkout).
"""

import argparse
import json
import os
import re
import struct
import sys
import tomllib
from collections import Counter

import numpy as np

# --- What is ignored, and why ------------------------------------------------------------------

# File names (anywhere) and suffixes that are not outputs.
SKIP_NAMES = {
    "_timings.tsv",  # wall time of each command in run_bundled.sh
}
SKIP_SUFFIXES = (
    ".stdout.log",  # stdout of commands whose stdout is not an output (progress, summaries)
    ".stderr.log",  # warnings and timings
)

# JSON keys whose values are measured times or rates: they differ on every run. Ignored at any
# depth in every JSON file. Found by listing every key of the bundled runs' JSON outputs; each
# is named exactly, so that a new key that happens to end in "_s" is still compared.
TIMING_KEYS = {
    "timing",  # detect predict/train, fastsim train/validate/images: seconds per stage
    #            (detect_s, read_s, measure_s, simulate_s, train_s, total_s, ...) and
    #            megapixels_per_s; also per image under images[] of a multi-image predict
    "timings_s",  # anomaly: seconds per stage (load, train, score, total)
    "outputs_s",  # anomaly: seconds spent writing the outputs
    "timing_s",  # detect predict --truth: baseline.timing_s, the classical detector's seconds
    "generate_s",  # fastsim generate: seconds spent generating
    "showers_per_s",  # fastsim generate: showers / generate_s
}
# Not ignored: fastsim validate's `speed` table and `speedup_*` are timings too, but the harness
# runs validate with --no-speed, which leaves them empty/null, so they are compared.

# provenance.json keys (at any depth) that say when, where and with which build a run was made.
PROVENANCE_VOLATILE_KEYS = {
    "started",  # start time
    "finished",  # end time
    "host",  # machine name
    "git_commit",  # the build's commit (differs between the two binaries by design)
    "rustc",  # the compiler's version string (build environment, not behaviour)
}

# Inputs made earlier in the same harness run (paths under `out/`, e.g. a simulated field fed
# to the detector, shard folders fed to a merge): their size and SHA-256 in provenance records
# and FITS HISTORY cards are not compared, because such a file's bytes hold its own volatile
# parts (cfitsio's timestamped DATASUM comment, HDF5 object times, report timings). The
# files themselves are compared here directly. Inputs from data/ keep their hashes compared.
RUN_OUTPUT_PREFIX = "out/"

# FITS header keywords that say when a file was written or with which build.
FITS_VOLATILE_CARDS = {
    "DSSTART",  # run start time
    "DSGIT",  # git commit of the build
    "CHECKSUM",  # covers the header, hence DSSTART and cfitsio's timestamped DATASUM comment
}
# DATASUM: its value (the data's checksum) is compared; its comment is cfitsio's write time.

# HDF5 attributes (on any object) that say when a file was written or with which build.
HDF5_VOLATILE_ATTRS = {
    "deepsky_git_commit",  # git commit of the build
}
# The `provenance` root attribute is compared as provenance.json is.

# PDF: the baseline's PDFs are NOT byte-reproducible. svg2pdf (deepsky-plot's PDF backend)
# writes the entries of resource dictionaries (`/ExtGState << /gs185 191 0 R /gs477 483 0 R
# ... >>`) in hash-map order, which changes with every process; object numbers, streams and
# everything else are stable, and no dates are embedded. So before comparing bytes, the
# entries of every dictionary made only of `/Name N 0 R` lines are sorted (PDF dictionaries
# are unordered: the same names still map to the same objects).
PDF_REF_DICT = re.compile(rb"(<<\n)((?:[ \t]*/[^\s/]+ \d+ 0 R\n)+)([ \t]*>>)")


def pdf_normalised(data):
    return PDF_REF_DICT.sub(
        lambda m: m.group(1) + b"".join(sorted(m.group(2).splitlines(keepends=True))) + m.group(3),
        data,
    )


# --- Differences -------------------------------------------------------------------------------


class Report:
    """Collects differences per file, and the volatile values that were ignored."""

    def __init__(self, max_per_file):
        self.max_per_file = max_per_file
        self.diffs = {}  # path -> [message]
        self.ignored = Counter()  # what was ignored and differed -> number of files
        self.kinds = Counter()  # file kind -> files compared

    def diff(self, path, message):
        self.diffs.setdefault(path, []).append(message)

    def ignore(self, what):
        self.ignored[what] += 1


def fmt(v, limit=120):
    s = repr(v)
    return s if len(s) <= limit else s[: limit - 3] + "..."


# --- JSON --------------------------------------------------------------------------------------


def float_bits(x):
    return struct.pack("<d", x)


def compare_json(a, b, where, out, ignore_keys, key_order, ignored=None):
    """Append differences between JSON values a and b to `out` (list of strings).

    `ignored` collects the ignored keys whose values differed (for the summary)."""
    if isinstance(a, dict) and isinstance(b, dict):
        ka, kb = list(a), list(b)
        for k in ka:
            if k not in b:
                if k not in ignore_keys:
                    out.append(f"{where}.{k}: only in old ({fmt(a[k])})")
                continue
        for k in kb:
            if k not in a and k not in ignore_keys:
                out.append(f"{where}.{k}: only in new ({fmt(b[k])})")
        common = [k for k in ka if k in b]
        if key_order and common != [k for k in kb if k in a]:
            out.append(f"{where}: key order differs: old {common} new {[k for k in kb if k in a]}")
        for k in common:
            if k in ignore_keys:
                if ignored is not None and a[k] != b[k]:
                    ignored.add(k)
                continue
            compare_json(a[k], b[k], f"{where}.{k}", out, ignore_keys, key_order, ignored)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{where}: list length {len(a)} -> {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            compare_json(x, y, f"{where}[{i}]", out, ignore_keys, key_order, ignored)
    elif type(a) is not type(b):
        out.append(f"{where}: {type(a).__name__} {fmt(a)} -> {type(b).__name__} {fmt(b)}")
    elif isinstance(a, float):
        if float_bits(a) != float_bits(b):
            out.append(f"{where}: {a!r} -> {b!r} (diff {b - a:.3g})")
    elif a != b:
        out.append(f"{where}: {fmt(a)} -> {fmt(b)}")


def mask_run_inputs(v, masked):
    """Replace size and sha256 of input records under RUN_OUTPUT_PREFIX (see there)."""
    if isinstance(v, dict):
        if isinstance(v.get("path"), str) and v["path"].startswith(RUN_OUTPUT_PREFIX) and (
            "sha256" in v or "size" in v
        ):
            masked.add(True)
            return {k: ("<compared directly>" if k in ("sha256", "size") else x)
                    for k, x in v.items()}
        return {k: mask_run_inputs(x, masked) for k, x in v.items()}
    if isinstance(v, list):
        return [mask_run_inputs(x, masked) for x in v]
    return v


def compare_provenance(a, b, out, key_order, rep):
    """provenance.json or an HDF5 `provenance` attribute: volatile keys and the hashes of
    harness-made inputs are not compared."""
    ma, mb = set(), set()
    a2, b2 = mask_run_inputs(a, ma), mask_run_inputs(b, mb)
    ignored = set()
    compare_json(a2, b2, "$", out, PROVENANCE_VOLATILE_KEYS | TIMING_KEYS, key_order, ignored)
    for k in ignored:
        rep.ignore(f"provenance key {k!r}")
    if ma or mb:
        ia = json.dumps(a.get("inputs") if isinstance(a, dict) else None, sort_keys=True)
        ib = json.dumps(b.get("inputs") if isinstance(b, dict) else None, sort_keys=True)
        if ia != ib:
            rep.ignore("provenance: size/sha256 of inputs made in the same run (out/...)")


def is_provenance(rel):
    return os.path.basename(rel) == "provenance.json"


def compare_json_file(rel, pa, pb, rep, key_order):
    try:
        with open(pa, "rb") as f:
            a = json.load(f)
        with open(pb, "rb") as f:
            b = json.load(f)
    except ValueError as e:
        # Not JSON after all (e.g. a failed inspect run printed nothing): compare bytes.
        compare_bytes(rel, pa, pb, rep)
        return
    out = []
    if is_provenance(rel):
        compare_provenance(a, b, out, key_order, rep)
    else:
        ignored = set()
        compare_json(a, b, "$", out, TIMING_KEYS, key_order, ignored)
        for k in ignored:
            rep.ignore(f"JSON key {k!r}")
    for m in out:
        rep.diff(rel, m)


# --- TOML (--dump-config) ----------------------------------------------------------------------


def compare_toml_file(rel, pa, pb, rep):
    try:
        with open(pa, "rb") as f:
            a = tomllib.load(f)
        with open(pb, "rb") as f:
            b = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        rep.diff(rel, f"not valid TOML ({e}); comparing bytes")
        compare_bytes(rel, pa, pb, rep)
        return
    out = []
    # Values only: TOML tables are unordered, and comments carry no value.
    compare_json(to_jsonish(a), to_jsonish(b), "$", out, set(), False)
    for m in out:
        rep.diff(rel, m)
    if not out:
        with open(pa, "rb") as f, open(pb, "rb") as g:
            if f.read() != g.read():
                rep.ignore("dump-config text (comments or layout) differs, values equal")


def to_jsonish(v):
    """TOML values (datetimes included) as JSON-like values for compare_json."""
    if isinstance(v, dict):
        return {k: to_jsonish(x) for k, x in v.items()}
    if isinstance(v, list):
        return [to_jsonish(x) for x in v]
    if isinstance(v, (str, int, float, bool)):
        return v
    return str(v)


# --- bytes -------------------------------------------------------------------------------------


def compare_bytes(rel, pa, pb, rep, normalise=None, what=None):
    """Bytes equal; with `normalise`, equal after it (then a raw difference is counted as
    ignored under `what`)."""
    with open(pa, "rb") as f:
        a = f.read()
    with open(pb, "rb") as f:
        b = f.read()
    if normalise and a != b:
        a, b = normalise(a), normalise(b)
        if a == b:
            rep.ignore(what)
    if a == b:
        return
    n = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    msg = f"bytes differ (sizes {len(a)} -> {len(b)}; first difference at byte {n})"
    if is_text(a) and is_text(b):
        la, lb = a.decode().splitlines(), b.decode().splitlines()
        for i, (x, y) in enumerate(zip(la, lb)):
            if x != y:
                msg += f"; line {i + 1}:\n      old: {fmt(x, 200)}\n      new: {fmt(y, 200)}"
                break
        else:
            msg += f"; {len(la)} -> {len(lb)} lines"
    rep.diff(rel, msg)


def is_text(data):
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\0" not in data


# --- FITS --------------------------------------------------------------------------------------


def compare_fits_file(rel, pa, pb, rep):
    from astropy.io import fits

    with fits.open(pa, memmap=False, disable_image_compression=True) as ha, fits.open(
        pb, memmap=False, disable_image_compression=True
    ) as hb:
        if len(ha) != len(hb):
            rep.diff(rel, f"{len(ha)} HDUs -> {len(hb)}")
        for i, (x, y) in enumerate(zip(ha, hb)):
            name = f"HDU {i} ({x.name})"
            compare_fits_header(rel, name, x.header, y.header, rep)
            compare_fits_data(rel, name, pa, pb, x, y, rep)


def history_text(header):
    """HISTORY cards joined into one text, with the volatile parts masked.

    Long lines are split over several cards at a fixed width, so a longer commit id or path
    shifts every later card; and astropy drops a card's trailing blanks, so a blank at a split
    is lost. Hence the cards are joined and all whitespace removed before comparing."""
    text = "".join(str(c) for c in header["HISTORY"]) if "HISTORY" in header else ""
    text = re.sub(r"\s+", "", text)
    git = header.get("DSGIT")
    if git:
        text = text.replace(str(git), "<git>")
    # Inputs made earlier in the same harness run: size and hash not compared (RUN_OUTPUT_PREFIX).
    return RUN_INPUT_HISTORY.sub(r"\1<size>bytes,sha256<compared directly>", text)


# "input PATH (ROLE): SIZE bytes, sha256 HEX" (whitespace removed) for a PATH under
# RUN_OUTPUT_PREFIX, in the joined HISTORY text of a pipeline's provenance cards.
RUN_INPUT_HISTORY = re.compile(
    r"(input" + re.escape(RUN_OUTPUT_PREFIX) + r"[^(]*\([^)]*\):)\d+bytes,sha256[0-9a-f]{64}"
)


def compare_fits_header(rel, name, ha, hb, rep):
    def cards(h):
        out = []
        for c in h.cards:
            k = c.keyword
            if k in FITS_VOLATILE_CARDS or k == "HISTORY":
                continue
            if k == "DATASUM":
                out.append((k, f"DATASUM = {c.value!r}"))
                continue
            out.append((k, c.image))
        return out

    ca, cb = cards(ha), cards(hb)
    for k in FITS_VOLATILE_CARDS:
        if k in ha and k in hb and ha[k] != hb[k]:
            rep.ignore(f"FITS card {k}")
        elif (k in ha) != (k in hb):
            rep.diff(rel, f"{name}: card {k} only in {'old' if k in ha else 'new'}")
    if "DATASUM" in ha and "DATASUM" in hb and ha.comments["DATASUM"] != hb.comments["DATASUM"]:
        rep.ignore("FITS DATASUM comment (cfitsio write time)")
    if ca != cb:
        ka, kb = [k for k, _ in ca], [k for k, _ in cb]
        if ka != kb:
            sa, sb = set(ka), set(kb)
            if sa - sb:
                rep.diff(rel, f"{name}: header cards only in old: {sorted(sa - sb)}")
            if sb - sa:
                rep.diff(rel, f"{name}: header cards only in new: {sorted(sb - sa)}")
            if sa == sb:
                rep.diff(rel, f"{name}: header card order differs")
        da = dict(ca)
        for k, img in cb:
            if k in da and da[k] != img and k not in ("COMMENT", ""):
                rep.diff(rel, f"{name}: card {k}:\n      old: {da[k]}\n      new: {img}")
        # Repeated keywords (COMMENT, blank): compare as sequences.
        for k in ("COMMENT", ""):
            sa = [img for kk, img in ca if kk == k]
            sb = [img for kk, img in cb if kk == k]
            if sa != sb:
                rep.diff(rel, f"{name}: {k or 'blank'} cards differ")
    ta, tb = history_text(ha), history_text(hb)
    if ta != tb:
        n = next((i for i, (x, y) in enumerate(zip(ta, tb)) if x != y), min(len(ta), len(tb)))
        rep.diff(
            rel,
            f"{name}: HISTORY differs at character {n}:\n"
            f"      old: ...{ta[max(0, n - 60):n + 60]}\n      new: ...{tb[max(0, n - 60):n + 60]}",
        )
    elif "HISTORY" in ha and [str(c) for c in ha["HISTORY"]] != [str(c) for c in hb["HISTORY"]]:
        rep.ignore("FITS HISTORY: build commit or hashes of inputs made in the same run")


def raw_data(path, hdu):
    info = hdu.fileinfo()
    with open(path, "rb") as f:
        f.seek(info["datLoc"])
        return f.read(info["datSpan"])


def compare_fits_data(rel, name, pa, pb, x, y, rep):
    ra, rb = raw_data(pa, x), raw_data(pb, y)
    if ra == rb:
        return
    # Say where: per column for tables, pixel statistics for images.
    from astropy.io import fits

    if isinstance(x, (fits.BinTableHDU, fits.TableHDU)) and isinstance(
        y, (fits.BinTableHDU, fits.TableHDU)
    ):
        da, db = x.data, y.data
        na = 0 if da is None else len(da)
        nb = 0 if db is None else len(db)
        if na != nb:
            rep.diff(rel, f"{name}: {na} rows -> {nb}")
        cols_a = [] if da is None else list(da.columns.names)
        cols_b = [] if db is None else list(db.columns.names)
        if cols_a != cols_b:
            rep.diff(rel, f"{name}: columns {cols_a} -> {cols_b}")
        shown = 0
        for c in cols_a:
            if c not in cols_b:
                continue
            msg = array_difference(da[c], db[c])
            if msg:
                rep.diff(rel, f"{name}: column {c}: {msg}")
                shown += 1
        if not shown and na == nb and cols_a == cols_b:
            rep.diff(rel, f"{name}: table bytes differ (heap or padding) with equal column values")
    else:
        msg = array_difference(x.data, y.data)
        rep.diff(rel, f"{name}: data differ: {msg or 'raw bytes differ (padding?)'}")


def array_difference(a, b):
    """None when a and b are bitwise equal, else a short description of how they differ."""
    if a is None or b is None:
        return None if a is None and b is None else f"{type(a).__name__} -> {type(b).__name__}"
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype:
        return f"dtype {a.dtype} -> {b.dtype}"
    if a.shape != b.shape:
        return f"shape {a.shape} -> {b.shape}"
    if a.dtype.kind == "O":
        # Variable-length cells (FITS P/Q columns, HDF5 vlen): element by element.
        bad = [i for i, (p, q) in enumerate(zip(a.ravel(), b.ravel())) if not same_value(p, q)]
        return f"{len(bad)} of {a.size} cells differ, first at {bad[0]}" if bad else None
    if a.tobytes() == b.tobytes():
        return None
    if a.dtype.kind in "fc":
        fa, fb = a.ravel(), b.ravel()
        ne = fa.view(np.uint8).reshape(fa.size, -1) != fb.view(np.uint8).reshape(fb.size, -1)
        idx = np.nonzero(ne.any(axis=1))[0]
        both = np.isfinite(fa[idx]) & np.isfinite(fb[idx])
        maxd = np.max(np.abs(fa[idx][both] - fb[idx][both])) if both.any() else float("nan")
        nan_mismatch = int(np.sum(np.isnan(fa) != np.isnan(fb)))
        i = idx[0]
        return (
            f"{idx.size} of {fa.size} values differ (max |diff| {maxd:.3g}, NaN mismatches "
            f"{nan_mismatch}); first at flat index {i}: {fa[i]!r} -> {fb[i]!r}"
        )
    if a.dtype.names:
        bad = [n for n in a.dtype.names if array_difference(a[n], b[n])]
        return f"fields {bad} differ"
    fa, fb = a.ravel(), b.ravel()
    idx = np.nonzero(fa != fb)[0]
    if idx.size == 0:
        return "raw bytes differ with equal values"
    i = idx[0]
    return f"{idx.size} of {fa.size} values differ; first at flat index {i}: {fa[i]!r} -> {fb[i]!r}"


def same_value(p, q):
    if isinstance(p, np.ndarray) or isinstance(q, np.ndarray):
        return array_difference(p, q) is None
    if isinstance(p, float) and isinstance(q, float):
        return float_bits(p) == float_bits(q)
    return type(p) is type(q) and p == q


# --- HDF5 --------------------------------------------------------------------------------------


def compare_hdf5_file(rel, pa, pb, rep, key_order):
    import h5py

    with h5py.File(pa, "r") as fa, h5py.File(pb, "r") as fb:
        oa, ob = hdf5_objects(fa), hdf5_objects(fb)
        for p in sorted(set(oa) - set(ob)):
            rep.diff(rel, f"{p}: only in old ({oa[p]})")
        for p in sorted(set(ob) - set(oa)):
            rep.diff(rel, f"{p}: only in new ({ob[p]})")
        for p in sorted(set(oa) & set(ob)):
            if oa[p] != ob[p]:
                rep.diff(rel, f"{p}: {oa[p]} -> {ob[p]}")
                continue
            x, y = fa[p], fb[p]
            compare_hdf5_attrs(rel, p, x.attrs, y.attrs, rep, key_order)
            if oa[p] == "dataset":
                compare_hdf5_dataset(rel, p, x, y, rep)


def hdf5_objects(f):
    objs = {"/": "group"}

    def visit(name, obj):
        import h5py

        objs["/" + name] = "dataset" if isinstance(obj, h5py.Dataset) else "group"

    f.visititems(visit)
    return objs


def compare_hdf5_dataset(rel, p, x, y, rep):
    for prop in ("dtype", "shape", "chunks", "compression", "compression_opts", "shuffle",
                 "fletcher32", "scaleoffset", "fillvalue"):
        va, vb = getattr(x, prop), getattr(y, prop)
        if isinstance(va, np.ndarray) or isinstance(vb, np.ndarray):
            differs = array_difference(np.asarray(va), np.asarray(vb)) is not None
        else:
            differs = va != vb
        if differs:
            rep.diff(rel, f"{p}: {prop} {va!r} -> {vb!r}")
            return
    msg = array_difference(x[()], y[()])
    if msg:
        rep.diff(rel, f"{p}: {msg}")


def attr_value(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return v


def compare_hdf5_attrs(rel, p, aa, ab, rep, key_order):
    ka, kb = set(aa.keys()), set(ab.keys())
    for k in sorted(ka - kb):
        rep.diff(rel, f"{p}: attribute {k!r} only in old")
    for k in sorted(kb - ka):
        rep.diff(rel, f"{p}: attribute {k!r} only in new")
    for k in sorted(ka & kb):
        va, vb = attr_value(aa[k]), attr_value(ab[k])
        if k in HDF5_VOLATILE_ATTRS:
            if not same_attr(va, vb):
                rep.ignore(f"HDF5 attribute {k!r}")
            continue
        if k == "provenance" and isinstance(va, str) and isinstance(vb, str):
            out = []
            try:
                ja, jb = json.loads(va), json.loads(vb)
            except ValueError:
                ja, jb = va, vb
            compare_provenance(ja, jb, out, key_order, rep)
            for m in out:
                rep.diff(rel, f"{p}: attribute 'provenance': {m}")
            continue
        if not same_attr(va, vb):
            rep.diff(rel, f"{p}: attribute {k!r}: {fmt(va)} -> {fmt(vb)}")


def same_attr(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype.kind in "OSU" or b.dtype.kind in "OSU":
            return a.shape == b.shape and [attr_value(x) for x in a.ravel()] == [
                attr_value(x) for x in b.ravel()
            ]
        return array_difference(a, b) is None
    if isinstance(a, (float, np.floating)) and isinstance(b, (float, np.floating)):
        return type(a) is type(b) and float_bits(float(a)) == float_bits(float(b))
    return type(a) is type(b) and a == b


# --- the walk ----------------------------------------------------------------------------------


def kind_of(rel):
    low = rel.lower()
    if low.endswith(".dump.toml"):
        return "toml"
    if low.endswith(".json"):
        return "json"
    if low.endswith((".fits", ".fit", ".fts", ".fits.gz")):
        return "fits"
    if low.endswith((".h5", ".hdf5")):
        return "hdf5"
    if low.endswith(".pdf"):
        return "pdf"
    return "bytes"


def walk(root):
    files = set()
    for d, dirs, names in os.walk(root):
        dirs[:] = sorted(x for x in dirs if not x.startswith("."))
        for n in names:
            if n in SKIP_NAMES or n.endswith(SKIP_SUFFIXES):
                continue
            p = os.path.join(d, n)
            if os.path.islink(p):
                continue
            files.add(os.path.relpath(p, root))
    return files


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--max-per-file", type=int, default=25,
                    help="differences shown per file (default 25; all are counted)")
    ap.add_argument("--json-key-order", choices=["report", "ignore"], default="report",
                    help="whether a change of key order in JSON objects is a difference")
    args = ap.parse_args()
    for d in (args.old, args.new):
        if not os.path.isdir(d):
            print(f"compare_outputs: {d} is not a folder", file=sys.stderr)
            return 2
    key_order = args.json_key_order == "report"
    rep = Report(args.max_per_file)
    fa, fb = walk(args.old), walk(args.new)
    only_old, only_new = sorted(fa - fb), sorted(fb - fa)
    for rel in sorted(fa & fb):
        pa, pb = os.path.join(args.old, rel), os.path.join(args.new, rel)
        kind = kind_of(rel)
        rep.kinds[kind] += 1
        try:
            if kind == "json":
                compare_json_file(rel, pa, pb, rep, key_order)
            elif kind == "toml":
                compare_toml_file(rel, pa, pb, rep)
            elif kind == "fits":
                compare_fits_file(rel, pa, pb, rep)
            elif kind == "hdf5":
                compare_hdf5_file(rel, pa, pb, rep, key_order)
            elif kind == "pdf":
                compare_bytes(rel, pa, pb, rep, normalise=pdf_normalised,
                              what="PDF resource dictionary entry order (svg2pdf hash order)")
            else:
                compare_bytes(rel, pa, pb, rep)
        except Exception as e:  # an unreadable file is a difference, not a crash
            rep.diff(rel, f"cannot compare as {kind}: {type(e).__name__}: {e}")
            if kind in ("fits", "hdf5"):
                compare_bytes(rel, pa, pb, rep)

    for rel, msgs in sorted(rep.diffs.items()):
        print(f"DIFF {rel}")
        for m in msgs[: args.max_per_file]:
            print(f"    {m}")
        if len(msgs) > args.max_per_file:
            print(f"    ... and {len(msgs) - args.max_per_file} more")
    for rel in only_old:
        print(f"ONLY IN OLD {rel}")
    for rel in only_new:
        print(f"ONLY IN NEW {rel}")

    compared = ", ".join(f"{n} {k}" for k, n in sorted(rep.kinds.items()))
    print(f"\ncompared {sum(rep.kinds.values())} files ({compared})")
    if rep.ignored:
        print("ignored (volatile, differed), in how many files:")
        for what, n in sorted(rep.ignored.items()):
            print(f"    {what}: {n}")
    bad = len(rep.diffs) + len(only_old) + len(only_new)
    if bad:
        print(f"DIFFERENT: {len(rep.diffs)} files differ, {len(only_old)} only in old, "
              f"{len(only_new)} only in new")
        return 1
    print("SAME: every compared output is identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
