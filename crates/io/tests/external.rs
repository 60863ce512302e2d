//! Every file in ../shared/testdata/external (written by astropy, PyTables and h5py) is read
//! with the values those projects' own readers computed (expected.json).

mod common;

use deepsky_io::data::column_stats;
use deepsky_io::fits::{FitsReader, HduKind, HduSelector};
use deepsky_io::h5::{H5Kind, H5Reader};
use deepsky_io::NdData;
use polars::prelude::*;
use serde_json::Value;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[test]
fn fits_files_match_astropy() {
    let dir = common::external().join("fits");
    let expected: Value =
        serde_json::from_reader(std::fs::File::open(dir.join("expected.json")).unwrap()).unwrap();
    let mut checked = 0;
    let with_data = expected["files"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["hdus"].as_array().unwrap())
        .filter(|h| h.get("image").is_some() || h["nrows"].is_u64())
        .count();
    for file in expected["files"].as_array().unwrap() {
        let name = file["file"].as_str().unwrap();
        let mut f = FitsReader::open(dir.join(name)).unwrap_or_else(|e| panic!("{e}"));
        let hdus = f.hdus().unwrap_or_else(|e| panic!("{e}"));
        let exp_hdus = file["hdus"].as_array().unwrap();
        assert_eq!(hdus.len(), exp_hdus.len(), "{name}: number of HDUs");
        for (info, exp) in hdus.iter().zip(exp_hdus) {
            let ctx = format!("{name} HDU {}", info.index);
            let sel = HduSelector::Index(info.index);
            let header = f.header(&sel).unwrap();
            if let Some(ext) = exp["EXTNAME"].as_str() {
                assert_eq!(info.name, ext, "{ctx}: EXTNAME");
            }
            if let Some(img) = exp.get("image") {
                assert_eq!(info.kind, HduKind::Image, "{ctx}");
                let shape: Vec<usize> = img["numpy_shape"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap() as usize)
                    .collect();
                assert_eq!(info.shape, shape, "{ctx}: shape");
                let want_dtype = match img["dtype"].as_str().unwrap() {
                    "int16" => "i16",
                    "int32" => "i32",
                    "float32" => "f32",
                    "float64" => "f64",
                    "uint8" => "u8",
                    "uint16" => "u16",
                    other => other,
                };
                assert_eq!(info.dtype.as_deref(), Some(want_dtype), "{ctx}: dtype");
                let data = f.read_image(&sel).unwrap();
                let stats = data.stats().unwrap();
                assert!(
                    close(stats.sum, img["sum_f64"].as_f64().unwrap()),
                    "{ctx}: sum {} vs {}",
                    stats.sum,
                    img["sum_f64"]
                );
                assert_eq!(stats.min, img["min"].as_f64().unwrap(), "{ctx}: min");
                assert_eq!(stats.max, img["max"].as_f64().unwrap(), "{ctx}: max");
                assert_eq!(
                    stats.nan_count,
                    img["nan_count"].as_u64().unwrap(),
                    "{ctx}: NaN count"
                );
                let flat = data.to_f64().unwrap();
                let first: Vec<f64> = flat.iter().take(5).copied().collect();
                let want: Vec<f64> = img["first5_flat_C_order"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect();
                // expected.json prints float32 values with 16 digits: compare to 1e-15 relative.
                assert!(
                    first
                        .iter()
                        .zip(&want)
                        .all(|(a, b)| (a - b).abs() <= 1e-15 * b.abs().max(1.0)),
                    "{ctx}: first values {first:?} vs {want:?}"
                );
                let last = *flat.iter().last().unwrap();
                assert!(
                    close(last, img["last_flat"].as_f64().unwrap()),
                    "{ctx}: last value"
                );
                checked += 1;
            } else if exp["nrows"].is_u64() {
                assert_eq!(info.kind, HduKind::Table, "{ctx}");
                assert_eq!(
                    info.rows,
                    Some(exp["nrows"].as_u64().unwrap() as usize),
                    "{ctx}: rows"
                );
                let table = f.read_table(&sel, None).unwrap_or_else(|e| panic!("{e}"));
                let exp_cols = exp["columns"].as_array().unwrap();
                assert_eq!(table.data.width(), exp_cols.len(), "{ctx}: columns");
                for ec in exp_cols {
                    let cname = ec["name"].as_str().unwrap();
                    let cctx = format!("{ctx} column {cname}");
                    let s = table
                        .data
                        .column(cname)
                        .unwrap_or_else(|_| panic!("{cctx} missing"))
                        .as_materialized_series()
                        .clone();
                    let info_col = table.columns.iter().find(|c| c.name == cname).unwrap();
                    assert_eq!(
                        info_col.tform,
                        ec["TFORM"].as_str().unwrap(),
                        "{cctx}: TFORM"
                    );
                    assert_eq!(
                        info_col.unit.as_deref(),
                        ec["TUNIT"].as_str(),
                        "{cctx}: TUNIT"
                    );
                    if let Some(shape) = ec["cell_shape"].as_array() {
                        let shape: Vec<usize> =
                            shape.iter().map(|v| v.as_u64().unwrap() as usize).collect();
                        if ec["numpy_dtype"].as_str() != Some("bool") || !shape.is_empty() {
                            assert_eq!(info_col.cell_shape, shape, "{cctx}: cell shape");
                        }
                    }
                    if ec["vla"].as_bool() == Some(true) {
                        let list = s.list().unwrap();
                        let total: usize = list
                            .amortized_iter()
                            .map(|x| x.map_or(0, |v| v.as_ref().len()))
                            .sum();
                        assert_eq!(
                            total as u64,
                            ec["total_elements"].as_u64().unwrap(),
                            "{cctx}: VLA elements"
                        );
                        let sum = column_stats(&s).unwrap().sum;
                        assert_eq!(
                            sum,
                            ec["sum_all_elements"].as_f64().unwrap(),
                            "{cctx}: VLA sum"
                        );
                        let row0: Vec<f64> = list
                            .get_as_series(0)
                            .unwrap()
                            .cast(&DataType::Float64)
                            .unwrap()
                            .f64()
                            .unwrap()
                            .into_no_null_iter()
                            .collect();
                        let want: Vec<f64> = ec["first_row"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|v| v.as_f64().unwrap())
                            .collect();
                        assert_eq!(row0, want, "{cctx}: VLA first row");
                    } else if let Some(t) = ec["count_true"].as_u64() {
                        let stats = column_stats(&s).unwrap();
                        assert_eq!(stats.sum as u64, t, "{cctx}: true count");
                    } else if let Some(sum) = ec["sum_f64"].as_f64() {
                        let stats = column_stats(&s).unwrap();
                        assert!(close(stats.sum, sum), "{cctx}: sum {} vs {sum}", stats.sum);
                        assert_eq!(
                            stats.nan_count,
                            ec["nan_count"].as_u64().unwrap(),
                            "{cctx}: NaN count"
                        );
                        let want_dt = ec["numpy_dtype"].as_str().unwrap();
                        let have_dt = deepsky_io::data::polars_dtype_name(
                            deepsky_io::data::leaf_dtype(s.dtype()),
                        );
                        let map = [
                            ("int16", "i16"),
                            ("int32", "i32"),
                            ("int64", "i64"),
                            ("float32", "f32"),
                            ("float64", "f64"),
                            ("uint8", "u8"),
                        ];
                        let want_dt = map
                            .iter()
                            .find(|(a, _)| *a == want_dt)
                            .map(|(_, b)| *b)
                            .unwrap_or(want_dt);
                        assert_eq!(have_dt, want_dt, "{cctx}: dtype");
                    } else if let Some(first) = ec["first3"].as_array() {
                        let v: Vec<String> = s
                            .str()
                            .unwrap()
                            .iter()
                            .map(|x| x.unwrap())
                            .take(first.len())
                            .map(String::from)
                            .collect();
                        let want: Vec<String> = first
                            .iter()
                            .map(|x| x.as_str().unwrap().to_string())
                            .collect();
                        assert_eq!(v, want, "{cctx}: strings");
                    }
                }
                checked += 1;
            } else {
                assert_eq!(info.kind, HduKind::Empty, "{ctx}");
            }
            assert!(
                header.cards().len() >= exp["n_header_cards"].as_u64().unwrap() as usize - 1,
                "{ctx}: header cards"
            );
        }
    }
    assert_eq!(checked, with_data, "every HDU with data was checked");
}

#[test]
fn hdf5_files_match_h5py() {
    let dir = common::external().join("hdf5");
    let expected: Value =
        serde_json::from_reader(std::fs::File::open(dir.join("expected.json")).unwrap()).unwrap();
    let mut checked = 0;
    for file in expected["files"].as_array().unwrap() {
        let name = file["file"].as_str().unwrap();
        let f = H5Reader::open(dir.join(name)).unwrap_or_else(|e| panic!("{e}"));
        let items = f.items().unwrap_or_else(|e| panic!("{e}"));
        for obj in file["objects"].as_array().unwrap() {
            let path = format!("/{}", obj["path"].as_str().unwrap());
            let ctx = format!("{name} {path}");
            let item = items
                .iter()
                .find(|i| i.path == path)
                .unwrap_or_else(|| panic!("{ctx}: not listed"));
            for (k, v) in obj["attrs"].as_object().unwrap() {
                let got = item
                    .attrs
                    .iter()
                    .find(|(n, _)| n == k)
                    .unwrap_or_else(|| panic!("{ctx}: attribute {k} missing"));
                let got = serde_json::to_value(&got.1).unwrap();
                assert!(
                    got == *v || got.as_f64() == v.as_f64() && v.is_number(),
                    "{ctx}: attribute {k}: {got} vs {v}"
                );
            }
            if obj["kind"] == "group" {
                assert_eq!(item.kind, H5Kind::Group, "{ctx}");
                continue;
            }
            let shape: Vec<usize> = obj["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(item.shape, shape, "{ctx}: shape");
            if let Some(fields) = obj["fields"].as_object() {
                let df = f.read_table(&path).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(df.width(), fields.len(), "{ctx}: fields");
                for (fname, fexp) in fields {
                    let s = df.column(fname).unwrap().as_materialized_series().clone();
                    if let Some(sum) = fexp["sum_f64"].as_f64() {
                        let st = column_stats(&s).unwrap();
                        assert!(close(st.sum, sum), "{ctx}.{fname}: sum {} vs {sum}", st.sum);
                    } else if fexp["dtype"].as_str().unwrap_or("").contains('S') {
                        let want: Vec<String> = fexp["first5"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|x| x.as_str().unwrap().into())
                            .collect();
                        let got: Vec<String> = s
                            .str()
                            .unwrap()
                            .iter()
                            .map(|x| x.unwrap())
                            .take(want.len())
                            .map(String::from)
                            .collect();
                        assert_eq!(got, want, "{ctx}.{fname}");
                    }
                }
            } else {
                let data = f.read(&path).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(data.shape(), shape, "{ctx}");
                if let Some(sum) = obj["sum_f64"].as_f64() {
                    let st = data.stats().unwrap();
                    assert!(close(st.sum, sum), "{ctx}: sum");
                    assert_eq!(st.nan_count, obj["nan_count"].as_u64().unwrap());
                    assert_eq!(st.min, obj["min"].as_f64().unwrap());
                    assert_eq!(st.max, obj["max"].as_f64().unwrap());
                } else if let NdData::Str(a) = &data {
                    let want: Vec<String> = obj["first5"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_str().unwrap().into())
                        .collect();
                    assert_eq!(
                        a.iter().take(want.len()).cloned().collect::<Vec<_>>(),
                        want,
                        "{ctx}"
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} datasets checked");
}
