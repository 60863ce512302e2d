//! FITS files through cfitsio (the `fitsio` crate): images of every BITPIX with BSCALE/BZERO
//! and BLANK, tile-compressed images and `.fits.gz` read transparently, binary and ASCII tables
//! into polars (with units, TNULL, TDIM, variable-length arrays), header cards, and writers
//! whose output astropy and `fitsverify` accept.

mod ffi;
mod header;
mod read;
mod table;
mod write;

#[cfg(test)]
mod damaged_tests;

pub use header::{Card, CardValue, Header};
pub use read::{ColumnInfo, FitsReader, FitsTable, HduInfo, HduKind, HduSelector, TableChunks};
pub use write::{ColumnMeta, FitsWriter, TableMeta};
