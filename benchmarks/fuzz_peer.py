"""The peer reader for the damaged-input benchmark (benchmarks/fuzz.sh): read one file the way a
user of astropy or h5py would — open it, touch every HDU's data or every dataset — and print
what was read in the shape `deepsky inspect --json` prints, so that `deepsky-fuzz` judges both
readers by the same criteria.

Exit 0 with {"items": [...]} on stdout; exit 2 with one `peer: error: FILE: ...` line on an
exception. Warnings are printed as `peer: warning: FILE: ...` lines (astropy warns and goes on
where a file is only slightly off).
"""
import json
import sys
import warnings

path = sys.argv[1]


def fits_items(path):
    from astropy import log
    from astropy.io import fits
    # astropy turns warnings into log records by default; keep them as warnings to report.
    log.disable_warnings_logging()
    items = []
    with fits.open(path, memmap=False) as hdul:
        for hdu in hdul:
            data = hdu.data
            if data is None:
                items.append({"kind": "empty"})
            elif hasattr(data, "columns"):
                cols = [data[name] for name in data.columns.names]
                items.append({"kind": "table", "rows": len(data), "columns": [{} for _ in cols]})
            else:
                float(data.sum())
                items.append({"kind": "image", "shape": list(data.shape)})
    return items


def hdf5_items(path):
    import h5py
    items = []
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                data = obj[()]
                items.append({"kind": "dataset", "shape": list(obj.shape)})
                _ = len(getattr(data, "tobytes", lambda: b"")())
            else:
                items.append({"kind": "group"})
            for k in obj.attrs:
                _ = obj.attrs[k]
        f.visititems(visit)
        for k in f.attrs:
            _ = f.attrs[k]
    return items


def report_warnings(caught):
    seen = set()
    for w in caught:
        first = " ".join(str(w.message).split())[:200]
        if first not in seen:
            seen.add(first)
            print(f"peer: warning: {path}: {first}", file=sys.stderr)


with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
        items = hdf5_items(path) if head == b"\x89HDF\r\n\x1a\n" else fits_items(path)
    except Exception as e:  # noqa: BLE001 - every failure is a refusal to report
        report_warnings(caught)
        msg = " ".join(str(e).split())[:300]
        print(f"peer: error: {path}: {type(e).__name__}: {msg}", file=sys.stderr)
        sys.exit(2)
report_warnings(caught)
json.dump({"items": items}, sys.stdout)
