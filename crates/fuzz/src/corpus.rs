//! The damaged corpus: seeded, reproducible mutations of real FITS and HDF5 files.
//!
//! Each mutation imitates something that happens to files in the wild — a copy cut short, a
//! flipped bit on a bad disk, a block of zeros from a failed write, a header card a careless
//! script or a hostile sender rewrote — and aims at the bytes that steer a reader (headers,
//! HDF5 object headers and B-trees) more often than at pixels, because that is where a reader
//! can crash, hang, over-allocate or silently stop early.

use std::io::Write;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use serde::Serialize;

/// FITS files come in 2880-byte blocks of 36 cards of 80 bytes.
const BLOCK: usize = 2880;
const CARD: usize = 80;
const HDF5_SIGNATURE: &[u8] = b"\x89HDF\r\n\x1a\n";

/// The file format of a corpus source, sniffed from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// FITS (`SIMPLE  =` at byte 0).
    Fits,
    /// HDF5 (the 8-byte signature at 0, 512, 1024, ...).
    Hdf5,
}

impl Format {
    /// Sniff the format; `None` for anything else.
    pub fn of(bytes: &[u8]) -> Option<Format> {
        if bytes.starts_with(b"SIMPLE  =") {
            return Some(Format::Fits);
        }
        let mut at = 0;
        while at + HDF5_SIGNATURE.len() <= bytes.len() {
            if bytes[at..].starts_with(HDF5_SIGNATURE) {
                return Some(Format::Hdf5);
            }
            at = if at == 0 { 512 } else { at * 2 };
        }
        None
    }

    fn extension(self) -> &'static str {
        match self {
            Format::Fits => "fits",
            Format::Hdf5 => "h5",
        }
    }
}

/// What was done to the source to make a case (also the class its counts are reported under).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MutationKind {
    /// The undamaged source itself (and its gzip copy): must read completely.
    Original,
    /// Cut short at some byte.
    Truncated,
    /// One bit flipped.
    BitFlip,
    /// A run of bytes (a FITS block, an HDF5 metadata record) set to zero.
    Zeroed,
    /// A FITS header card rewritten: absurd value, illegal bytes, END removed, escapes.
    MangledCard,
    /// A gzip stream: of a damaged FITS file, cut short, or of random bytes.
    Gzip,
}

impl MutationKind {
    /// Every kind, in report order.
    pub const ALL: [MutationKind; 6] = [
        MutationKind::Original,
        MutationKind::Truncated,
        MutationKind::BitFlip,
        MutationKind::Zeroed,
        MutationKind::MangledCard,
        MutationKind::Gzip,
    ];

    /// The name used in file names and reports.
    pub fn name(self) -> &'static str {
        match self {
            MutationKind::Original => "original",
            MutationKind::Truncated => "truncated",
            MutationKind::BitFlip => "bit_flip",
            MutationKind::Zeroed => "zeroed",
            MutationKind::MangledCard => "mangled_card",
            MutationKind::Gzip => "gzip",
        }
    }
}

/// One damaged file.
#[derive(Debug, Clone, Serialize)]
pub struct Case {
    /// File name to write it under (unique within a corpus).
    pub name: String,
    /// The source file's name.
    pub source: String,
    /// The source's format.
    pub format: Format,
    /// What kind of damage.
    pub kind: MutationKind,
    /// Exactly what was done, e.g. `truncated at byte 8640 (inside the header of HDU 1)`.
    pub detail: String,
    /// The damaged file is itself a valid, shorter file (a FITS file cut exactly where an
    /// extension starts): no reader can know more HDUs were there.
    pub valid_shorter_file: bool,
    /// The damaged bytes.
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

/// Damaged copies of one source file: `per_source` cases (plus the original and, for FITS,
/// its gzip copy), chosen by `seed` — the same seed, source and count give the same cases.
///
/// Structured mutations (every header's truncation points, every steering card's absurd
/// value, every header block zeroed, every HDF5 metadata signature hit) are listed first and
/// sampled; random flips, zeroings and truncations fill the rest.
pub fn damaged_copies(source_name: &str, bytes: &[u8], seed: u64, per_source: usize) -> Vec<Case> {
    let Some(format) = Format::of(bytes) else {
        return Vec::new();
    };
    let mut rng = Pcg64::seed_from_u64(seed ^ fnv1a(source_name.as_bytes()));
    let stem = source_name
        .rsplit_once('.')
        .map(|(s, _)| s)
        .unwrap_or(source_name)
        .trim_end_matches(".fits");
    let mut planned: Vec<Plan> = match format {
        Format::Fits => fits_plans(bytes),
        Format::Hdf5 => hdf5_plans(bytes),
    };
    planned.shuffle(&mut rng);
    // Half structured (where readers are steered), half random (what a disk does).
    planned.truncate(per_source.div_ceil(2));
    while planned.len() < per_source {
        planned.push(random_plan(format, bytes, &mut rng));
    }

    let mut cases = vec![Case {
        name: format!("{stem}.original.{}", format.extension()),
        source: source_name.to_string(),
        format,
        kind: MutationKind::Original,
        detail: "undamaged".into(),
        valid_shorter_file: false,
        bytes: bytes.to_vec(),
    }];
    if format == Format::Fits {
        cases.push(Case {
            name: format!("{stem}.original.fits.gz"),
            source: source_name.to_string(),
            format,
            kind: MutationKind::Original,
            detail: "undamaged, gzip-compressed".into(),
            valid_shorter_file: false,
            bytes: gzip(bytes),
        });
    }
    let hdu_starts: Vec<usize> = match format {
        Format::Fits => fits_headers(bytes).iter().map(|h| h.start).collect(),
        Format::Hdf5 => Vec::new(),
    };
    for (n, plan) in planned.into_iter().enumerate() {
        let (kind, detail, damaged) = plan.apply(bytes);
        let valid_shorter_file =
            matches!(plan.op, Op::Truncate { at, .. } if hdu_starts.contains(&at));
        let ext = if plan.gzipped {
            "fits.gz"
        } else {
            format.extension()
        };
        cases.push(Case {
            name: format!("{stem}.{}-{n:03}.{ext}", kind.name()),
            source: source_name.to_string(),
            format,
            kind,
            detail,
            valid_shorter_file,
            bytes: damaged,
        });
    }
    cases
}

/// A gzip stream of random bytes, and one cut short: what `file.fits.gz` is after a failed
/// download. Not tied to a source.
pub fn broken_gzip_streams(seed: u64) -> Vec<Case> {
    let mut rng = Pcg64::seed_from_u64(seed ^ 0x67a1);
    let mut random = vec![0u8; 64 * 1024];
    rng.fill(&mut random[..]);
    let mut header_then_random = vec![0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 3];
    header_then_random.extend_from_slice(&random[..32 * 1024]);
    let mut fits_like = b"SIMPLE  =                    T".to_vec();
    fits_like.resize(BLOCK * 4, b' ');
    let whole = gzip(&fits_like);
    let cut = whole[..whole.len() / 2].to_vec();
    let mk = |name: &str, detail: &str, bytes: Vec<u8>| Case {
        name: name.to_string(),
        source: "(none)".into(),
        format: Format::Fits,
        kind: MutationKind::Gzip,
        detail: detail.to_string(),
        valid_shorter_file: false,
        bytes,
    };
    vec![
        mk(
            "random.gzip-000.fits.gz",
            "gzip header followed by random bytes",
            header_then_random,
        ),
        mk(
            "random.gzip-001.fits.gz",
            "gzip of random bytes (not FITS)",
            gzip(&random),
        ),
        mk("cut.gzip-002.fits.gz", "gzip stream cut in half", cut),
    ]
}

/// Gzip-compress (what `gzip -6` would write).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    enc.write_all(bytes).expect("writing to memory");
    enc.finish().expect("writing to memory")
}

/// One planned mutation, applied to the source's bytes.
#[derive(Debug, Clone)]
struct Plan {
    op: Op,
    gzipped: bool,
}

#[derive(Debug, Clone)]
enum Op {
    Truncate {
        at: usize,
        why: String,
    },
    Flip {
        at: usize,
        bit: u8,
        why: String,
    },
    Zero {
        start: usize,
        len: usize,
        why: String,
    },
    /// Replace the 80-byte card at `at` with `card`.
    Card {
        at: usize,
        card: Vec<u8>,
        why: String,
    },
}

impl Plan {
    fn apply(&self, src: &[u8]) -> (MutationKind, String, Vec<u8>) {
        let (kind, detail, out) = match &self.op {
            Op::Truncate { at, why } => (
                MutationKind::Truncated,
                format!("cut at byte {at} ({why})"),
                src[..*at].to_vec(),
            ),
            Op::Flip { at, bit, why } => {
                let mut out = src.to_vec();
                out[*at] ^= 1 << bit;
                (
                    MutationKind::BitFlip,
                    format!("bit {bit} of byte {at} flipped ({why})"),
                    out,
                )
            }
            Op::Zero { start, len, why } => {
                let mut out = src.to_vec();
                let end = (start + len).min(out.len());
                out[*start..end].fill(0);
                (
                    MutationKind::Zeroed,
                    format!("bytes {start}..{end} zeroed ({why})"),
                    out,
                )
            }
            Op::Card { at, card, why } => {
                let mut out = src.to_vec();
                out[*at..at + CARD].copy_from_slice(card);
                let shown = String::from_utf8_lossy(card)
                    .trim_end()
                    .escape_debug()
                    .to_string();
                (
                    MutationKind::MangledCard,
                    format!("card at byte {at} → `{shown}` ({why})"),
                    out,
                )
            }
        };
        if self.gzipped {
            (MutationKind::Gzip, format!("gzip of: {detail}"), gzip(&out))
        } else {
            (kind, detail, out)
        }
    }
}

/// One FITS header: where it starts and where its data begin.
struct FitsHeader {
    start: usize,
    data_start: usize,
    /// (byte offset, keyword) of every card before END.
    cards: Vec<(usize, String)>,
    end_card: Option<usize>,
}

fn fits_headers(bytes: &[u8]) -> Vec<FitsHeader> {
    let mut out = Vec::new();
    for start in (0..bytes.len()).step_by(BLOCK) {
        if !(start == 0 && bytes.starts_with(b"SIMPLE  =")
            || bytes[start..].starts_with(b"XTENSION="))
        {
            continue;
        }
        let mut cards = Vec::new();
        let mut end_card = None;
        let mut at = start;
        while at + CARD <= bytes.len() {
            let key = String::from_utf8_lossy(&bytes[at..at + 8])
                .trim_end()
                .to_string();
            if key == "END" {
                end_card = Some(at);
                break;
            }
            cards.push((at, key));
            at += CARD;
        }
        let data_start = end_card
            .map_or(bytes.len(), |e| (e / BLOCK + 1) * BLOCK)
            .min(bytes.len());
        out.push(FitsHeader {
            start,
            data_start,
            cards,
            end_card,
        });
    }
    out
}

fn card(key: &str, value: &str) -> Vec<u8> {
    let mut c = format!("{key:<8}= {value:>20}").into_bytes();
    c.resize(CARD, b' ');
    c
}

/// Every structured FITS mutation: truncations at the points readers steer by, absurd values
/// of every card that sizes or types data, illegal bytes, a removed END, terminal escapes,
/// every header block zeroed.
fn fits_plans(bytes: &[u8]) -> Vec<Plan> {
    let headers = fits_headers(bytes);
    let mut plans = Vec::new();
    let plain = |op| Plan { op, gzipped: false };
    for (h, hdr) in headers.iter().enumerate() {
        let next = headers.get(h + 1).map_or(bytes.len(), |n| n.start);
        // Truncations: inside the header, at the start of the data, inside the data.
        for (at, why) in [
            (
                hdr.start + CARD * 5 + 17,
                format!("inside the header of HDU {h}"),
            ),
            (hdr.data_start, format!("where the data of HDU {h} start")),
            (
                (hdr.data_start + next) / 2,
                format!("in the middle of the data of HDU {h}"),
            ),
            (
                next.saturating_sub(1),
                format!("one byte short of the end of HDU {h}"),
            ),
        ] {
            if at > 0 && at < bytes.len() {
                plans.push(plain(Op::Truncate { at, why }));
            }
        }
        plans.push(plain(Op::Zero {
            start: hdr.start,
            len: BLOCK,
            why: format!("the first header block of HDU {h}"),
        }));
        if let Some(end) = hdr.end_card {
            plans.push(plain(Op::Card {
                at: end,
                card: vec![b' '; CARD],
                why: format!("END of HDU {h} removed"),
            }));
        }
        for (at, key) in &hdr.cards {
            let absurd: &[(&str, &str)] = match key.as_str() {
                "BITPIX" => &[("7", "BITPIX not a FITS type"), ("-16", "BITPIX -16")],
                "NAXIS" => &[("999", "NAXIS 999"), ("-1", "negative NAXIS")],
                "NAXIS1" | "NAXIS2" | "ZNAXIS1" | "ZNAXIS2" => &[
                    ("2147483647", "axis length 2^31-1"),
                    ("-5", "negative axis length"),
                    ("0", "zero axis length"),
                ],
                "ZTILE1" | "ZTILE2" => &[("0", "zero tile size"), ("-1", "negative tile size")],
                "ZBITPIX" => &[("13", "ZBITPIX not a FITS type")],
                "ZCMPTYPE" => &[("'NOSUCH_1'", "unknown compression")],
                "TFIELDS" => &[
                    ("999", "more columns than cards"),
                    ("-2", "negative TFIELDS"),
                ],
                "PCOUNT" => &[
                    ("-1", "negative heap size"),
                    ("2147483647", "heap of 2^31-1 bytes"),
                ],
                "GCOUNT" => &[("0", "GCOUNT 0"), ("7", "GCOUNT 7")],
                "THEAP" => &[
                    ("2147483647", "heap offset 2^31-1"),
                    ("-8", "negative THEAP"),
                ],
                "TFORM1" | "TFORM2" => &[
                    ("'QQ'", "TFORM not a type"),
                    ("'999999999E'", "repeat of 10^9"),
                    ("'1PE(2147483647)'", "heap array of 2^31-1"),
                ],
                "TDIM1" | "TDIM2" => &[("'(999,999)'", "TDIM larger than the field")],
                "BSCALE" | "BZERO" => &[("'abc'", "non-numeric scaling")],
                "BLANK" => &[("'x'", "non-integer BLANK")],
                "XTENSION" => &[("'FOOBAR'", "unknown extension type")],
                "EXTEND" | "SIMPLE" => &[("X", "logical that is neither T nor F")],
                _ => &[],
            };
            for (value, why) in absurd {
                let op = Op::Card {
                    at: *at,
                    card: card(key, value),
                    why: format!("{why}, HDU {h}"),
                };
                plans.push(plain(op.clone()));
                // A .fits.gz whose header lies about sizes must not be decompressed blindly.
                if why.contains("2^31") {
                    plans.push(Plan { op, gzipped: true });
                }
            }
        }
        // Illegal bytes and terminal escapes in the last card before END (a comment or history
        // card in most files; astropy warns and reads on).
        if let Some((at, _)) = hdr.cards.last() {
            let odd: [(&[u8], &str); 3] = [
                (
                    b"COMMENT \x1b]0;owned\x07\x1b[2J escape sequences in a comment",
                    "control bytes",
                ),
                (
                    b"HISTORY \xff\xfe non-ASCII bytes in a history card \xe9",
                    "non-ASCII bytes",
                ),
                (
                    b"BAD KEY = 'value with a space in the keyword'",
                    "illegal keyword",
                ),
            ];
            for (text, why) in odd {
                let mut c = text.to_vec();
                c.resize(CARD, b' ');
                plans.push(plain(Op::Card {
                    at: *at,
                    card: c,
                    why: format!("{why}, HDU {h}"),
                }));
            }
        }
    }
    plans
}

/// HDF5 metadata records start with these signatures (superblock v2+, object header v2,
/// B-trees, local and fractal heaps, symbol-table nodes, the global heap).
const HDF5_RECORDS: [&[u8]; 9] = [
    b"\x89HDF", b"OHDR", b"OCHK", b"TREE", b"HEAP", b"SNOD", b"BTHD", b"FRHP", b"GCOL",
];

fn hdf5_plans(bytes: &[u8]) -> Vec<Plan> {
    let mut plans = Vec::new();
    let plain = |op| Plan { op, gzipped: false };
    let mut records = Vec::new();
    for at in 0..bytes.len().saturating_sub(4) {
        if HDF5_RECORDS.iter().any(|sig| bytes[at..].starts_with(sig)) {
            records.push(at);
        }
    }
    for &at in &records {
        let sig = String::from_utf8_lossy(&bytes[at..at + 4])
            .escape_debug()
            .to_string();
        let why = format!("{sig} record at byte {at}");
        plans.push(plain(Op::Zero {
            start: at,
            len: 64,
            why: why.clone(),
        }));
        // The bytes after a signature are versions, sizes and addresses.
        for off in [4usize, 5, 8, 12, 16, 24] {
            if at + off < bytes.len() {
                plans.push(plain(Op::Flip {
                    at: at + off,
                    bit: 6,
                    why: format!("{why} + {off}"),
                }));
            }
        }
        if at > 0 {
            plans.push(plain(Op::Truncate {
                at: at + 16,
                why: format!("inside the {why}"),
            }));
        }
    }
    // The superblock and the root group's object header (version 0/1 files have no signature
    // on object headers; they follow the superblock).
    for start in (0..bytes.len().min(4096)).step_by(512) {
        plans.push(plain(Op::Zero {
            start,
            len: 512,
            why: "an early metadata block".into(),
        }));
    }
    plans
}

fn random_plan(format: Format, bytes: &[u8], rng: &mut Pcg64) -> Plan {
    // Steering bytes: FITS headers, the first 8 KiB of HDF5 (superblock, root group,
    // usually most object headers).
    let steering: Vec<(usize, usize)> = match format {
        Format::Fits => fits_headers(bytes)
            .iter()
            .map(|h| (h.start, h.data_start))
            .collect(),
        Format::Hdf5 => vec![(0, bytes.len().min(8192))],
    };
    let pick = |rng: &mut Pcg64| -> (usize, &'static str) {
        if rng.random_bool(0.6) {
            let (a, b) = steering[rng.random_range(0..steering.len())];
            (
                rng.random_range(a..b.max(a + 1)).min(bytes.len() - 1),
                "metadata",
            )
        } else {
            (rng.random_range(0..bytes.len()), "anywhere")
        }
    };
    let op = match rng.random_range(0..3) {
        0 => {
            let (at, why) = pick(rng);
            Op::Flip {
                at,
                bit: rng.random_range(0..8),
                why: format!("random, {why}"),
            }
        }
        1 => {
            let (at, why) = pick(rng);
            let len = if format == Format::Fits { BLOCK } else { 512 };
            let start = at / len * len;
            Op::Zero {
                start,
                len,
                why: format!("random block, {why}"),
            }
        }
        _ => Op::Truncate {
            at: rng.random_range(1..bytes.len()),
            why: "random".into(),
        },
    };
    Plan { op, gzipped: false }
}

/// FNV-1a: a stable hash of the source name, so a source's cases do not depend on which
/// other sources are in the corpus.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fits_file() -> Vec<u8> {
        let mut b = Vec::new();
        for c in [
            "SIMPLE  =                    T",
            "BITPIX  =                    8",
            "NAXIS   =                    1",
            "NAXIS1  =                   10",
            "END",
        ] {
            let mut c = c.as_bytes().to_vec();
            c.resize(CARD, b' ');
            b.extend(c);
        }
        b.resize(BLOCK, b' ');
        b.extend(std::iter::repeat_n(7u8, 10));
        b.resize(2 * BLOCK, 0);
        b
    }

    #[test]
    fn same_seed_same_cases_and_every_case_differs_from_the_source() {
        let src = fits_file();
        let a = damaged_copies("x.fits", &src, 7, 20);
        let b = damaged_copies("x.fits", &src, 7, 20);
        assert_eq!(a.len(), 22, "original, its gzip copy and 20 damaged");
        for (x, y) in a.iter().zip(&b) {
            assert_eq!((x.name.as_str(), &x.bytes), (y.name.as_str(), &y.bytes));
        }
        for c in a.iter().filter(|c| c.kind != MutationKind::Original) {
            assert_ne!(c.bytes, src, "{} is not damaged", c.detail);
        }
        let other = damaged_copies("x.fits", &src, 8, 20);
        assert!(a.iter().zip(&other).any(|(x, y)| x.bytes != y.bytes));
    }

    #[test]
    fn fits_mangles_hit_the_sizing_cards() {
        let plans = fits_plans(&fits_file());
        let details: Vec<String> = plans.iter().map(|p| p.apply(&fits_file()).1).collect();
        assert!(
            details
                .iter()
                .any(|d| d.contains("NAXIS1  =           2147483647")),
            "{details:?}"
        );
        assert!(details.iter().any(|d| d.contains("END of HDU 0 removed")));
        assert!(plans.iter().any(|p| p.gzipped));
    }

    #[test]
    fn formats_are_sniffed() {
        assert_eq!(Format::of(&fits_file()), Some(Format::Fits));
        let mut h5 = vec![0u8; 600];
        h5[512..520].copy_from_slice(HDF5_SIGNATURE);
        assert_eq!(Format::of(&h5), Some(Format::Hdf5));
        assert_eq!(Format::of(b"hello"), None);
    }
}
