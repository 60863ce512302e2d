//! Checked settings: every settings struct implements [`Validate`], and a problem is a
//! [`ConfigError`] that names the key.
//!
//! A struct names its keys relative to its own section (`epochs`, not `train.epochs`): the same
//! struct can sit under `[train]` in one pipeline and `[images.train]` in another. The parent
//! adds the section with [`ConfigError::within`]; the configuration loader adds the file the key
//! came from. This is linfa's `ParamGuard` idea: parameters are checked before any work starts.

use std::fmt;

/// A configuration problem: which key, from which source, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path (`train.epochs`), relative to the struct that reported it until a parent
    /// adds its section; empty when the problem is the file itself.
    pub key: String,
    /// The file or `--set` the key came from, when known.
    pub source: Option<String>,
    /// What is wrong, one line.
    pub message: String,
}

impl ConfigError {
    /// A problem with `key`.
    pub fn at(key: &str, message: impl fmt::Display) -> ConfigError {
        ConfigError {
            key: key.to_string(),
            source: None,
            message: message.to_string(),
        }
    }

    /// The same problem seen from the enclosing `section`: `epochs` becomes `train.epochs`.
    pub fn within(mut self, section: &str) -> ConfigError {
        self.key = match (section.is_empty(), self.key.is_empty()) {
            (true, _) => self.key,
            (false, true) => section.to_string(),
            (false, false) => format!("{section}.{}", self.key),
        };
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config")?;
        if let Some(s) = &self.source {
            write!(f, " {s}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": `{}`", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// `Ok(())` when `condition` holds, else an error naming `key`.
pub fn ensure(condition: bool, key: &str, message: &str) -> Result<(), ConfigError> {
    if condition {
        Ok(())
    } else {
        Err(ConfigError::at(key, message))
    }
}

/// Settings that can check themselves: ranges and combinations, before any work starts.
pub trait Validate {
    /// `Ok` when every key is usable; otherwise the first problem, its key relative to this
    /// struct.
    fn validate(&self) -> Result<(), ConfigError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_prefixes_the_section_once_per_level() {
        let e = ConfigError::at("beta1", "must be in [0, 1)")
            .within("adamw")
            .within("train")
            .within("");
        assert_eq!(e.key, "train.adamw.beta1");
        assert_eq!(ConfigError::at("", "bad").within("model").key, "model");
    }

    #[test]
    fn display_names_source_key_and_message() {
        let mut e = ConfigError::at("train.epochs", "must be at least 1");
        e.source = Some("run.toml".into());
        assert_eq!(
            e.to_string(),
            "config run.toml: `train.epochs`: must be at least 1"
        );
        assert_eq!(
            ConfigError::at("", "not valid TOML").to_string(),
            "config: not valid TOML"
        );
    }

    #[test]
    fn ensure_passes_and_fails() {
        assert!(ensure(true, "k", "m").is_ok());
        assert_eq!(ensure(false, "k", "m").unwrap_err().key, "k");
    }
}
