//! FITS header cards: parsing every card of a header, and the values writers put in.

use serde::{Serialize, Serializer};

/// A header card's value.
#[derive(Debug, Clone, PartialEq)]
pub enum CardValue {
    /// A quoted string, without its quotes and trailing blanks.
    Str(String),
    /// An integer.
    Int(i64),
    /// A real number.
    Float(f64),
    /// `T` or `F`.
    Bool(bool),
    /// A value field that is present but empty (an undefined value).
    Undefined,
    /// Anything else, kept as written (e.g. complex values).
    Raw(String),
}

impl Serialize for CardValue {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            CardValue::Str(v) | CardValue::Raw(v) => s.serialize_str(v),
            CardValue::Int(v) => s.serialize_i64(*v),
            CardValue::Float(v) if v.is_finite() => s.serialize_f64(*v),
            CardValue::Float(v) => s.serialize_str(&v.to_string()),
            CardValue::Bool(v) => s.serialize_bool(*v),
            CardValue::Undefined => s.serialize_none(),
        }
    }
}

impl std::fmt::Display for CardValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CardValue::Str(v) => write!(f, "'{v}'"),
            CardValue::Int(v) => write!(f, "{v}"),
            CardValue::Float(v) => write!(f, "{v:?}"),
            CardValue::Bool(v) => write!(f, "{}", if *v { "T" } else { "F" }),
            CardValue::Undefined => Ok(()),
            CardValue::Raw(v) => write!(f, "{v}"),
        }
    }
}

impl From<&str> for CardValue {
    fn from(v: &str) -> Self {
        CardValue::Str(v.to_string())
    }
}
impl From<String> for CardValue {
    fn from(v: String) -> Self {
        CardValue::Str(v)
    }
}
impl From<f64> for CardValue {
    fn from(v: f64) -> Self {
        CardValue::Float(v)
    }
}
impl From<i64> for CardValue {
    fn from(v: i64) -> Self {
        CardValue::Int(v)
    }
}
impl From<bool> for CardValue {
    fn from(v: bool) -> Self {
        CardValue::Bool(v)
    }
}

/// One 80-character header card.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Card {
    /// The keyword (`NAXIS1`, `COMMENT`, …); empty for a blank card.
    pub key: String,
    /// The value, or None for commentary cards (COMMENT, HISTORY, blank).
    pub value: Option<CardValue>,
    /// The comment after `/`, or the text of a commentary card.
    pub comment: String,
}

impl Card {
    /// A value card to write.
    pub fn new(key: &str, value: impl Into<CardValue>, comment: &str) -> Card {
        Card {
            key: key.to_string(),
            value: Some(value.into()),
            comment: comment.to_string(),
        }
    }

    /// A HISTORY card to write.
    pub fn history(text: &str) -> Card {
        Card {
            key: "HISTORY".into(),
            value: None,
            comment: text.to_string(),
        }
    }

    /// A COMMENT card to write.
    pub fn comment(text: &str) -> Card {
        Card {
            key: "COMMENT".into(),
            value: None,
            comment: text.to_string(),
        }
    }

    /// Parse one card image (up to 80 characters). Errors say what is wrong with it.
    pub fn parse(line: &str) -> std::result::Result<Card, String> {
        if let Some(bad) = line.chars().find(|c| !(' '..='~').contains(c)) {
            return Err(format!(
                "illegal character {bad:?} in card `{}`",
                line.trim_end()
            ));
        }
        let key_field = &line[..line.len().min(8)];
        let key = key_field.trim_end().to_string();
        if let Some(bad) = key
            .chars()
            .find(|c| !(c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
        {
            if !key.starts_with("HIERARCH") {
                return Err(format!("illegal character {bad:?} in keyword `{key}`"));
            }
        }
        let rest = if line.len() > 8 { &line[8..] } else { "" };
        let is_value = rest.starts_with("= ") || rest == "=";
        if key.starts_with("HIERARCH") {
            // HIERARCH long keywords: `HIERARCH A B C = value / comment`.
            if let Some(eq) = line.find('=') {
                let name = line[..eq].trim().to_string();
                let (value, comment) = parse_value(&line[eq + 1..])?;
                return Ok(Card {
                    key: name,
                    value: Some(value),
                    comment,
                });
            }
        }
        if !is_value || matches!(key.as_str(), "COMMENT" | "HISTORY" | "") {
            return Ok(Card {
                key,
                value: None,
                comment: rest.trim_end().to_string(),
            });
        }
        let (value, comment) = parse_value(&rest[1..])?;
        Ok(Card {
            key,
            value: Some(value),
            comment,
        })
    }
}

/// How a card read with [`Card::parse_lenient`] departs from the standard.
#[derive(Debug, Clone, PartialEq)]
pub struct CardIssue {
    /// What is wrong, naming the card's text.
    pub why: String,
    /// True when only the comment (or commentary text) had bytes outside printable ASCII,
    /// now `?`: the keyword and value are as the standard reads them.
    pub text_only: bool,
}

impl Card {
    /// Parse a card that may break the standard, as astropy reads such headers: the card is
    /// kept, with what is wrong for a warning. Bytes outside printable ASCII become `?`, a
    /// lowercase keyword is upper-cased, other illegal keyword characters (`DATE.OBS`) are
    /// kept, and a value that does not parse (`1.2.3`, an unquoted `John Smith`, an
    /// unterminated string) is kept as written ([`CardValue::Raw`]).
    ///
    /// A card whose keyword is illegal even upper-cased *and* whose value does not parse
    /// (`b@d key = 12x4`) is not a convention but damage: that is still an error.
    pub fn parse_lenient(line: &str) -> std::result::Result<(Card, Option<CardIssue>), String> {
        let why = match Card::parse(line) {
            Ok(card) => return Ok((card, None)),
            Err(why) => why,
        };
        let replace = |with: char| -> String {
            line.chars()
                .map(|c| if (' '..='~').contains(&c) { c } else { with })
                .collect()
        };
        let clean = replace('?');
        if let Ok(card) = Card::parse(&clean) {
            // Only bytes outside printable ASCII were wrong. They were in the comment alone
            // when another replacement changes nothing but the comment.
            let text_only = Card::parse(&replace('X'))
                .is_ok_and(|other| other.key == card.key && other.value == card.value);
            let issue = CardIssue { why, text_only };
            return Ok((card, Some(issue)));
        }
        let key_field: String = clean.chars().take(8).collect();
        let key = key_field.trim_end().to_ascii_uppercase();
        let rest: String = clean.chars().skip(8).collect();
        let is_value = rest.starts_with("= ") || rest == "=";
        let issue = Some(CardIssue {
            why: why.clone(),
            text_only: false,
        });
        if !is_value || matches!(key.as_str(), "COMMENT" | "HISTORY" | "") {
            let card = Card {
                key,
                value: None,
                comment: rest.trim_end().to_string(),
            };
            return Ok((card, issue));
        }
        let field = &rest[1..];
        let (value, comment) = match parse_value(field) {
            Ok(v) => v,
            Err(_) if !legal_keyword(&key) => return Err(why),
            Err(_) => {
                let t = field.trim();
                match t.find('/') {
                    Some(i) if !t.starts_with('\'') => (
                        CardValue::Raw(t[..i].trim().to_string()),
                        t[i + 1..].trim().to_string(),
                    ),
                    _ => (CardValue::Raw(t.to_string()), String::new()),
                }
            }
        };
        let card = Card {
            key,
            value: Some(value),
            comment,
        };
        Ok((card, issue))
    }
}

/// Whether a keyword has only the characters the standard allows (A–Z, 0–9, `-`, `_`).
fn legal_keyword(key: &str) -> bool {
    key.chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Parse the value field of a card (after `=`) into a value and a comment.
fn parse_value(field: &str) -> std::result::Result<(CardValue, String), String> {
    let t = field.trim_start();
    if let Some(body) = t.strip_prefix('\'') {
        // A string: '' is an escaped quote; the string ends at a lone quote.
        let mut out = String::new();
        let mut chars = body.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if chars.peek().map(|&(_, n)| n) == Some('\'') {
                    out.push('\'');
                    chars.next();
                } else {
                    end = Some(i + 1);
                    break;
                }
            } else {
                out.push(c);
            }
        }
        let end = end.ok_or_else(|| format!("unterminated string value `{}`", t.trim_end()))?;
        let after = body[end..].trim();
        let comment = after
            .strip_prefix('/')
            .map(|c| c.trim().to_string())
            .unwrap_or_default();
        return Ok((CardValue::Str(out.trim_end().to_string()), comment));
    }
    let (v, comment) = match t.find('/') {
        Some(i) => (t[..i].trim(), t[i + 1..].trim().to_string()),
        None => (t.trim(), String::new()),
    };
    let value = if v.is_empty() {
        CardValue::Undefined
    } else if v == "T" {
        CardValue::Bool(true)
    } else if v == "F" {
        CardValue::Bool(false)
    } else if let Ok(i) = v.parse::<i64>() {
        CardValue::Int(i)
    } else if let Some(f) = super::ffi::parse_number(v) {
        CardValue::Float(f)
    } else if v.starts_with('(') && v.ends_with(')') {
        CardValue::Raw(v.to_string())
    } else {
        return Err(format!("cannot parse value `{v}`"));
    };
    Ok((value, comment))
}

/// All cards of one HDU's header, in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Header {
    cards: Vec<Card>,
}

impl Header {
    /// A header from cards.
    pub fn new(cards: Vec<Card>) -> Header {
        Header { cards }
    }

    /// The cards in order.
    pub fn cards(&self) -> &[Card] {
        &self.cards
    }

    /// The value of the first card with this keyword.
    pub fn get(&self, key: &str) -> Option<&CardValue> {
        self.cards
            .iter()
            .find(|c| c.key == key)
            .and_then(|c| c.value.as_ref())
    }

    /// A numeric value (integers are converted).
    pub fn get_f64(&self, key: &str) -> Option<f64> {
        match self.get(key)? {
            CardValue::Float(v) => Some(*v),
            CardValue::Int(v) => Some(*v as f64),
            _ => None,
        }
    }

    /// A string value.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            CardValue::Str(v) => Some(v),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_value_string_and_commentary_cards() {
        let c = Card::parse("NAXIS1  =                  300 / length of data axis 1").unwrap();
        assert_eq!(c.key, "NAXIS1");
        assert_eq!(c.value, Some(CardValue::Int(300)));
        assert_eq!(c.comment, "length of data axis 1");
        let c = Card::parse("EXTNAME = 'O''HARA  '           / name").unwrap();
        assert_eq!(c.value, Some(CardValue::Str("O'HARA".into())));
        let c = Card::parse("BSCALE  =   4.577776421399600E-02").unwrap();
        assert_eq!(c.value, Some(CardValue::Float(0.045777764213996)));
        let c = Card::parse("SIMPLE  =                    T").unwrap();
        assert_eq!(c.value, Some(CardValue::Bool(true)));
        let c = Card::parse("HISTORY made by deepsky").unwrap();
        assert_eq!(c.value, None);
        assert_eq!(c.comment, "made by deepsky");
    }

    #[test]
    fn lenient_parse_keeps_non_standard_cards() {
        let lenient = |line: &str| Card::parse_lenient(line).unwrap();
        let (c, issue) = lenient("CD1_1   = 1.2.3 / bad number");
        let issue = issue.unwrap();
        assert!(issue.why.contains("1.2.3") && !issue.text_only);
        assert_eq!(c.key, "CD1_1");
        assert_eq!(c.value, Some(CardValue::Raw("1.2.3".into())));
        assert_eq!(c.comment, "bad number");
        let (c, _) = lenient("obsdate = '2001-01-01'");
        assert_eq!(c.key, "OBSDATE");
        assert_eq!(c.value, Some(CardValue::Str("2001-01-01".into())));
        let (c, _) = lenient("DATE.OBS= 51234.5");
        assert_eq!(c.key, "DATE.OBS");
        assert_eq!(c.value, Some(CardValue::Float(51234.5)));
        let (c, _) = lenient("OBJECT  = 'M13 / no end quote");
        assert_eq!(c.value, Some(CardValue::Raw("'M13 / no end quote".into())));
        let (c, issue) = lenient("COMMENT caf\u{e9} \u{1b}[2J");
        assert_eq!(c.comment, "caf? ?[2J");
        assert!(issue.unwrap().text_only);
        let (c, issue) = lenient("NAXIS1  =                  300 / \u{1b}[31mRED");
        assert_eq!(c.value, Some(CardValue::Int(300)));
        assert!(issue.unwrap().text_only);
        let (c, issue) = lenient("OBJECT  = 'caf\u{e9}' / name");
        assert_eq!(c.value, Some(CardValue::Str("caf?".into())));
        assert!(!issue.unwrap().text_only);
        let (c, issue) = lenient("NAXIS1  =                  300");
        assert_eq!((c.value, issue), (Some(CardValue::Int(300)), None));
        // Damage, not a convention: an illegal keyword with a value that does not parse.
        assert!(Card::parse_lenient("b@d key = 12x4  / broken card").is_err());
    }

    #[test]
    fn rejects_corrupt_cards() {
        assert!(Card::parse("NAXIS1  =    3x0 / broken").is_err());
        assert!(Card::parse("na xis  =    3").is_err());
        assert!(Card::parse("OBJECT  = 'no end quote").is_err());
    }
}
