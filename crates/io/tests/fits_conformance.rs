//! FITS files that astropy reads and deepsky once refused or misread (issue 20, "read every
//! file astropy reads"): each test writes the file with astropy (editing bytes where astropy
//! will not write the non-standard form), lets astropy read it back, and checks that deepsky
//! reads the same values.

mod common;

use std::path::Path;

use deepsky_io::fits::{CardValue, FitsReader, HduSelector};
use deepsky_io::inspect::{inspect, InspectOptions};
use polars::prelude::*;
use serde_json::Value;

/// Run `code` with the output folder as `sys.argv[1]`; it prints one JSON document.
fn astropy(code: &str, dir: &Path) -> Value {
    let out = common::run_python(code, &[dir.to_str().unwrap()]);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn stats_opts() -> InspectOptions {
    InspectOptions {
        stats: true,
        header: true,
        ..Default::default()
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1.0)
}

#[test]
fn a_binary_table_with_a_gap_before_its_heap_reads_like_astropy() {
    let dir = tempfile::tempdir().unwrap();
    let want = astropy(
        r#"
import sys, json, numpy as np
from astropy.io import fits
out = {}
for gap in (100, 3000, 20000):
    v = fits.Column(name='v', format='PJ()', array=np.array([np.arange(3), np.arange(5) * 7, np.arange(0)], dtype=object))
    x = fits.Column(name='x', format='E', array=np.array([1.5, 2.5, -3.0]))
    h = fits.BinTableHDU.from_columns([v, x])
    h.header['THEAP'] = h.header['NAXIS1'] * h.header['NAXIS2'] + gap
    path = f'{sys.argv[1]}/gap{gap}.fits'
    h.writeto(path)
    with fits.open(path) as f:
        hdr, d = f[1].header, f[1].data
        assert hdr['PCOUNT'] >= gap and hdr['THEAP'] > hdr['NAXIS1'] * hdr['NAXIS2']
        out[path] = {'v': [[int(e) for e in row] for row in d['v']], 'x': [float(e) for e in d['x']], 'hdus': len(f)}
print(json.dumps(out))
"#,
        dir.path(),
    );
    for (path, exp) in want.as_object().unwrap() {
        let mut f = FitsReader::open(path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            f.hdus().unwrap_or_else(|e| panic!("{e}")).len() as u64,
            exp["hdus"].as_u64().unwrap()
        );
        let t = f
            .read_table(&HduSelector::Index(1), None)
            .unwrap_or_else(|e| panic!("{e}"));
        let v = t.data.column("v").unwrap().list().unwrap().clone();
        let got: Vec<Vec<i64>> = v
            .amortized_iter()
            .map(|row| {
                let row = row.unwrap().as_ref().cast(&DataType::Int64).unwrap();
                row.i64().unwrap().into_no_null_iter().collect()
            })
            .collect();
        let want_v: Vec<Vec<i64>> = serde_json::from_value(exp["v"].clone()).unwrap();
        assert_eq!(got, want_v, "{path}: variable-length column");
        let x: Vec<f64> = t
            .data
            .column("x")
            .unwrap()
            .cast(&DataType::Float64)
            .unwrap()
            .f64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        let want_x: Vec<f64> = serde_json::from_value(exp["x"].clone()).unwrap();
        assert_eq!(x, want_x, "{path}: fixed column");
        // The CLI's report reads it too (and the heap descriptors stay checked against the
        // heap after the gap, not against PCOUNT with the gap).
        let report = inspect(Path::new(path), &stats_opts()).unwrap_or_else(|e| panic!("{e}"));
        let sum = report["items"][1]["columns"][0]["stats"]["sum"]
            .as_f64()
            .unwrap();
        assert_eq!(sum, want_v.iter().flatten().sum::<i64>() as f64);
    }
}

#[test]
fn an_integer_image_whose_every_pixel_is_blank_is_all_nan_as_in_astropy() {
    let dir = tempfile::tempdir().unwrap();
    let want = astropy(
        r#"
import sys, json, warnings, numpy as np
from astropy.io import fits
out = {}
cases = [('all16', 16, np.full((3, 4), -32768, np.int16), -32768),
         ('all16_one', 16, np.full((3, 4), 1, np.int16), 1),
         ('some16', 16, np.array([[5, 7, 99], [99, -3, 2]], np.int16), 99),
         ('all8', 8, np.full((2, 5), 255, np.uint8), 255),
         ('some32', 32, np.array([[1, 2**31 - 1], [-7, 40]], np.int32), 2**31 - 1),
         ('all32', 32, np.full((4,), 0, np.int32), 0),
         ('some64', 64, np.array([3, -9, 2**40], np.int64), -9)]
for name, bitpix, data, blank in cases:
    p = fits.PrimaryHDU(data)
    p.header['BLANK'] = blank
    path = f'{sys.argv[1]}/{name}.fits'
    p.writeto(path)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        d = fits.getdata(path)
    if blank == 0:
        # astropy tests `if self._blank:` before setting NaN, so BLANK = 0 marks nothing;
        # the standard (and cfitsio) make those pixels undefined. deepsky follows the
        # standard: the expected values are astropy's with the standard's NaN.
        assert not np.isnan(d).any()
        d = d.copy()
        d[data == blank] = np.nan
    fin = d[~np.isnan(d)]
    out[path] = {
        'dtype': str(d.dtype),
        'nan_count': int(np.isnan(d).sum()),
        'sum': float(np.nansum(d, dtype=np.float64)),
        'min': float(fin.min()) if fin.size else None,
        'max': float(fin.max()) if fin.size else None,
        'mean': float(fin.astype(np.float64).mean()) if fin.size else None,
        'values': [None if np.isnan(v) else float(v) for v in d.ravel()],
    }
print(json.dumps(out))
"#,
        dir.path(),
    );
    for (path, exp) in want.as_object().unwrap() {
        let mut f = FitsReader::open(path).unwrap();
        let info = f.hdu_info(&HduSelector::Index(0)).unwrap();
        let want_dtype = match exp["dtype"].as_str().unwrap() {
            "float32" => "f32",
            "float64" => "f64",
            other => panic!("astropy gave {other}"),
        };
        assert_eq!(info.dtype.as_deref(), Some(want_dtype), "{path}");
        let data = f.read_image(&HduSelector::Index(0)).unwrap();
        assert_eq!(data.dtype_name(), want_dtype, "{path}");
        let values: Vec<Option<f64>> = data
            .to_f64()
            .unwrap()
            .iter()
            .map(|&v| (!v.is_nan()).then_some(v))
            .collect();
        let want_values: Vec<Option<f64>> = serde_json::from_value(exp["values"].clone()).unwrap();
        assert_eq!(values, want_values, "{path}");
        // What `deepsky inspect --json --stats` prints: numpy's nansum (0 for all-NaN), and
        // null min/max/mean when no pixel is defined.
        let report = inspect(Path::new(path), &stats_opts()).unwrap();
        let stats = &report["items"][0]["stats"];
        assert_eq!(stats["nan_count"], exp["nan_count"], "{path}");
        assert!(
            close(stats["sum"].as_f64().unwrap(), exp["sum"].as_f64().unwrap()),
            "{path}: sum {} vs {}",
            stats["sum"],
            exp["sum"]
        );
        assert_eq!(stats["min"], exp["min"], "{path}");
        assert_eq!(stats["max"], exp["max"], "{path}");
        match exp["mean"].as_f64() {
            Some(m) => assert!(close(stats["mean"].as_f64().unwrap(), m), "{path}"),
            None => assert!(stats["mean"].is_null(), "{path}"),
        }
    }
}

#[test]
fn wide_ascii_integer_columns_read_exactly_as_i64_or_as_f64_beyond_it() {
    let dir = tempfile::tempdir().unwrap();
    let want = astropy(
        r#"
import sys, json, numpy as np
from astropy.io import fits
d = sys.argv[1]
big = np.array([9200000000000000000, -9200000000000000000, 9223372036854775807,
                -9223372036854775807, 1234567890123456789, 0, 1], dtype=np.int64)
t = fits.TableHDU.from_columns([
    fits.Column(name='big', format='I20', array=big),
    fits.Column(name='mid', format='I18', array=big // 100),
    fits.Column(name='f', format='F8.2', array=np.arange(7.0))])
t.writeto(f'{d}/fits.fits')
r = fits.getdata(f'{d}/fits.fits', 1)
out = {'fits': {'big': [int(v) for v in r['big']], 'big_dtype': str(r['big'].dtype),
                'mid': [int(v) for v in r['mid']], 'f': [float(v) for v in r['f']]}}
# A value beyond int64 (astropy itself cannot convert it: OverflowError).
raw = bytearray(open(f'{d}/fits.fits', 'rb').read())
i = raw.find(b' 9200000000000000000')
raw[i:i + 20] = b'12345678901234567890'
open(f'{d}/beyond.fits', 'wb').write(raw)
try:
    fits.getdata(f'{d}/beyond.fits', 1)['big']
    out['astropy_beyond'] = 'read'
except OverflowError:
    out['astropy_beyond'] = 'overflow'
# What the text says, as Python's exact float of each field.
rows = [raw[k:k + 20] for k in range(2880 * 2, 2880 * 2 + 7 * 46, 46)]
out['beyond'] = [float(int(x)) for x in rows]
print(json.dumps(out))
"#,
        dir.path(),
    );
    let exp = &want["fits"];
    assert_eq!(exp["big_dtype"], "int64");
    let mut f = FitsReader::open(dir.path().join("fits.fits")).unwrap();
    let t = f.read_table(&HduSelector::Index(1), None).unwrap();
    let col = |name: &str| {
        t.data
            .column(name)
            .unwrap()
            .as_materialized_series()
            .clone()
    };
    assert_eq!(col("big").dtype(), &DataType::Int64);
    let big: Vec<i64> = col("big").i64().unwrap().into_no_null_iter().collect();
    let want_big: Vec<i64> = serde_json::from_value(exp["big"].clone()).unwrap();
    assert_eq!(big, want_big, "exact to the last digit, as astropy");
    let mid: Vec<i64> = col("mid").i64().unwrap().into_no_null_iter().collect();
    let want_mid: Vec<i64> = serde_json::from_value(exp["mid"].clone()).unwrap();
    assert_eq!(mid, want_mid);
    let fl: Vec<f64> = col("f").f64().unwrap().into_no_null_iter().collect();
    let want_f: Vec<f64> = serde_json::from_value(exp["f"].clone()).unwrap();
    assert_eq!(fl, want_f);

    // 12345678901234567890 does not fit i64: the column is f64 with the nearest values
    // (astropy gives up with an OverflowError on this column).
    assert_eq!(want["astropy_beyond"], "overflow");
    let mut f = FitsReader::open(dir.path().join("beyond.fits")).unwrap();
    let info = f.hdu_info(&HduSelector::Index(1)).unwrap();
    assert_eq!(info.columns[0].dtype, "f64");
    let t = f.read_table(&HduSelector::Index(1), None).unwrap();
    let s = t
        .data
        .column("big")
        .unwrap()
        .as_materialized_series()
        .clone();
    let got: Vec<f64> = s.f64().unwrap().into_no_null_iter().collect();
    let want_beyond: Vec<f64> = serde_json::from_value(want["beyond"].clone()).unwrap();
    assert_eq!(got, want_beyond);
    // Chunked reading (what `inspect --stats` does) agrees with the whole read.
    let chunks: Vec<_> = f
        .table_chunks(&HduSelector::Index(1), Some(&["big"]), 2)
        .unwrap()
        .map(|c| c.unwrap().data.height())
        .collect();
    assert_eq!(chunks, vec![2, 2, 2, 1]);
    let report = inspect(&dir.path().join("beyond.fits"), &stats_opts()).unwrap();
    let stats = &report["items"][1]["columns"][0]["stats"];
    assert_eq!(stats["max"].as_f64().unwrap(), 12345678901234567890.0);
}

#[test]
fn zero_width_columns_are_empty_cells_of_the_tables_height() {
    let dir = tempfile::tempdir().unwrap();
    let want = astropy(
        r#"
import sys, json, numpy as np
from astropy.io import fits
d = sys.argv[1]
t = fits.BinTableHDU.from_columns([fits.Column(name='b', format='J', array=np.arange(3) * 5),
                                   fits.Column(name='c', format='0E'),
                                   fits.Column(name='k', format='0J')], nrows=3)
t.writeto(f'{d}/zero.fits')
# astropy does not write a 0A column from Python; the same file with TFORM2 = '0A'.
raw = bytearray(open(f'{d}/zero.fits', 'rb').read())
i = raw.find(b"TFORM2  = '0E")
raw[i:i + 14] = b"TFORM2  = '0A "
open(f'{d}/zero_a.fits', 'wb').write(raw)
out = {}
for name in ('zero', 'zero_a'):
    r = fits.getdata(f'{d}/{name}.fits', 1)
    out[name] = {'b': [int(v) for v in r['b']],
                 'c': [v if isinstance(v, str) else [float(e) for e in v] for v in r['c']],
                 'k': [[int(e) for e in v] for v in r['k']]}
print(json.dumps(out))
"#,
        dir.path(),
    );
    for name in ["zero", "zero_a"] {
        let exp = &want[name];
        let path = dir.path().join(format!("{name}.fits"));
        let mut f = FitsReader::open(&path).unwrap();
        let t = f
            .read_table(&HduSelector::Index(1), None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.data.height(), 3);
        assert_eq!(t.data.get_column_names(), ["b", "c", "k"]);
        let b: Vec<i64> = t
            .data
            .column("b")
            .unwrap()
            .cast(&DataType::Int64)
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        let want_b: Vec<i64> = serde_json::from_value(exp["b"].clone()).unwrap();
        assert_eq!(b, want_b);
        let c = t.data.column("c").unwrap().as_materialized_series().clone();
        if name == "zero_a" {
            let got: Vec<&str> = c.str().unwrap().iter().map(Option::unwrap).collect();
            let want_c: Vec<String> = serde_json::from_value(exp["c"].clone()).unwrap();
            assert_eq!(got, want_c);
        } else {
            let lens: Vec<usize> = c
                .list()
                .unwrap()
                .amortized_iter()
                .map(|r| r.unwrap().as_ref().len())
                .collect();
            let want_c: Vec<Vec<f64>> = serde_json::from_value(exp["c"].clone()).unwrap();
            assert_eq!(lens, want_c.iter().map(Vec::len).collect::<Vec<_>>());
        }
        let k = t.data.column("k").unwrap().as_materialized_series().clone();
        let lens: Vec<usize> = k
            .list()
            .unwrap()
            .amortized_iter()
            .map(|r| r.unwrap().as_ref().len())
            .collect();
        let want_k: Vec<Vec<i64>> = serde_json::from_value(exp["k"].clone()).unwrap();
        assert_eq!(lens, want_k.iter().map(Vec::len).collect::<Vec<_>>());
        // Chunks and the report agree.
        let heights: Vec<usize> = f
            .table_chunks(&HduSelector::Index(1), None, 2)
            .unwrap()
            .map(|c| c.unwrap().data.height())
            .collect();
        assert_eq!(heights, vec![2, 1]);
        let report = inspect(&path, &stats_opts()).unwrap_or_else(|e| panic!("{e}"));
        let k = &report["items"][1]["columns"][2];
        assert_eq!(k["dtype"], "list[i32]");
        assert_eq!(k["stats"]["nan_count"], 0);
        assert!(k["stats"]["min"].is_null());
    }
}

#[test]
fn non_standard_header_cards_are_kept_with_a_warning_and_the_data_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    let want = astropy(
        r#"
import sys, json, warnings, numpy as np
from astropy.io import fits
d = sys.argv[1]
bad = {
    'number': "CD1_1   = 1.2.3 / not a number",
    'unquoted': "OBSERVER= John Smith",
    'lowercase': "obsdate = '2001-01-01'",
    'keychar': "DATE.OBS= '2001-01-01'",
    'noquote': "OBJECT  = 'M13",
    'nonascii': "COMMENT plate scanned at Caf\xe9 Observatory",
    'escape': "COMMENT \x1b[2J control bytes",
}
out = {}
for name, card in bad.items():
    p = fits.PrimaryHDU(np.arange(12, dtype=np.int16).reshape(3, 4) * 3)
    p.header['PLATEID'] = 'XX'
    e = fits.ImageHDU(np.linspace(0, 1, 6, dtype=np.float32), name='SCI')
    e.header['PLATEID'] = 'XX'
    path = f'{d}/{name}.fits'
    fits.HDUList([p, e]).writeto(path)
    raw = bytearray(open(path, 'rb').read())
    for k in range(2):
        i = raw.find(b"PLATEID = 'XX", 2880 * 2 * k)
        raw[i:i + 80] = card.ljust(80).encode('latin1')
    open(path, 'wb').write(raw)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        with fits.open(path) as f:
            cards = f[1].header.cards
            kw = cards[len(cards) - 1].keyword
            out[path] = {'sums': [float(h.data.sum(dtype=np.float64)) for h in f],
                         'keyword': kw, 'ncards': [len(h.header) for h in f]}
print(json.dumps(out))
"#,
        dir.path(),
    );
    for (path, exp) in want.as_object().unwrap() {
        let mut f = FitsReader::open(path).unwrap_or_else(|e| panic!("{e}"));
        for (i, want_sum) in exp["sums"].as_array().unwrap().iter().enumerate() {
            let sel = HduSelector::Index(i);
            let header = f.header(&sel).unwrap_or_else(|e| panic!("{e}"));
            let ncards = header.cards().iter().filter(|c| c.key != "END").count();
            assert_eq!(ncards as u64, exp["ncards"][i].as_u64().unwrap(), "{path}");
            let odd = &header.cards()[header.cards().len() - 1];
            if exp["keyword"] != "COMMENT" {
                assert_eq!(odd.key, exp["keyword"].as_str().unwrap(), "{path}");
            }
            for c in header.cards() {
                assert!(
                    c.key
                        .chars()
                        .chain(c.comment.chars())
                        .all(|ch| !ch.is_control()),
                    "{path}: {c:?}"
                );
            }
            let data = f.read_image(&sel).unwrap_or_else(|e| panic!("{e}"));
            let sum = data.stats().unwrap().sum;
            assert!(close(sum, want_sum.as_f64().unwrap()), "{path} HDU {i}");
        }
        let report = inspect(Path::new(path), &stats_opts()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report["items"].as_array().unwrap().len(), 2);
        assert!(close(
            report["items"][1]["stats"]["sum"].as_f64().unwrap(),
            exp["sums"][1].as_f64().unwrap()
        ));
    }
    // The unparsable value is kept as written, the rest of the card parsed.
    let mut f = FitsReader::open(dir.path().join("number.fits")).unwrap();
    let h = f.header(&HduSelector::Name("SCI".into())).unwrap();
    assert_eq!(h.get("CD1_1"), Some(&CardValue::Raw("1.2.3".into())));
    assert_eq!(h.get_str("EXTNAME"), Some("SCI"));
}
