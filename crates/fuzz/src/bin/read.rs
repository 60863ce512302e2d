//! `deepsky-fuzz-read FILE`: every library reader of deepsky-io over one file, as the
//! pipelines call them — each FITS image as f32 (the detector's and the anomaly model's input)
//! with its WCS, each table streamed in row chunks, each HDF5 dataset and compound table, and
//! the shower reader for files in a shower layout. Prints what it read as `{"items": [...]}`
//! (the shape of `deepsky inspect --json`); a read error is one line
//! `deepsky-fuzz-read: error: FILE: …` with exit 2 (bad input) or 1.

use deepsky_io::calo::{read_showers, ShowerLayout};
use deepsky_io::fits::{FitsReader, HduKind, HduSelector};
use deepsky_io::h5::{H5Kind, H5Reader};
use deepsky_io::IoError;
use serde_json::{json, Value};

fn main() {
    // The readers' warnings (a file cut inside its last padding, zero bytes after the last
    // HDU) go to stderr, as in the CLI.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: deepsky-fuzz-read FILE");
        std::process::exit(2);
    };
    match read_everything(std::path::Path::new(&path)) {
        Ok(items) => println!("{}", json!({ "items": items })),
        Err(e) => {
            eprintln!("deepsky-fuzz-read: error: {e}");
            std::process::exit(if e.is_bad_input() { 2 } else { 1 });
        }
    }
}

fn read_everything(path: &std::path::Path) -> Result<Vec<Value>, IoError> {
    let mut magic = [0u8; 8];
    {
        use std::io::Read;
        let mut f = std::fs::File::open(path)
            .map_err(|e| IoError::new(path, deepsky_io::ErrorKind::InvalidInput, e.to_string()))?;
        let _ = f.read(&mut magic);
    }
    let mut items = Vec::new();
    if &magic == b"\x89HDF\r\n\x1a\n" {
        let r = H5Reader::open(path)?;
        for item in r.items()? {
            match item.kind {
                H5Kind::Group => items.push(json!({ "kind": "group" })),
                H5Kind::Dataset if item.dtype.as_deref() == Some("compound") => {
                    let t = r.read_table(&item.path)?;
                    items.push(json!({ "kind": "table", "rows": t.height(), "columns": vec![json!({}); t.width()] }));
                }
                H5Kind::Dataset => {
                    let d = r.read(&item.path)?;
                    items.push(json!({ "kind": "dataset", "shape": d.shape() }));
                }
            }
        }
        if ShowerLayout::of_file(path).is_ok() {
            let (showers, _) = read_showers(path)?;
            items.push(json!({ "kind": "showers", "shape": [showers.len()] }));
        }
        return Ok(items);
    }
    let mut f = FitsReader::open(path)?;
    for info in f.hdus()? {
        let hdu = HduSelector::Index(info.index);
        match info.kind {
            HduKind::Image => {
                let image = f.read_image_f32(&hdu)?;
                // A header without WCS is no error; a WCS that cannot be built is reported.
                let _ = f.wcs(&hdu);
                items.push(json!({ "kind": "image", "shape": image.shape() }));
            }
            HduKind::Empty => items.push(json!({ "kind": "empty" })),
            _ => {
                let mut rows = 0;
                let mut width = 0;
                for chunk in f.table_chunks(&hdu, None, 1000)? {
                    let chunk = chunk?;
                    rows += chunk.data.height();
                    width = chunk.data.width();
                }
                items.push(json!({ "kind": "table", "rows": rows, "columns": vec![json!({}); width.max(1)] }));
            }
        }
    }
    Ok(items)
}
