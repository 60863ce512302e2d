//! HDF5 files with the structures h5py and PyTables write beyond plain arrays and flat tables
//! (array element types, nested compounds, variable-length sequences, strings in big-endian
//! files, PyTables tables and indexes, unavailable filters, half floats): each is written
//! here by h5py, and deepsky reads it with the values h5py reads, or refuses it with one line
//! naming the file, the dataset and what it cannot read.

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use deepsky_io::h5::{AttrValue, H5Kind, H5Reader};
use deepsky_io::inspect::{inspect, InspectOptions};
use deepsky_io::{ErrorKind, NdData};
use polars::prelude::*;
use serde_json::Value;

/// Writes every file into the directory given, then prints what h5py reads back (JSON).
const WRITE_FILES: &str = r##"
import sys, json, os
import numpy as np, h5py
d = sys.argv[1]
exp = {}

def stats(a):
    a = np.asarray(a, dtype='f8').ravel()
    return {"sum": float(a.sum()) if a.size else 0.0, "min": float(a.min()), "max": float(a.max()), "n": int(a.size),
            "first": [float(x) for x in a[:5]]}

# 1. array-typed fields and datasets
p = os.path.join(d, "arrays.h5")
with h5py.File(p, "w") as f:
    dt = np.dtype([("id", "<i4"), ("pos", "<f8", (3,)), ("cov", ">f8", (10,)), ("img", "<f4", (2, 3))])
    t = np.zeros(7, dt)
    t["id"] = np.arange(7); t["pos"] = np.arange(21).reshape(7, 3) * 0.5
    t["cov"] = np.linspace(-1, 2, 70).reshape(7, 10); t["img"] = np.arange(42).reshape(7, 2, 3) / 7
    f["table"] = t
    def arr_ds(name, data, sub, shape, **kw):
        ds = f.create_dataset(name, shape=shape, dtype=np.dtype(sub), **kw)
        ds.id.write(h5py.h5s.ALL, h5py.h5s.ALL, np.ascontiguousarray(data, dtype=sub[0]), mtype=ds.id.get_type())
    arr_ds("vec3", np.arange(12.0).reshape(4, 3) + 0.25, ("<f8", (3,)), (4,))
    arr_ds("vec10be", np.linspace(0, 1, 50).reshape(5, 10), (">f8", (10,)), (5,))
    arr_ds("mat", np.arange(24).reshape(2, 2, 2, 3) - 5, (">i2", (2, 3)), (2, 2))
    arr_ds("vec3_chunked", np.arange(30.0).reshape(10, 3), ("<f8", (3,)), (10,), chunks=(4,), compression="gzip")
with h5py.File(p, "r") as f:
    e = {}
    for k in ["vec3", "vec10be", "mat", "vec3_chunked"]:
        a = f[k][...]
        e[k] = dict(stats(a), shape=list(a.shape), dshape=list(f[k].shape))
    t = f["table"][...]
    for n in t.dtype.names:
        e["table." + n] = dict(stats(t[n]), shape=list(t[n].shape))
    exp["arrays"] = e

# 2. nested compound
p = os.path.join(d, "nested.h5")
inner = np.dtype([("x", "<f4"), ("y", ">f8")])
deep = np.dtype([("a", "<i2"), ("b", [("c", "<u1"), ("d", "<f8", (2,))])])
dt = np.dtype([("id", "<i8"), ("pos", inner), ("deep", deep), ("name", "S6")])
with h5py.File(p, "w") as f:
    t = np.zeros(5, dt)
    t["id"] = np.arange(5) * 10
    t["pos"]["x"] = np.arange(5) * 1.5; t["pos"]["y"] = -np.arange(5) / 3
    t["deep"]["a"] = np.arange(5) - 2; t["deep"]["b"]["c"] = np.arange(5) + 200
    t["deep"]["b"]["d"] = np.arange(10).reshape(5, 2) * 0.1
    t["name"] = [b"ab", b"cde", b"", b"xyzxyz", b"q"]
    f["nested"] = t
with h5py.File(p, "r") as f:
    t = f["nested"][...]
    e = {"id": stats(t["id"]), "pos.x": stats(t["pos"]["x"]), "pos.y": stats(t["pos"]["y"]),
         "deep.a": stats(t["deep"]["a"]), "deep.b.c": stats(t["deep"]["b"]["c"]), "deep.b.d": stats(t["deep"]["b"]["d"]),
         "name": [x.decode() for x in t["name"]], "rows": len(t)}
    exp["nested"] = e

# 3. vlen arrays
p = os.path.join(d, "vlen.h5")
with h5py.File(p, "w") as f:
    rows = [np.arange(n, dtype="f8") * 0.5 + n for n in [3, 0, 1, 5, 2]]
    ds = f.create_dataset("vl_f8", (5,), dtype=h5py.vlen_dtype(np.dtype("f8")))
    for i, r in enumerate(rows): ds[i] = r
    ds.attrs["CLASS"] = np.bytes_("VLARRAY")
    ds.attrs["VERSION"] = np.bytes_("1.4")
    ds2 = f.create_dataset("vl_i4be", (3,), dtype=h5py.vlen_dtype(np.dtype(">i4")))
    for i, r in enumerate([[1, 2], [-7], [5, 6, 7, 8]]): ds2[i] = np.array(r, "<i4")
    cdt = np.dtype([("n", "<i4"), ("hits", h5py.vlen_dtype(np.dtype("<f4"))), ("label", h5py.string_dtype())])
    c = f.create_dataset("tab", (4,), dtype=cdt)
    for i in range(4):
        c[i] = (i, np.arange(i, dtype="f4") + 0.5, "lbl%d é" % i)
with h5py.File(p, "r") as f:
    e = {}
    for k in ["vl_f8", "vl_i4be"]:
        a = f[k][...]
        # h5py 3.16 returns big-endian variable-length sequences without swapping their bytes
        # (the file holds the right values: HDF5 itself converts them): undo that.
        if f[k].dtype.metadata["vlen"].byteorder == ">":
            a = [x.byteswap() for x in a]
        e[k] = {"lens": [len(x) for x in a], "flat": stats(np.concatenate(a)), "first_row": [float(v) for v in a[0]]}
    c = f["tab"][...]
    e["tab"] = {"n": stats(c["n"]), "lens": [len(x) for x in c["hits"]], "hits": stats(np.concatenate(c["hits"])),
                "label": [x.decode() if isinstance(x, bytes) else x for x in c["label"]]}
    exp["vlen"] = e

# 4. strings in a big-endian file
p = os.path.join(d, "bestr.h5")
with h5py.File(p, "w") as f:
    f["num_be"] = np.arange(6, dtype=">f8").reshape(2, 3) * 1.25
    f["i4_be"] = np.arange(-3, 3, dtype=">i4")
    f.create_dataset("vstr", data=["alpha", "βeta", "", "gamma delta"], dtype=h5py.string_dtype("utf-8"))
    f.create_dataset("vstr_ascii", data=[b"one", b"two"], dtype=h5py.string_dtype("ascii"))
    f["s10"] = np.array([b"abc", b"0123456789", b"x"], dtype="S10")
    u = f.create_dataset("u10", shape=(2,), dtype=h5py.string_dtype("utf-8", 10))
    u.id.write(h5py.h5s.ALL, h5py.h5s.ALL, np.array(["héllo".encode(), "wörld".encode()], dtype="S10"), mtype=u.id.get_type())
    t = np.zeros(3, [("v", ">f8"), ("k", ">i2"), ("s", "S4")])
    t["v"] = [1.5, -2.25, 1e10]; t["k"] = [-1, 300, 7]; t["s"] = [b"a", b"bb", b"cccc"]
    f["tab_be"] = t
    f["tab_be"].attrs["unit"] = "m"
    f["tab_be"].attrs["scale_be"] = np.array([1.5, 2.5], ">f8")
    f.attrs["title"] = "Ωmega"
    f.attrs["ival_be"] = np.array(42, ">i8")
with h5py.File(p, "r") as f:
    e = {}
    e["num_be"] = stats(f["num_be"][...]); e["i4_be"] = stats(f["i4_be"][...])
    e["vstr"] = [s.decode() for s in f["vstr"][...]]
    e["vstr_ascii"] = [s.decode() for s in f["vstr_ascii"][...]]
    e["s10"] = [s.decode() for s in f["s10"][...]]
    e["u10"] = [s.decode() for s in f["u10"][...]]
    t = f["tab_be"][...]
    e["tab_be"] = {"v": stats(t["v"]), "k": stats(t["k"]), "s": [x.decode() for x in t["s"]]}
    e["scale_be"] = [float(x) for x in f["tab_be"].attrs["scale_be"]]
    e["title"] = f.attrs["title"]; e["ival_be"] = int(f.attrs["ival_be"])
    exp["bestr"] = e

# 5. PyTables-like table with an index
p = os.path.join(d, "pytables.h5")
with h5py.File(p, "w") as f:
    f.attrs["CLASS"] = np.bytes_("GROUP"); f.attrs["PYTABLES_FORMAT_VERSION"] = np.bytes_("2.1")
    f.attrs["TITLE"] = h5py.Empty("S1")
    g = f.create_group("detector"); g.attrs["CLASS"] = np.bytes_("GROUP"); g.attrs["TITLE"] = np.bytes_("")
    dt = np.dtype([("energy", "<f8"), ("pos", "<f4", (2,)), ("name", "S8"), ("flag", "?")])
    t = np.zeros(20, dt); t["energy"] = np.linspace(5, 1, 20); t["pos"] = np.arange(40).reshape(20, 2); t["name"] = [b"ev%d" % i for i in range(20)]
    t["flag"] = np.arange(20) % 3 == 0
    ds = g.create_dataset("readout", data=t, chunks=(8,), maxshape=(None,), compression="gzip", shuffle=True)
    for k, v in {"CLASS": "TABLE", "VERSION": "2.7", "TITLE": "Readout example", "FIELD_0_NAME": "energy",
                 "FIELD_1_NAME": "pos", "FIELD_2_NAME": "name", "FIELD_3_NAME": "flag"}.items():
        ds.attrs[k] = np.bytes_(v)
    ds.attrs["FIELD_0_FILL"] = 0.0; ds.attrs["FIELD_1_FILL"] = np.zeros(2, "f4"); ds.attrs["FIELD_2_FILL"] = np.bytes_("")
    ds.attrs["FIELD_3_FILL"] = False; ds.attrs["NROWS"] = np.int64(20); ds.attrs["energy_dflt"] = 0.0
    ds.attrs["AUTO_INDEX"] = True; ds.attrs["FILTERS"] = np.int64(65793)
    ds.attrs["names_arr"] = np.array([b"energy", b"pos"], "S6")
    ig = g.create_group("_i_readout"); ig.attrs["CLASS"] = np.bytes_("TINDEX")
    ie = ig.create_group("energy"); ie.attrs["CLASS"] = np.bytes_("INDEX")
    ie.attrs["FILTERS"] = np.int64(65793)
    srt = np.sort(t["energy"])
    ie.create_dataset("sorted", data=srt[None, :], maxshape=(None, 20), chunks=(1, 20)).attrs["CLASS"] = np.bytes_("INDEXARRAY")
    ie.create_dataset("indices", data=np.argsort(t["energy"]).astype("u4")[None, :], maxshape=(None, 20), chunks=(1, 20))
    ie.create_dataset("ranges", data=np.array([[srt[0], srt[-1]]]), maxshape=(None, 2), chunks=(16, 2))
    ie.create_dataset("bounds", shape=(0, 4), dtype="f8", maxshape=(None, 4), chunks=(16, 4))
    ie.create_dataset("abounds", shape=(0,), dtype="f8", maxshape=(None,), chunks=(16,))
    ie.create_dataset("sortedLR", data=np.zeros(3, "f8"))
    ie.create_dataset("indicesLR", data=np.zeros(3, "u4"))
    ie.create_dataset("empty_scalar", data=h5py.Empty("f8"))
    ie["soft"] = h5py.SoftLink("/detector/readout")
    ie["dangling"] = h5py.SoftLink("/nowhere")
    f.create_dataset("earray", data=np.arange(12, dtype="<i8").reshape(3, 4), maxshape=(None, 4), chunks=(2, 4))
    f["earray"].attrs["EXTDIM"] = np.int32(0)
    cx = np.zeros(3, "c16"); cx.real = [1, 2, 3]; cx.imag = [-1, 0, 1]
    f["complex"] = cx
with h5py.File(p, "r") as f:
    t = f["detector/readout"][...]
    exp["pytables"] = {"energy": stats(t["energy"]), "pos": stats(t["pos"]), "name": [x.decode() for x in t["name"][:5]],
                       "flag": stats(t["flag"]), "sorted": stats(f["detector/_i_readout/energy/sorted"][...]),
                       "indices": stats(f["detector/_i_readout/energy/indices"][...]),
                       "earray": stats(f["earray"][...]),
                       "paths": sorted(f.visit(lambda n: None) or [n for n in []]) }
    names = []
    f.visit(names.append)
    exp["pytables"]["paths"] = sorted("/" + n for n in names)

# 6. filters
p = os.path.join(d, "filters.h5")
with h5py.File(p, "w") as f:
    f.create_dataset("szip", data=np.arange(1000, dtype="<i4"), chunks=(100,), compression="szip")
    f.create_dataset("lzf", data=np.arange(1000, dtype="<f8") / 3, chunks=(100,), compression="lzf")
    for name, fid in [("blosc", 32001), ("lzo", 305)]:
        ds = f.create_dataset(name, shape=(100,), dtype="<f4", chunks=(50,), compression=fid,
                              compression_opts=(2, 2, 4, 200, 5, 1, 1), allow_unknown_filter=True)
        for i in range(2):
            ds.id.write_direct_chunk((i * 50,), b"\x02\x01\x21\x04" + bytes(60), filter_mask=0)
    # an optional unknown filter that was never applied: h5py reads it
    ds = f.create_dataset("blosc_skipped", shape=(10,), dtype="<f8", chunks=(5,), compression=32001,
                          allow_unknown_filter=True)
    ds[...] = np.arange(10.0) * 2
    f.create_dataset("plain_gzip", data=np.arange(10.0), chunks=(5,), compression="gzip", shuffle=True, fletcher32=True)
with h5py.File(p, "r") as f:
    e = {}
    for k in f:
        try:
            e[k] = {"ok": True, **stats(f[k][...])}
        except Exception as ex:
            e[k] = {"ok": False, "err": str(ex)[:200]}
        e[k]["filters"] = list(f[k]._filters.keys())
    exp["filters"] = e

# 7. float16
p = os.path.join(d, "half.h5")
with h5py.File(p, "w") as f:
    a = (np.arange(24).reshape(4, 6) / 7 - 1).astype("f2"); a[0, 0] = np.nan; a[1, 1] = np.float16(65504)
    f["h"] = a
    f["h_be"] = (np.linspace(-3, 3, 9)).astype(">f2")
    t = np.zeros(4, [("e", "<f2"), ("k", "<i4")]); t["e"] = [0.1, 0.2, 0.3, 1e-5]; t["k"] = [1, 2, 3, 4]
    f["tab16"] = t
    f.attrs["h_attr"] = np.float16(1.5)
with h5py.File(p, "r") as f:
    e = {}
    for k in ["h", "h_be"]:
        a = f[k][...].astype("f4").astype("f8")
        e[k] = {"shape": list(a.shape), "nan": int(np.isnan(a).sum()), "sum": float(np.nansum(a)),
                "min": float(np.nanmin(a)), "max": float(np.nanmax(a)), "flat": [None if np.isnan(x) else float(x) for x in a.ravel()]}
    t = f["tab16"][...]
    e["tab16.e"] = [float(np.float32(x)) for x in t["e"]]
    e["h_attr"] = float(f.attrs["h_attr"])
    exp["half"] = e

print(json.dumps(exp))
"##;

struct Fixture {
    dir: tempfile::TempDir,
    exp: Value,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = common::run_python(WRITE_FILES, &[dir.path().to_str().unwrap()]);
        let exp = serde_json::from_str(&out).unwrap();
        Fixture { dir, exp }
    })
}

fn file(name: &str) -> PathBuf {
    fixture().dir.path().join(name)
}

fn exp(path: &str) -> &'static Value {
    let mut v = &fixture().exp;
    for k in path.split('/') {
        v = &v[k];
    }
    assert!(!v.is_null(), "h5py reported nothing for {path}");
    v
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

/// sum/min/max/count and the first values of `got` (flattened) equal h5py's.
fn assert_values(ctx: &str, got: &[f64], want: &Value) {
    assert_eq!(
        got.len() as u64,
        want["n"].as_u64().unwrap(),
        "{ctx}: count"
    );
    let sum: f64 = got.iter().sum();
    assert!(
        close(sum, want["sum"].as_f64().unwrap()),
        "{ctx}: sum {sum} vs {}",
        want["sum"]
    );
    let min = got.iter().copied().fold(f64::INFINITY, f64::min);
    let max = got.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(min, want["min"].as_f64().unwrap(), "{ctx}: min");
    assert_eq!(max, want["max"].as_f64().unwrap(), "{ctx}: max");
    let first = floats(&want["first"]);
    assert_eq!(&got[..first.len()], &first[..], "{ctx}: first values");
}

fn nd_values(d: &NdData) -> Vec<f64> {
    d.to_f64().unwrap().iter().copied().collect()
}

/// All values of a numeric column (arrays and lists flattened), in order.
fn col_values(df: &DataFrame, name: &str) -> Vec<f64> {
    let mut s = df
        .column(name)
        .unwrap_or_else(|_| panic!("no column {name} in {:?}", df.get_column_names()))
        .as_materialized_series()
        .clone();
    loop {
        s = match s.dtype() {
            DataType::List(_) => s
                .explode(ExplodeOptions {
                    empty_as_null: false,
                    keep_nulls: false,
                })
                .unwrap(),
            DataType::Array(_, _) => s.array().unwrap().get_inner(),
            _ => break,
        };
    }
    s.cast(&DataType::Float64)
        .unwrap()
        .f64()
        .unwrap()
        .iter()
        .map(|v| v.unwrap())
        .collect()
}

fn col_strings(df: &DataFrame, name: &str) -> Vec<String> {
    df.column(name)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|v| v.unwrap().to_string())
        .collect()
}

fn inspect_stats(name: &str) -> Value {
    let opts = InspectOptions {
        stats: true,
        ..Default::default()
    };
    inspect(&file(name), &opts).unwrap_or_else(|e| panic!("{e}"))
}

fn report_item<'a>(r: &'a Value, path: &str) -> &'a Value {
    r["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == path)
        .unwrap_or_else(|| panic!("{path} not in the report"))
}

#[test]
fn array_typed_datasets_read_with_h5py_shapes_and_values() {
    let f = H5Reader::open(file("arrays.h5")).unwrap();
    let items = f.items().unwrap();
    for k in ["vec3", "vec10be", "mat", "vec3_chunked"] {
        let e = exp(&format!("arrays/{k}"));
        let item = items.iter().find(|i| i.path == format!("/{k}")).unwrap();
        let dshape: Vec<usize> = floats(&e["dshape"]).iter().map(|&x| x as usize).collect();
        let shape: Vec<usize> = floats(&e["shape"]).iter().map(|&x| x as usize).collect();
        assert_eq!(item.shape, dshape, "{k}: dataset shape");
        assert_eq!(item.cell_shape, shape[dshape.len()..], "{k}: element shape");
        let d = f.read(k).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.shape(), shape, "{k}: shape as h5py reads it");
        assert_values(k, &nd_values(&d), e);
    }
    assert!(matches!(f.read("mat").unwrap(), NdData::I16(_)));
    // Slices of such datasets are refused by name, not misread.
    let err = f.read_slice("vec3", &[0], &[2]).unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Unsupported, "{err}");
    assert!(err.to_string().contains("`vec3`"), "{err}");

    let df = f.read_table("/table").unwrap();
    for col in ["id", "pos", "cov", "img"] {
        assert_values(
            col,
            &col_values(&df, col),
            exp(&format!("arrays/table.{col}")),
        );
    }
    assert_eq!(
        df.column("img").unwrap().dtype(),
        &DataType::Array(Box::new(DataType::Array(Box::new(DataType::Float32), 3)), 2)
    );

    let r = inspect_stats("arrays.h5");
    let it = report_item(&r, "/vec10be");
    assert_eq!(it["kind"], "image");
    assert_eq!(it["dtype"], "f64");
    assert_eq!(it["shape"], exp("arrays/vec10be/shape").clone());
    assert!(close(
        it["stats"]["sum"].as_f64().unwrap(),
        exp("arrays/vec10be/sum").as_f64().unwrap()
    ));
    let t = report_item(&r, "/table");
    let cov = t["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "cov")
        .unwrap();
    assert_eq!(cov["dtype"], "list[f64]");
    assert!(close(
        cov["stats"]["sum"].as_f64().unwrap(),
        exp("arrays/table.cov/sum").as_f64().unwrap()
    ));
}

#[test]
fn nested_compounds_flatten_to_dotted_columns() {
    let f = H5Reader::open(file("nested.h5")).unwrap();
    let item = f.item("/nested").unwrap();
    let names: Vec<&str> = item.fields.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["id", "pos.x", "pos.y", "deep.a", "deep.b.c", "deep.b.d", "name"]
    );
    let df = f.read_table("/nested").unwrap();
    assert_eq!(df.height() as u64, exp("nested/rows").as_u64().unwrap());
    for col in ["id", "pos.x", "pos.y", "deep.a", "deep.b.c", "deep.b.d"] {
        assert_values(col, &col_values(&df, col), exp(&format!("nested/{col}")));
    }
    assert_eq!(col_strings(&df, "name"), strings(exp("nested/name")));
    let r = inspect_stats("nested.h5");
    let cols = report_item(&r, "/nested")["columns"]
        .as_array()
        .unwrap()
        .clone();
    let c = cols.iter().find(|c| c["name"] == "deep.b.c").unwrap();
    assert_eq!(c["dtype"], "u8");
    assert!(close(
        c["stats"]["sum"].as_f64().unwrap(),
        exp("nested/deep.b.c/sum").as_f64().unwrap()
    ));
}

#[test]
fn variable_length_sequences_read_as_lists() {
    let f = H5Reader::open(file("vlen.h5")).unwrap();
    for k in ["vl_f8", "vl_i4be"] {
        let e = exp(&format!("vlen/{k}"));
        let item = f.item(k).unwrap();
        assert!(
            item.dtype.as_deref().unwrap().starts_with("list["),
            "{k}: {:?}",
            item.dtype
        );
        let df = f.read_table(k).unwrap_or_else(|e| panic!("{e}"));
        let s = df.column(k).unwrap().list().unwrap().clone();
        let lens: Vec<f64> = s.lst_lengths().iter().map(|v| v.unwrap() as f64).collect();
        assert_eq!(lens, floats(&e["lens"]), "{k}: lengths");
        assert_values(k, &col_values(&df, k), &e["flat"]);
        let first = s
            .get_as_series(0)
            .unwrap()
            .cast(&DataType::Float64)
            .unwrap();
        let first: Vec<f64> = first.f64().unwrap().iter().map(|v| v.unwrap()).collect();
        assert_eq!(first, floats(&e["first_row"]), "{k}: first row");
        // Not an array: read() says how to read it.
        let err = f.read(k).unwrap_err();
        assert!(err.to_string().contains("read it as a table"), "{err}");
    }
    let vl = f.item("vl_f8").unwrap();
    assert!(vl
        .attrs
        .contains(&("CLASS".into(), AttrValue::Str("VLARRAY".into()))));

    let df = f.read_table("/tab").unwrap();
    assert_values("tab.n", &col_values(&df, "n"), exp("vlen/tab/n"));
    assert_values("tab.hits", &col_values(&df, "hits"), exp("vlen/tab/hits"));
    assert_eq!(col_strings(&df, "label"), strings(exp("vlen/tab/label")));
    let lens: Vec<f64> = df
        .column("hits")
        .unwrap()
        .list()
        .unwrap()
        .lst_lengths()
        .iter()
        .map(|v| v.unwrap() as f64)
        .collect();
    assert_eq!(lens, floats(&exp("vlen/tab/lens")));

    let r = inspect_stats("vlen.h5");
    let it = report_item(&r, "/vl_f8");
    assert_eq!(it["dtype"], "list[f64]");
    assert!(close(
        it["stats"]["sum"].as_f64().unwrap(),
        exp("vlen/vl_f8/flat/sum").as_f64().unwrap()
    ));
    let hits = report_item(&r, "/tab")["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "hits")
        .unwrap()
        .clone();
    assert_eq!(hits["dtype"], "list[f32]");
    assert!(close(
        hits["stats"]["sum"].as_f64().unwrap(),
        exp("vlen/tab/hits/sum").as_f64().unwrap()
    ));
}

#[test]
fn strings_and_numbers_in_big_endian_files() {
    let f = H5Reader::open(file("bestr.h5")).unwrap();
    assert_values(
        "num_be",
        &nd_values(&f.read("num_be").unwrap()),
        exp("bestr/num_be"),
    );
    assert_values(
        "i4_be",
        &nd_values(&f.read("i4_be").unwrap()),
        exp("bestr/i4_be"),
    );
    for k in ["vstr", "vstr_ascii", "s10", "u10"] {
        let NdData::Str(a) = f.read(k).unwrap_or_else(|e| panic!("{e}")) else {
            panic!("{k}: not strings")
        };
        assert_eq!(
            a.iter().cloned().collect::<Vec<_>>(),
            strings(exp(&format!("bestr/{k}"))),
            "{k}"
        );
    }
    let df = f.read_table("tab_be").unwrap();
    assert_values("tab_be.v", &col_values(&df, "v"), exp("bestr/tab_be/v"));
    assert_values("tab_be.k", &col_values(&df, "k"), exp("bestr/tab_be/k"));
    assert_eq!(col_strings(&df, "s"), strings(exp("bestr/tab_be/s")));
    let item = f.item("tab_be").unwrap();
    assert!(item.attrs.contains(&(
        "scale_be".into(),
        AttrValue::Array(floats(exp("bestr/scale_be")))
    )));
    assert!(item
        .attrs
        .contains(&("unit".into(), AttrValue::Str("m".into()))));
    let root = f.root_attrs().unwrap();
    assert!(root.contains(&(
        "title".into(),
        AttrValue::Str(exp("bestr/title").as_str().unwrap().into())
    )));
    assert!(root.contains(&(
        "ival_be".into(),
        AttrValue::Int(exp("bestr/ival_be").as_i64().unwrap())
    )));
    inspect_stats("bestr.h5");
}

#[test]
fn pytables_tables_and_indexes_read() {
    let f = H5Reader::open(file("pytables.h5")).unwrap();
    let items = f.items().unwrap();
    let paths: Vec<String> = items.iter().map(|i| i.path.clone()).collect();
    // Everything h5py's visit lists, plus the soft link that resolves (h5py's visit skips
    // soft links; deepsky lists the ones that lead to an object, not the dangling one).
    let mut want = strings(exp("pytables/paths"));
    want.push("/detector/_i_readout/energy/soft".into());
    want.sort();
    assert_eq!(paths, want);
    let df = f.read_table("/detector/readout").unwrap();
    assert_values("energy", &col_values(&df, "energy"), exp("pytables/energy"));
    assert_values("pos", &col_values(&df, "pos"), exp("pytables/pos"));
    assert_values("flag", &col_values(&df, "flag"), exp("pytables/flag"));
    assert_eq!(
        col_strings(&df, "name")[..5],
        strings(exp("pytables/name"))[..]
    );
    let t = items
        .iter()
        .find(|i| i.path == "/detector/readout")
        .unwrap();
    assert!(t
        .attrs
        .contains(&("CLASS".into(), AttrValue::Str("TABLE".into()))));
    assert!(t
        .attrs
        .contains(&("FIELD_0_NAME".into(), AttrValue::Str("energy".into()))));
    assert!(t.attrs.contains(&("NROWS".into(), AttrValue::Int(20))));
    assert_eq!(t.filters, ["shuffle", "gzip"]);
    for (k, key) in [
        ("/detector/_i_readout/energy/sorted", "sorted"),
        ("/detector/_i_readout/energy/indices", "indices"),
        ("/earray", "earray"),
    ] {
        assert_values(
            k,
            &nd_values(&f.read(k).unwrap()),
            exp(&format!("pytables/{key}")),
        );
    }
    assert_eq!(
        f.read("/detector/_i_readout/energy/bounds")
            .unwrap()
            .shape(),
        [0, 4]
    );
    let err = f
        .read("/detector/_i_readout/energy/empty_scalar")
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("holds no values"), "{err}");
    for it in &items {
        if it.kind == H5Kind::Dataset && !it.fields.is_empty() {
            f.read_table(&it.path).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let r = inspect_stats("pytables.h5");
    let e = report_item(&r, "/detector/readout")["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "energy")
        .unwrap()
        .clone();
    assert!(close(
        e["stats"]["sum"].as_f64().unwrap(),
        exp("pytables/energy/sum").as_f64().unwrap()
    ));
}

#[test]
fn filters_read_when_available_else_refused_by_name() {
    let path = file("filters.h5");
    let f = H5Reader::open(&path).unwrap();
    let items = f.items().unwrap();
    let names = [
        ("blosc", "Blosc", 32001),
        ("lzo", "LZO", 305),
        ("lzf", "LZF", 32000),
        ("szip", "szip", 4),
        ("blosc_skipped", "Blosc", 32001),
        ("plain_gzip", "gzip", 1),
    ];
    for (k, fname, id) in names {
        let e = exp(&format!("filters/{k}"));
        let item = items
            .iter()
            .find(|i| i.path == format!("/{k}"))
            .unwrap_or_else(|| panic!("{k} not listed"));
        assert!(
            item.filters.iter().any(|x| x == fname),
            "{k}: filters {:?}",
            item.filters
        );
        match f.read(k) {
            Ok(d) => {
                assert!(
                    e["ok"].as_bool().unwrap(),
                    "{k}: deepsky read what h5py cannot"
                );
                assert_values(k, &nd_values(&d), e);
            }
            Err(err) => {
                let msg = err.to_string();
                assert_eq!(err.kind(), &ErrorKind::Unsupported, "{k}: {msg}");
                assert!(!msg.contains('\n'), "{msg}");
                assert!(msg.starts_with(&path.display().to_string()), "{msg}");
                assert!(
                    msg.contains(&format!("`/{k}` is compressed with {fname} (HDF5 filter {id}), which this build of deepsky cannot decompress")),
                    "{msg}"
                );
            }
        }
    }
    // Filters h5py can only list, deepsky can only list too; an optional filter that was
    // never applied, and gzip/shuffle/fletcher32, read.
    assert!(f.read("blosc").is_err() && f.read("lzo").is_err());
    assert_values(
        "blosc_skipped",
        &nd_values(&f.read("blosc_skipped").unwrap()),
        exp("filters/blosc_skipped"),
    );
    assert_values(
        "plain_gzip",
        &nd_values(&f.read("plain_gzip").unwrap()),
        exp("filters/plain_gzip"),
    );
    // The listing works; --stats stops at the first dataset it cannot decompress.
    let listing = inspect(&path, &InspectOptions::default()).unwrap();
    assert_eq!(listing["items"].as_array().unwrap().len(), items.len());
    let err = inspect(
        &path,
        &InspectOptions {
            stats: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("`/blosc` is compressed with Blosc (HDF5 filter 32001)"),
        "{err}"
    );
}

#[test]
fn half_floats_read_as_f32() {
    let f = H5Reader::open(file("half.h5")).unwrap();
    for k in ["h", "h_be"] {
        let e = exp(&format!("half/{k}"));
        assert_eq!(f.item(k).unwrap().dtype.as_deref(), Some("f32"));
        let NdData::F32(a) = f.read(k).unwrap_or_else(|e| panic!("{e}")) else {
            panic!("{k}: not f32")
        };
        let shape: Vec<usize> = floats(&e["shape"]).iter().map(|&x| x as usize).collect();
        assert_eq!(a.shape(), &shape[..]);
        let want: Vec<Option<f64>> = e["flat"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64())
            .collect();
        let got: Vec<Option<f64>> = a
            .iter()
            .map(|&v| (!v.is_nan()).then_some(v as f64))
            .collect();
        assert_eq!(got, want, "{k}");
        let st = NdData::F32(a).stats().unwrap();
        assert_eq!(st.nan_count, e["nan"].as_u64().unwrap());
        assert!(close(st.sum, e["sum"].as_f64().unwrap()), "{k}: sum");
        assert_eq!(
            (st.min, st.max),
            (e["min"].as_f64().unwrap(), e["max"].as_f64().unwrap())
        );
    }
    let df = f.read_table("tab16").unwrap();
    assert_eq!(df.column("e").unwrap().dtype(), &DataType::Float32);
    assert_eq!(col_values(&df, "e"), floats(exp("half/tab16.e")));
    let root = f.root_attrs().unwrap();
    assert!(root.contains(&(
        "h_attr".into(),
        AttrValue::Float(exp("half/h_attr").as_f64().unwrap())
    )));
    let r = inspect_stats("half.h5");
    assert_eq!(
        report_item(&r, "/h")["stats"]["nan_count"],
        exp("half/h/nan").clone()
    );
}
