//! FITS and HDF5 input and output for deepsky.
//!
//! Astronomers keep images and event lists in FITS; particle physicists keep calorimeter
//! showers in HDF5. This crate reads both into the types the rest of deepsky computes with —
//! [`NdData`] (an `ndarray` of any element type) for images and datasets, polars `DataFrame`s
//! for tables — and writes them back in forms that astropy, h5py and `fitsverify` accept.
//!
//! * [`fits`]: images of every BITPIX with BSCALE/BZERO/BLANK, tile-compressed images and
//!   `.fits.gz`, binary/ASCII tables (TNULL, TSCAL/TZERO, TDIM, variable-length arrays, units),
//!   header cards, chunked reading of tables larger than memory, writers with checksums.
//! * [`h5`]: groups, datasets of any type and byte order, compound datasets as tables,
//!   strings, attributes, slices of chunked datasets, writers with gzip and shuffle.
//! * [`calo`]: the CaloGAN and CaloChallenge shower layouts.
//! * [`wcs`]: pixel ↔ sky conversion from an image header.
//! * [`inspect`]: the summary behind `deepsky inspect`.
//! * [`mask`]: bitmask images with `MP_<PLANE>` cards (segment masks, `detect --mask`).
//! * [`atomic`]: outputs written under a temporary name and renamed when complete.
//!
//! Every error is an [`IoError`]: it names the file and says what is wrong in one line.
//!
//! ```no_run
//! use deepsky_io::fits::{FitsReader, HduSelector};
//! let mut f = FitsReader::open("field.fits")?;
//! let image = f.read_image_f32(&HduSelector::Index(0))?;
//! let wcs = f.wcs(&HduSelector::Index(0))?;
//! let (ra, dec) = wcs.pixel_to_world(1.0, 1.0).unwrap();
//! println!("{:?} pixels, corner at RA {ra:.5} Dec {dec:.5}", image.shape());
//! # Ok::<(), deepsky_io::IoError>(())
//! ```

#![warn(missing_docs)]

pub mod atomic;
pub mod calo;
pub mod data;
mod error;
pub mod fits;
pub mod h5;
pub mod inspect;
pub mod mask;
pub mod tabular;
pub mod wcs;

pub use data::{NdData, Stats};
pub use error::{ErrorKind, IoError, Result};
