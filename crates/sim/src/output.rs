//! Plain output types shared by the simulators: header cards and table columns, which the
//! `deepsky` command turns into FITS/HDF5 with deepsky-io. Keeping them here (not deepsky-io
//! types) keeps the simulators free of file-format dependencies.

/// The value of a FITS header card.
#[derive(Debug, Clone, PartialEq)]
pub enum CardValue {
    /// A real number.
    Float(f64),
    /// An integer.
    Int(i64),
    /// A character string.
    Str(String),
    /// A logical (T/F).
    Bool(bool),
}

/// A header card: (keyword of at most 8 characters, value, comment).
pub type Card = (String, CardValue, String);

pub(crate) fn card(key: &str, value: CardValue, comment: &str) -> Card {
    (key.to_string(), value, comment.to_string())
}

/// A seed as a card value: an integer when it fits FITS's signed 64-bit integers, else a string,
/// so that no seed is silently changed.
pub(crate) fn seed_card(seed: u64) -> CardValue {
    match i64::try_from(seed) {
        Ok(s) => CardValue::Int(s),
        Err(_) => CardValue::Str(seed.to_string()),
    }
}

/// The data of one table column.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    /// 64-bit integers.
    I64(Vec<i64>),
    /// 64-bit floats; NaN marks "not applicable".
    F64(Vec<f64>),
    /// Strings.
    Str(Vec<String>),
}

impl ColumnData {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            ColumnData::I64(v) => v.len(),
            ColumnData::F64(v) => v.len(),
            ColumnData::Str(v) => v.len(),
        }
    }

    /// Whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A table column: (name, unit in FITS notation or "" if dimensionless, description, data).
pub type Column = (&'static str, &'static str, &'static str, ColumnData);
