//! Round trips with the real peers: what we write, astropy/h5py read back equal and
//! fitsverify passes; what astropy/h5py write, we read back equal.

mod common;

use std::collections::BTreeMap;

use deepsky_io::calo::{CaloChallengeShowers, CaloGanShowers};
use deepsky_io::fits::{Card, ColumnMeta, FitsReader, FitsWriter, HduSelector, TableMeta};
use deepsky_io::h5::{H5Reader, H5Writer, WriteOptions};
use deepsky_io::NdData;
use ndarray::{Array2, Array3, ArrayD, IxDyn};
use polars::prelude::*;
use serde_json::Value;

fn demo_table() -> DataFrame {
    let list = Series::new(
        "SPEC".into(),
        vec![
            Series::new("".into(), vec![1.0f32, 2.0]),
            Series::new("".into(), Vec::<f32>::new()),
            Series::new("".into(), vec![3.5f32]),
        ],
    );
    let arr = Series::new("VEC".into(), vec![1i16, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
        .reshape_array(&[
            ReshapeDimension::Infer,
            ReshapeDimension::new_dimension(2),
            ReshapeDimension::new_dimension(2),
        ])
        .unwrap();
    df![
        "TIME" => [0.5f64, 1.25, 2.0],
        "ENERGY" => [1.5f32, f32::NAN, 7.25],
        "PI" => [Some(10i16), None, Some(30)],
        "CHAN" => [1u16, 40000, 65535],
        "FLAG" => [Some(true), Some(false), None],
        "NAME" => ["a", "bb", "ccc"],
        "BIG" => [1u32, 3_000_000_000, 7],
        "TINY" => [-5i8, 0, 5],
    ]
    .unwrap()
    .hstack(&[list.into_column(), arr.into_column()])
    .unwrap()
}

#[test]
fn fits_we_write_astropy_reads_and_fitsverify_passes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ours.fits");
    let img = ArrayD::from_shape_fn(IxDyn(&[3, 4, 5]), |i| {
        (i[0] * 100 + i[1] * 10 + i[2]) as f32 * 0.5
    });
    let u16img = ArrayD::from_shape_fn(IxDyn(&[2, 3]), |i| (60000 + i[0] * 3 + i[1]) as u16);
    let mut w = FitsWriter::create(&path).unwrap();
    w.write_image(
        None,
        &NdData::F32(img.clone()),
        &[
            Card::new("EXPTIME", 100.0, "[s] exposure"),
            Card::new("OBJECT", "M13", "target"),
            Card::history("made by the round-trip test"),
        ],
    )
    .unwrap();
    w.write_image(Some("COUNTS"), &NdData::U16(u16img.clone()), &[])
        .unwrap();
    let mut meta = TableMeta::new();
    meta.insert("TIME".into(), ColumnMeta::new("s", "arrival time"));
    meta.insert(
        "PI".into(),
        ColumnMeta::new("chan", "pulse invariant").with_range(1.0, 1024.0),
    );
    let df = demo_table();
    w.write_table(
        "EVENTS",
        &df,
        &meta,
        &[Card::new("TELESCOP", "DEEPSKY", "")],
    )
    .unwrap();
    // Nothing under the final name until finish.
    assert!(!path.exists());
    w.finish().unwrap();
    assert!(path.exists());

    let (errors, warnings, report) = common::fitsverify(&path);
    assert_eq!((errors, warnings), (0, 0), "fitsverify: {report}");

    let out = common::run_python(
        r#"
import sys, json, numpy as np
from astropy.io import fits
from astropy.table import Table
with fits.open(sys.argv[1], checksum=True) as h:
    t = h['EVENTS'].data
    print(json.dumps({
      "img_sum": float(h[0].data.sum()), "img_shape": list(h[0].data.shape), "img_dtype": str(h[0].data.dtype),
      "val": float(h[0].data[2, 3, 4]), "exptime": h[0].header['EXPTIME'],
      "u16_dtype": str(h['COUNTS'].data.dtype), "u16": h['COUNTS'].data.astype(int).ravel().tolist(),
      "time": t['TIME'].tolist(), "energy_nan": int(np.isnan(t['ENERGY']).sum()),
      "pi": [None if (v is np.ma.masked) else int(v) for v in Table.read(sys.argv[1], hdu='EVENTS')['PI']],
      "chan": t['CHAN'].astype(int).tolist(), "chan_dtype": str(t['CHAN'].dtype),
      "name": list(t['NAME']), "big": t['BIG'].astype(int).tolist(), "tiny": t['TINY'].astype(int).tolist(),
      "spec": [list(map(float, r)) for r in t['SPEC']], "vec": t['VEC'].tolist(),
      "unit": h['EVENTS'].columns['TIME'].unit, "tlmax": h['EVENTS'].header.get('TLMAX3'),
    }))
"#,
        &[path.to_str().unwrap()],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["img_shape"], serde_json::json!([3, 4, 5]));
    assert_eq!(v["img_dtype"], ">f4");
    assert_eq!(v["img_sum"].as_f64().unwrap(), img.sum() as f64);
    assert_eq!(v["val"].as_f64().unwrap(), 117.0);
    assert_eq!(v["exptime"].as_f64().unwrap(), 100.0);
    assert_eq!(v["u16_dtype"], "uint16");
    assert_eq!(
        v["u16"],
        serde_json::json!([60000, 60001, 60002, 60003, 60004, 60005])
    );
    assert_eq!(v["time"], serde_json::json!([0.5, 1.25, 2.0]));
    assert_eq!(v["energy_nan"], 1);
    assert_eq!(v["pi"], serde_json::json!([10, null, 30]));
    assert_eq!(v["chan"], serde_json::json!([1, 40000, 65535]));
    assert_eq!(v["chan_dtype"], "uint16");
    assert_eq!(v["name"], serde_json::json!(["a", "bb", "ccc"]));
    assert_eq!(v["big"], serde_json::json!([1, 3000000000u64, 7]));
    assert_eq!(v["tiny"], serde_json::json!([-5, 0, 5]));
    assert_eq!(v["spec"], serde_json::json!([[1.0, 2.0], [], [3.5]]));
    assert_eq!(
        v["vec"],
        serde_json::json!([[[1, 2], [3, 4]], [[5, 6], [7, 8]], [[9, 10], [11, 12]]])
    );
    assert_eq!(v["unit"], "s");
    assert_eq!(v["tlmax"], 1024);

    // And we read our own file back equal.
    let mut r = FitsReader::open(&path).unwrap();
    assert_eq!(
        r.read_image(&HduSelector::Index(0)).unwrap(),
        NdData::F32(img)
    );
    assert_eq!(r.read_image(&"COUNTS".into()).unwrap(), NdData::U16(u16img));
    let t = r.read_table(&"EVENTS".into(), None).unwrap();
    assert_eq!(t.unit("TIME"), Some("s"));
    assert!(t
        .data
        .column("PI")
        .unwrap()
        .as_materialized_series()
        .equals_missing(df.column("PI").unwrap().as_materialized_series()));
    assert!(t
        .data
        .column("FLAG")
        .unwrap()
        .as_materialized_series()
        .equals_missing(df.column("FLAG").unwrap().as_materialized_series()));
    assert!(t
        .data
        .column("SPEC")
        .unwrap()
        .as_materialized_series()
        .equals_missing(df.column("SPEC").unwrap().as_materialized_series()));
    assert!(t
        .data
        .column("VEC")
        .unwrap()
        .as_materialized_series()
        .equals_missing(df.column("VEC").unwrap().as_materialized_series()));
}

#[test]
fn fits_astropy_writes_we_read() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::run_python(
        r#"
import sys, os, numpy as np
from astropy.io import fits
d = sys.argv[1]
cube = np.arange(2*3*4, dtype=np.float64).reshape(2, 3, 4)
prim = fits.PrimaryHDU(cube)
ints = {bp: fits.ImageHDU(np.arange(12, dtype=t).reshape(3, 4), name=f"B{bp}") for bp, t in [(8, np.uint8), (16, np.int16), (32, np.int32), (64, np.int64)]}
u16 = fits.ImageHDU(np.array([[0, 65535]], dtype=np.uint16), name="U16")
u32 = fits.ImageHDU(np.array([[0, 4000000000]], dtype=np.uint32), name="U32")
f32 = fits.ImageHDU(np.array([[1.5, np.nan]], dtype=np.float32), name="F32")
scaled = fits.ImageHDU(np.array([[1, 2], [3, -5]], dtype=np.int16), name="SCALED")
cols = fits.ColDefs([
  fits.Column(name='X', format='J', array=np.array([1, -2, 3]), null=-2),
  fits.Column(name='S', format='I', array=np.array([1, 2, 3])),
  fits.Column(name='V', format='PD()', array=np.array([np.array([1.0]), np.array([2.0, 3.0]), np.array([])], dtype=object)),
  fits.Column(name='M', format='6E', dim='(3,2)', array=np.arange(18, dtype=np.float32).reshape(3, 2, 3)),
  fits.Column(name='B', format='3X', array=np.array([[1, 0, 1], [0, 0, 0], [1, 1, 1]], dtype=bool)),
  fits.Column(name='L', format='L', array=np.array([True, False, True])),
])
tab = fits.BinTableHDU.from_columns(cols, name='TAB')
asc = fits.TableHDU.from_columns([fits.Column(name='A', format='I6', array=np.array([1, 2, 3])), fits.Column(name='F', format='F8.3', array=np.array([1.5, 2.5, 3.5]))], name='ASC')
fits.HDUList([prim, *ints.values(), u16, u32, f32, scaled, tab, asc]).writeto(os.path.join(d, 'py.fits'))
# Put scaling keywords on the raw integers (astropy would rescale the data if set before writing).
with fits.open(os.path.join(d, 'py.fits'), mode='update', do_not_scale_image_data=True) as h:
    h['SCALED'].header['BSCALE'] = 0.5; h['SCALED'].header['BZERO'] = 10.0; h['SCALED'].header['BLANK'] = -5
    h['TAB'].header['TSCAL2'] = 0.5; h['TAB'].header['TZERO2'] = 1.0
fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(np.arange(10000, dtype=np.int32).reshape(100, 100), compression_type='GZIP_2', name='GZ2'),
  fits.CompImageHDU(np.arange(10000, dtype=np.int16).reshape(100, 100) % 7, compression_type='PLIO_1', name='PLIO'),
  fits.CompImageHDU(np.arange(10000, dtype=np.int16).reshape(100, 100), compression_type='GZIP_1', name='GZ1'),
  fits.BinTableHDU.from_columns([fits.Column(name='Z', format='C', array=np.array([1+2j, 3-1j], dtype=np.complex64)), fits.Column(name='R', format='E', array=np.array([1.0, 2.0], dtype=np.float32))], name='CPLX'),
  fits.CompImageHDU(np.arange(10000, dtype=np.int16).reshape(100, 100), compression_type='HCOMPRESS_1', name='HC'),
  fits.CompImageHDU((np.arange(10000, dtype=np.float32).reshape(100, 100) / 7.0), compression_type='RICE_1', quantize_level=16.0, name='QF')]).writeto(os.path.join(d, 'comp.fits'))
import gzip, shutil
with open(os.path.join(d, 'py.fits'), 'rb') as a, gzip.open(os.path.join(d, 'py.fits.gz'), 'wb') as b: shutil.copyfileobj(a, b)
with fits.open(os.path.join(d, 'comp.fits')) as h: print(float(h['QF'].data.sum()))
"#,
        &[dir.path().to_str().unwrap()],
    );
    let qf_sum: f64 = out.trim().parse().unwrap();
    for name in ["py.fits", "py.fits.gz"] {
        let mut f = FitsReader::open(dir.path().join(name)).unwrap();
        let cube = f.read_image(&0.into()).unwrap();
        assert_eq!(cube.shape(), vec![2, 3, 4]);
        assert_eq!(cube.stats().unwrap().sum, 276.0);
        for (ext, dtype) in [
            ("B8", "u8"),
            ("B16", "i16"),
            ("B32", "i32"),
            ("B64", "i64"),
            ("U16", "u16"),
            ("U32", "u32"),
            ("F32", "f32"),
            ("SCALED", "f32"),
        ] {
            let d = f.read_image(&ext.into()).unwrap();
            assert_eq!(d.dtype_name(), dtype, "{name} {ext}");
        }
        assert_eq!(
            f.read_image(&"U32".into()).unwrap(),
            NdData::U32(ArrayD::from_shape_vec(IxDyn(&[1, 2]), vec![0, 4000000000]).unwrap())
        );
        let scaled = f.read_image(&"SCALED".into()).unwrap().to_f64().unwrap();
        assert_eq!(
            scaled.iter().take(3).copied().collect::<Vec<_>>(),
            vec![10.5, 11.0, 11.5]
        );
        assert!(scaled[[1, 1]].is_nan(), "BLANK becomes NaN");
        assert_eq!(
            f.read_image(&"F32".into())
                .unwrap()
                .stats()
                .unwrap()
                .nan_count,
            1
        );
        let t = f.read_table(&"TAB".into(), None).unwrap().data;
        let x = t.column("X").unwrap();
        assert_eq!(x.null_count(), 1, "TNULL becomes null");
        assert_eq!(
            t.column("S")
                .unwrap()
                .f64()
                .unwrap()
                .into_no_null_iter()
                .collect::<Vec<_>>(),
            vec![1.5, 2.0, 2.5]
        );
        let v = t
            .column("V")
            .unwrap()
            .list()
            .unwrap()
            .get_as_series(1)
            .unwrap();
        assert_eq!(
            v.f64().unwrap().into_no_null_iter().collect::<Vec<_>>(),
            vec![2.0, 3.0]
        );
        assert_eq!(
            t.column("M").unwrap().dtype(),
            &DataType::Array(Box::new(DataType::Array(Box::new(DataType::Float32), 3)), 2)
        );
        let b = t.column("B").unwrap().array().unwrap().get_inner();
        assert_eq!(
            b.bool()
                .unwrap()
                .iter()
                .map(|x| x.unwrap())
                .collect::<Vec<_>>(),
            vec![true, false, true, false, false, false, true, true, true]
        );
        assert_eq!(
            t.column("L")
                .unwrap()
                .bool()
                .unwrap()
                .iter()
                .map(|x| x.unwrap())
                .collect::<Vec<_>>(),
            vec![true, false, true]
        );
        let a = f.read_table(&"ASC".into(), None).unwrap().data;
        assert_eq!(a.column("F").unwrap().f64().unwrap().sum(), Some(7.5));
        assert_eq!(
            a.column("A")
                .unwrap()
                .cast(&DataType::Int64)
                .unwrap()
                .i64()
                .unwrap()
                .sum(),
            Some(6)
        );
        // Reading selected columns only.
        let sel = f.read_table(&"TAB".into(), Some(&["l", "X"])).unwrap();
        assert_eq!(sel.data.get_column_names(), vec!["L", "X"]);
    }
    let mut c = FitsReader::open(dir.path().join("comp.fits")).unwrap();
    let gz = c.read_image(&"GZ2".into()).unwrap();
    assert_eq!(gz.stats().unwrap().sum, (0..10000).sum::<i64>() as f64);
    let gz1 = c.read_image(&"GZ1".into()).unwrap();
    assert_eq!(gz1.stats().unwrap().sum, (0..10000).sum::<i64>() as f64);
    // Complex columns are a clear error naming the column; the other columns still read.
    let err = c.read_table(&"CPLX".into(), None).unwrap_err();
    assert_eq!(err.kind(), &deepsky_io::ErrorKind::Unsupported);
    assert!(
        err.to_string().contains("column `Z`") && err.to_string().contains("unsupported type"),
        "{err}"
    );
    assert_eq!(
        c.read_table(&"CPLX".into(), Some(&["R"]))
            .unwrap()
            .data
            .column("R")
            .unwrap()
            .f32()
            .unwrap()
            .sum(),
        Some(3.0)
    );
    let plio = c.read_image(&"PLIO".into()).unwrap();
    assert_eq!(
        plio.stats().unwrap().sum,
        (0..10000).map(|v| v % 7).sum::<i64>() as f64
    );
    let hc = c.read_image(&"HC".into()).unwrap();
    assert_eq!(hc.stats().unwrap().sum, (0..10000).sum::<i64>() as f64);
    let qf = c.read_image(&"QF".into()).unwrap();
    assert_eq!(qf.dtype_name(), "f32");
    assert!(
        (qf.stats().unwrap().sum - qf_sum).abs() < 1e-6 * qf_sum,
        "quantised float matches astropy's decompression"
    );
    assert_eq!(
        c.hdu_info(&"QF".into()).unwrap().compression.as_deref(),
        Some("RICE_1")
    );
}

#[test]
fn table_chunks_cover_the_table_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.fits");
    let n = 100_003usize;
    let df = df!["TIME" => (0..n).map(|i| i as f64 * 0.1).collect::<Vec<_>>(), "PI" => (0..n).map(|i| (i % 1000) as i16).collect::<Vec<_>>()].unwrap();
    let mut w = FitsWriter::create(&path).unwrap();
    w.write_table("EVENTS", &df, &BTreeMap::new(), &[]).unwrap();
    w.finish().unwrap();
    let mut r = FitsReader::open(&path).unwrap();
    let mut rows = 0;
    let mut sum = 0.0;
    for chunk in r
        .table_chunks(&"EVENTS".into(), Some(&["PI"]), 10_000)
        .unwrap()
    {
        let c = chunk.unwrap();
        assert_eq!(c.data.width(), 1);
        assert!(c.data.height() <= 10_000);
        rows += c.data.height();
        sum += c
            .data
            .column("PI")
            .unwrap()
            .cast(&DataType::Float64)
            .unwrap()
            .f64()
            .unwrap()
            .sum()
            .unwrap();
    }
    assert_eq!(rows, n);
    assert_eq!(sum, (0..n).map(|i| (i % 1000) as f64).sum::<f64>());
}

#[test]
fn wcs_matches_astropy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wcs.fits");
    let cards = [
        Card::new("CTYPE1", "RA---TAN", ""),
        Card::new("CTYPE2", "DEC--TAN", ""),
        Card::new("CRVAL1", 150.1, ""),
        Card::new("CRVAL2", 2.2, ""),
        Card::new("CRPIX1", 50.5, ""),
        Card::new("CRPIX2", 40.0, ""),
        Card::new("CD1_1", -0.0002, ""),
        Card::new("CD1_2", 0.00001, ""),
        Card::new("CD2_1", 0.00002, ""),
        Card::new("CD2_2", 0.0002, ""),
        Card::new("CUNIT1", "deg", ""),
        Card::new("CUNIT2", "deg", ""),
        Card::new("RADESYS", "ICRS", ""),
    ];
    let mut w = FitsWriter::create(&path).unwrap();
    w.write_image(None, &NdData::F32(ArrayD::zeros(IxDyn(&[80, 100]))), &cards)
        .unwrap();
    w.finish().unwrap();
    let out = common::run_python(
        "import sys\nfrom astropy.wcs import WCS\nfrom astropy.io import fits\nw = WCS(fits.getheader(sys.argv[1]))\nfor x, y in [(1, 1), (50.5, 40), (100, 80), (10.25, 70.75)]:\n    r, d = w.all_pix2world([[x, y]], 1)[0]\n    print(x, y, repr(float(r)), repr(float(d)))\n",
        &[path.to_str().unwrap()],
    );
    let mut r = FitsReader::open(&path).unwrap();
    let wcs = r.wcs(&0.into()).unwrap();
    for line in out.lines() {
        let v: Vec<f64> = line
            .split_whitespace()
            .map(|s| s.parse().unwrap())
            .collect();
        let (ra, dec) = wcs.pixel_to_world(v[0], v[1]).unwrap();
        assert!(
            (ra - v[2]).abs() < 1e-9 && (dec - v[3]).abs() < 1e-9,
            "pixel ({}, {}): ours ({ra}, {dec}) astropy ({}, {})",
            v[0],
            v[1],
            v[2],
            v[3]
        );
        let (x, y) = wcs.world_to_pixel(ra, dec).unwrap();
        assert!(
            (x - v[0]).abs() < 1e-6 && (y - v[1]).abs() < 1e-6,
            "round trip of ({}, {}) gave ({x}, {y})",
            v[0],
            v[1]
        );
    }
}

#[test]
fn hdf5_round_trips_with_h5py() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ours.h5");
    let w = H5Writer::create(&path).unwrap();
    let a = ArrayD::from_shape_fn(IxDyn(&[50, 4, 3]), |i| {
        (i[0] * 12 + i[1] * 3 + i[2]) as f64 * 0.25
    });
    w.write(
        "/group/sub/data",
        &NdData::F64(a.clone()),
        &WriteOptions {
            chunks: Some(vec![10, 4, 3]),
            gzip: 6,
            shuffle: true,
        },
    )
    .unwrap();
    w.write(
        "/ints",
        &NdData::I16(ArrayD::from_shape_vec(IxDyn(&[3]), vec![-1, 0, 7]).unwrap()),
        &WriteOptions::default(),
    )
    .unwrap();
    w.write(
        "/names",
        &NdData::Str(
            ArrayD::from_shape_vec(IxDyn(&[2]), vec!["alpha".into(), "béta".into()]).unwrap(),
        ),
        &WriteOptions::default(),
    )
    .unwrap();
    w.set_attr("/", "seed", 42i64.into()).unwrap();
    w.set_attr("/group/sub/data", "unit", "MeV".into()).unwrap();
    w.finish().unwrap();
    let out = common::run_python(
        r#"
import sys, json, h5py
with h5py.File(sys.argv[1], 'r') as f:
    d = f['group/sub/data']
    print(json.dumps({"sum": float(d[()].sum()), "shape": list(d.shape), "chunks": list(d.chunks), "compression": d.compression,
      "shuffle": d.shuffle, "unit": d.attrs['unit'] if isinstance(d.attrs['unit'], str) else d.attrs['unit'].decode(), "seed": int(f.attrs['seed']),
      "ints": f['ints'][()].tolist(), "names": [s.decode() if isinstance(s, bytes) else s for s in f['names'][()]]}))
with h5py.File(sys.argv[2], 'w') as f:
    import numpy as np
    f.create_dataset('be', data=np.arange(20, dtype='>f4').reshape(4, 5))
    f.create_dataset('chunked', data=np.arange(100000, dtype=np.int32).reshape(1000, 100), chunks=(100, 100), compression='gzip')
    dt = np.dtype([('id', '<i8'), ('pos', '<f4', (2,)), ('tag', 'S4')])
    f.create_dataset('cat', data=np.array([(1, (0.5, 1.5), b'ab'), (2, (2.5, 3.5), b'cd')], dtype=dt))
    f['grp/deep'] = np.ones(3, dtype=np.uint8)
    f['grp'].attrs['note'] = 'hello'
"#,
        &[
            path.to_str().unwrap(),
            dir.path().join("py.h5").to_str().unwrap(),
        ],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["sum"].as_f64().unwrap(), a.sum());
    assert_eq!(v["shape"], serde_json::json!([50, 4, 3]));
    assert_eq!(v["chunks"], serde_json::json!([10, 4, 3]));
    assert_eq!(v["compression"], "gzip");
    assert_eq!(v["shuffle"], true);
    assert_eq!(v["unit"], "MeV");
    assert_eq!(v["seed"], 42);
    assert_eq!(v["ints"], serde_json::json!([-1, 0, 7]));
    assert_eq!(v["names"], serde_json::json!(["alpha", "béta"]));

    let r = H5Reader::open(dir.path().join("py.h5")).unwrap();
    let be = r.read("/be").unwrap();
    assert_eq!(be.dtype_name(), "f32");
    assert_eq!(be.stats().unwrap().sum, 190.0);
    let slice = r.read_slice("/chunked", &[500, 10], &[2, 3]).unwrap();
    assert_eq!(
        slice,
        NdData::I32(
            ArrayD::from_shape_vec(
                IxDyn(&[2, 3]),
                vec![50010, 50011, 50012, 50110, 50111, 50112]
            )
            .unwrap()
        )
    );
    let cat = r.read_table("/cat").unwrap();
    assert_eq!(cat.column("id").unwrap().i64().unwrap().sum(), Some(3));
    assert_eq!(cat.column("tag").unwrap().str().unwrap().get(1), Some("cd"));
    assert_eq!(
        cat.column("pos")
            .unwrap()
            .array()
            .unwrap()
            .get_inner()
            .f32()
            .unwrap()
            .sum(),
        Some(8.0)
    );
    let items = r.items().unwrap();
    let grp = items.iter().find(|i| i.path == "/grp").unwrap();
    assert_eq!(
        grp.attrs,
        vec![(
            "note".to_string(),
            deepsky_io::h5::AttrValue::Str("hello".into())
        )]
    );
    assert!(r
        .read("/nope")
        .unwrap_err()
        .to_string()
        .contains("no dataset `/nope`"));
}

#[test]
fn calogan_and_calochallenge_layouts_round_trip_through_h5py() {
    let dir = tempfile::tempdir().unwrap();
    let n = 7;
    let s = CaloGanShowers {
        layer_0: Array3::from_shape_fn((n, 3, 96), |(i, j, k)| (i + j + k) as f32),
        layer_1: Array3::from_shape_fn((n, 12, 12), |(i, j, k)| (i * j + k) as f32),
        layer_2: Array3::from_shape_fn((n, 12, 6), |(i, _, k)| (i + k) as f32 * 0.5),
        energy: Array2::from_shape_fn((n, 1), |(i, _)| 10.0 + i as f32),
        overflow: Array2::from_shape_fn((n, 3), |(i, j)| (i * j) as f32),
    };
    let p = dir.path().join("calogan.h5");
    s.write(&p, &[]).unwrap();
    assert_eq!(CaloGanShowers::read(&p).unwrap(), s);
    let cc = s.to_calochallenge();
    let q = dir.path().join("cc.h5");
    cc.write(&q, &[]).unwrap();
    assert_eq!(CaloChallengeShowers::read(&q).unwrap(), cc);
    let out = common::run_python(
        "import sys, h5py\nwith h5py.File(sys.argv[1]) as f, h5py.File(sys.argv[2]) as g:\n    print(f['layer_0'].shape, f['layer_1'].shape, f['layer_2'].shape, f['energy'].shape, f['overflow'].shape, float(f['layer_1'][()].sum()), g['showers'].shape, g['showers'].compression, float(g['incident_energies'][0, 0]))\n",
        &[p.to_str().unwrap(), q.to_str().unwrap()],
    );
    let want = format!(
        "(7, 3, 96) (7, 12, 12) (7, 12, 6) (7, 1) (7, 3) {:?} (7, 504) gzip 10000.0",
        s.layer_1.sum() as f64
    );
    assert_eq!(out.trim(), want);
}

/// The HDF5 library is not thread-safe: every call, our raw C calls included, must hold
/// the hdf5 crate's lock (without it, this crashed with SIGBUS).
#[test]
fn hdf5_compound_reads_beside_writes_on_other_threads() {
    let src = common::external().join("hdf5/smpl_compound_chunked.h5");
    let dir = tempfile::tempdir().unwrap();
    let n = 3;
    let showers = CaloGanShowers {
        layer_0: Array3::from_shape_fn((n, 3, 96), |(i, j, k)| (i + j + k) as f32),
        layer_1: Array3::from_shape_fn((n, 12, 12), |(i, j, k)| (i * j + k) as f32),
        layer_2: Array3::from_shape_fn((n, 12, 6), |(i, _, k)| (i + k) as f32),
        energy: Array2::from_shape_fn((n, 1), |(i, _)| 10.0 + i as f32),
        overflow: Array2::zeros((n, 3)),
    };
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..400 {
                    let df = H5Reader::open(&src)
                        .unwrap()
                        .read_table("/CompoundChunked")
                        .unwrap();
                    assert_eq!(df.height(), 6);
                }
            });
        }
        s.spawn(|| {
            for i in 0..150 {
                let p = dir.path().join(format!("showers{i}.h5"));
                showers.write(&p, &[]).unwrap();
                assert_eq!(CaloGanShowers::read(&p).unwrap(), showers);
            }
        });
    });
}

/// A child process started while an HDF5 file is being written (a test's Python, sbatch)
/// inherits the open descriptor; it must not keep readers, ours or h5py, out of the finished
/// file. HDF5's exclusive file lock travels with the descriptor, so a writer that takes it
/// locks readers out until the child exits ("unable to lock file").
#[test]
fn hdf5_file_is_readable_while_a_child_started_during_its_write_runs() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("written.h5");
    let data = NdData::F32(ArrayD::from_shape_fn(IxDyn(&[4, 5]), |i| {
        (i[0] * 5 + i[1]) as f32
    }));
    let w = H5Writer::create(&p).unwrap();
    w.write("/a", &data, &WriteOptions::default()).unwrap();
    /// Stops the child however the test ends.
    struct Running(std::process::Child);
    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _child = Running(
        std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap(),
    );
    w.finish().unwrap();
    assert_eq!(H5Reader::open(&p).unwrap().read("/a").unwrap(), data);
    let theirs = common::run_python(
        "import sys, h5py\nwith h5py.File(sys.argv[1], 'r') as f:\n    print(float(f['a'][()].sum()))\n",
        &[p.to_str().unwrap()],
    );
    assert_eq!(theirs.trim(), "190.0");
}
