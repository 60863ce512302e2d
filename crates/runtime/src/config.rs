//! Layered TOML configuration: defaults, then each `-c FILE` in order, then each
//! `--set section.key=value`; later sources win. Unknown keys and wrong types are errors that
//! name the key, the file (or `--set`) it came from, and the nearest valid key; ranges are
//! checked by [`Validate::validate`] before any work starts. `--dump-config` prints the
//! result with each key's doc comment above it ([`Resolved::to_toml`]).
//!
//! ```
//! use deepsky_runtime::config::{self, ConfigError, Validate};
//! use schemars::JsonSchema;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, JsonSchema, Default, Debug)]
//! #[serde(default, deny_unknown_fields)]
//! struct Train {
//!     /// Passes over the training set.
//!     epochs: u32,
//! }
//!
//! #[derive(Serialize, Deserialize, JsonSchema, Default, Debug)]
//! #[serde(default, deny_unknown_fields)]
//! struct Config {
//!     /// The training loop.
//!     train: Train,
//! }
//!
//! impl Validate for Config {
//!     fn validate(&self) -> Result<(), ConfigError> {
//!         config::ensure(self.train.epochs > 0, "train.epochs", "must be at least 1")
//!     }
//! }
//!
//! let resolved = config::load::<Config>(&[], &["train.epochs=5".to_string()]).unwrap();
//! assert_eq!(resolved.config.train.epochs, 5);
//! assert!(resolved.to_toml().contains("# Passes over the training set.\nepochs = 5"));
//! let err = config::load::<Config>(&[], &["train.epoch=5".to_string()]).unwrap_err();
//! assert!(err.to_string().contains("did you mean `train.epochs`"));
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::RunError;

pub use deepsky_core::config::{ensure, ConfigError, Validate};

/// A pipeline's configuration: serde with defaults (`#[serde(default, deny_unknown_fields)]`
/// on every struct), range checks ([`Validate`], keys named from the top of the file), and a
/// JSON schema whose descriptions are the structs' doc comments (what `--dump-config` prints
/// beside each key). Implemented for every type that has all four.
pub trait PipelineConfig: Serialize + DeserializeOwned + Default + Validate + JsonSchema {}

impl<C: Serialize + DeserializeOwned + Default + Validate + JsonSchema> PipelineConfig for C {}

impl From<ConfigError> for RunError {
    fn from(e: ConfigError) -> Self {
        RunError::Input(e.to_string())
    }
}

/// A configuration after layering and checking.
#[derive(Debug, Clone)]
pub struct Resolved<C> {
    /// The typed, validated configuration.
    pub config: C,
    /// Where it came from, in order of application: `defaults`, file paths, `--set k=v`.
    pub sources: Vec<String>,
    /// SHA-256 of the resolved configuration (its canonical JSON), hex.
    pub hash: String,
}

impl<C: Serialize + JsonSchema> Resolved<C> {
    /// The resolved configuration as TOML, every key present and each preceded by its doc
    /// comment (what `--dump-config` prints; itself a valid config file).
    pub fn to_toml(&self) -> String {
        to_documented_toml(&self.config)
    }
}

impl<C: Serialize> Resolved<C> {
    /// The resolved configuration as JSON, for provenance.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).unwrap_or(serde_json::Value::Null)
    }
}

/// A configuration as TOML text.
pub fn to_toml<C: Serialize>(config: &C) -> String {
    toml::to_string_pretty(config).unwrap_or_else(|e| format!("# cannot show config: {e}\n"))
}

/// A configuration as TOML text with each section and key preceded by its documentation, as
/// `# ` comment lines: the first paragraph of the field's doc comment, taken from the type's
/// JSON schema (so the text a developer writes on a field is the text a user reads).
pub fn to_documented_toml<C: Serialize + JsonSchema>(config: &C) -> String {
    let plain = to_toml(config);
    let Ok(mut doc) = plain.parse::<toml_edit::DocumentMut>() else {
        return plain;
    };
    let schema = schemars::schema_for!(C);
    let root = schema.as_value();
    annotate(doc.as_table_mut(), root, root);
    let text = doc.to_string();
    text.strip_prefix('\n').map(str::to_string).unwrap_or(text)
}

/// The schema behind `$ref`s and the non-null branch of `Option`s.
fn resolve<'a>(
    schema: &'a serde_json::Value,
    root: &'a serde_json::Value,
) -> &'a serde_json::Value {
    if let Some(target) = schema.get("$ref").and_then(|r| r.as_str()) {
        let name = target.rsplit('/').next().unwrap_or_default();
        if let Some(def) = root.get("$defs").and_then(|d| d.get(name)) {
            return resolve(def, root);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(branches) = schema.get(key).and_then(|b| b.as_array()) {
            if let Some(b) = branches
                .iter()
                .find(|b| b.get("type").and_then(|t| t.as_str()) != Some("null"))
            {
                return resolve(b, root);
            }
        }
    }
    schema
}

/// The first paragraph of a schema's documentation, as `# ` comment lines of at most about
/// 96 characters.
fn comment(schema: Option<&serde_json::Value>) -> String {
    let Some(schema) = schema else {
        return String::new();
    };
    let text = ["title", "description"]
        .iter()
        .find_map(|k| schema.get(*k).and_then(|v| v.as_str()))
        .unwrap_or_default();
    let first = text.split("\n\n").next().unwrap_or_default();
    let words: Vec<&str> = first.split_whitespace().collect();
    let mut out = String::new();
    let mut line = String::new();
    for w in words {
        if !line.is_empty() && line.len() + 1 + w.len() > 96 {
            out.push_str(&format!("# {line}\n"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(w);
    }
    if !line.is_empty() {
        out.push_str(&format!("# {line}\n"));
    }
    out
}

fn annotate(table: &mut toml_edit::Table, schema: &serde_json::Value, root: &serde_json::Value) {
    let props = resolve(schema, root).get("properties");
    for (mut key, item) in table.iter_mut() {
        let prop = props.and_then(|p| p.get(key.get()));
        let doc = comment(prop);
        match item {
            toml_edit::Item::Table(t) => {
                t.decor_mut().set_prefix(format!("\n{doc}"));
                if let Some(p) = prop {
                    annotate(t, p, root);
                }
            }
            toml_edit::Item::ArrayOfTables(tables) => {
                let items = prop.map(|p| resolve(p, root)).and_then(|p| p.get("items"));
                for (i, t) in tables.iter_mut().enumerate() {
                    if i == 0 {
                        t.decor_mut().set_prefix(format!("\n{doc}"));
                    }
                    if let Some(items) = items {
                        annotate(t, items, root);
                    }
                }
            }
            _ => {
                if !doc.is_empty() {
                    key.leaf_decor_mut().set_prefix(doc);
                }
            }
        }
    }
}

/// SHA-256 (hex) of a configuration's canonical JSON.
pub fn hash<C: Serialize>(config: &C) -> String {
    let json = serde_json::to_string(config).unwrap_or_default();
    hex(&Sha256::digest(json.as_bytes()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Layer defaults, `files` (in order) and `sets` (`section.key=value`, the value in TOML
/// syntax, bare words taken as strings), then deserialize and validate.
pub fn load<C: PipelineConfig>(
    files: &[PathBuf],
    sets: &[String],
) -> Result<Resolved<C>, ConfigError> {
    let mut merged = toml::Table::new();
    let mut origin: BTreeMap<String, String> = BTreeMap::new();
    let mut sources = vec!["defaults".to_string()];
    for file in files {
        let table = read_table(file)?;
        let source = file.display().to_string();
        merge(&mut merged, table, "", &source, &mut origin);
        sources.push(source);
    }
    for set in sets {
        let (key, table) = parse_set(set)?;
        let source = format!("--set {set}");
        merge(&mut merged, table, "", &source, &mut origin);
        origin.insert(key, source.clone());
        sources.push(source);
    }
    let config: C = deserialize(merged, &origin)?;
    config.validate().map_err(|mut e| {
        if e.source.is_none() {
            e.source = origin.get(&e.key).cloned();
        }
        e
    })?;
    let hash = hash(&config);
    Ok(Resolved {
        config,
        sources,
        hash,
    })
}

fn read_table(file: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|e| ConfigError {
        key: String::new(),
        source: Some(file.display().to_string()),
        message: format!("cannot read: {e}"),
    })?;
    text.parse::<toml::Table>().map_err(|e| ConfigError {
        key: String::new(),
        source: Some(file.display().to_string()),
        message: format!("not valid TOML: {}", one_line(&e.to_string())),
    })
}

/// Collapse a multi-line parser message (toml quotes the offending line) into one line.
fn one_line(message: &str) -> String {
    let mut parts: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with('|') && !l.chars().all(|c| c == '^' || c == ' ')
        })
        .collect();
    parts.dedup();
    parts.join(" ")
}

fn parse_set(set: &str) -> Result<(String, toml::Table), ConfigError> {
    let bad = |m: &str| ConfigError {
        key: String::new(),
        source: Some(format!("--set {set}")),
        message: m.to_string(),
    };
    let (key, value) = set
        .split_once('=')
        .ok_or_else(|| bad("expected section.key=value"))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(|k| k.trim().is_empty()) {
        return Err(bad("expected section.key=value"));
    }
    let value = value.trim();
    // TOML syntax first (numbers, booleans, quoted strings, arrays); a bare word is a string.
    let parsed = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let mut parts: Vec<&str> = key.split('.').map(str::trim).collect();
    let last = parts.pop().expect("non-empty key");
    let mut table = toml::Table::new();
    table.insert(last.to_string(), parsed);
    for part in parts.iter().rev() {
        let mut outer = toml::Table::new();
        outer.insert(part.to_string(), toml::Value::Table(table));
        table = outer;
    }
    Ok((key.to_string(), table))
}

fn merge(
    into: &mut toml::Table,
    from: toml::Table,
    prefix: &str,
    source: &str,
    origin: &mut BTreeMap<String, String>,
) {
    for (key, value) in from {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(existing)), toml::Value::Table(new)) => {
                merge(existing, new, &path, source, origin);
            }
            (_, value) => {
                record_origin(&value, &path, source, origin);
                into.insert(key, value);
            }
        }
    }
}

fn record_origin(
    value: &toml::Value,
    path: &str,
    source: &str,
    origin: &mut BTreeMap<String, String>,
) {
    origin.insert(path.to_string(), source.to_string());
    if let toml::Value::Table(t) = value {
        for (k, v) in t {
            record_origin(v, &format!("{path}.{k}"), source, origin);
        }
    }
}

fn deserialize<C: DeserializeOwned>(
    merged: toml::Table,
    origin: &BTreeMap<String, String>,
) -> Result<C, ConfigError> {
    let value = toml::Value::Table(merged);
    serde_path_to_error::deserialize::<_, C>(value).map_err(|err| {
        let path = err.path().to_string();
        let parent: Vec<&str> = path
            .split('.')
            .filter(|p| !p.is_empty() && *p != "?")
            .collect();
        let message = err.inner().to_string();
        let message = one_line(&message);
        if let Some((field, expected)) = unknown_field(&message) {
            // serde_path_to_error stops at the map that holds the unknown key.
            let mut parent = parent.clone();
            if parent.last() == Some(&field.as_str()) {
                parent.pop();
            }
            let prefix = parent.join(".");
            let full = |k: &str| {
                if prefix.is_empty() {
                    k.to_string()
                } else {
                    format!("{prefix}.{k}")
                }
            };
            let key = full(&field);
            let hint = nearest(&field, &expected)
                .map(|n| format!("did you mean `{}`?", full(n)))
                .unwrap_or_else(|| {
                    format!(
                        "valid keys here: {}",
                        expected
                            .iter()
                            .map(|e| format!("`{}`", full(e)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                });
            ConfigError {
                source: lookup_origin(origin, &key),
                key,
                message: format!("unknown key; {hint}"),
            }
        } else {
            let key = parent.join(".");
            ConfigError {
                source: lookup_origin(origin, &key),
                key,
                message,
            }
        }
    })
}

fn lookup_origin(origin: &BTreeMap<String, String>, key: &str) -> Option<String> {
    let mut k = key.to_string();
    loop {
        if let Some(s) = origin.get(&k) {
            return Some(s.clone());
        }
        match k.rfind('.') {
            Some(i) => k.truncate(i),
            None => return None,
        }
    }
}

/// Parse serde's "unknown field `x`, expected one of `a`, `b`" (or "expected `a`", or
/// "there are no fields").
fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let end = rest.find('`')?;
    let field = rest[..end].to_string();
    let expected: Vec<String> = rest[end + 1..]
        .split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_string())
        .collect();
    if message.starts_with("unknown variant") {
        return None;
    }
    Some((field, expected))
}

/// The valid key closest to `key`, if one is close enough to be a likely typo.
pub fn nearest<'a>(key: &str, valid: &'a [String]) -> Option<&'a str> {
    valid
        .iter()
        .map(|v| (strsim::levenshtein(key, v), v))
        .filter(|(d, v)| *d <= (v.len().max(key.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, JsonSchema, Debug, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Train {
        /// Passes over the training set.
        epochs: u32,
        /// Base learning rate: long enough a sentence to be wrapped over more than one comment
        /// line when it is printed above its key.
        ///
        /// A second paragraph that is not printed.
        lr: f64,
    }
    impl Default for Train {
        fn default() -> Self {
            Train {
                epochs: 10,
                lr: 1e-3,
            }
        }
    }
    #[derive(Serialize, Deserialize, JsonSchema, Debug, PartialEq, Default)]
    #[serde(default, deny_unknown_fields)]
    struct Cfg {
        /// Run name.
        name: String,
        /// The training loop.
        train: Train,
    }
    impl Validate for Cfg {
        fn validate(&self) -> Result<(), ConfigError> {
            ensure(self.train.lr > 0.0, "train.lr", "must be positive")
        }
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn layers_files_then_sets() {
        let dir = tempfile::tempdir().unwrap();
        let base = write(
            dir.path(),
            "base.toml",
            "name = \"a\"\n[train]\nepochs = 3\nlr = 0.5\n",
        );
        let run = write(dir.path(), "run.toml", "[train]\nepochs = 7\n");
        let r = load::<Cfg>(&[base.clone(), run], &["train.lr=0.25".into()]).unwrap();
        assert_eq!(r.config.name, "a");
        assert_eq!(
            r.config.train,
            Train {
                epochs: 7,
                lr: 0.25
            }
        );
        assert_eq!(r.sources.len(), 4);
        // Defaults fill what no source sets.
        let r2 = load::<Cfg>(&[], &[]).unwrap();
        assert_eq!(r2.config.train.epochs, 10);
        assert_ne!(r.hash, r2.hash);
        assert_eq!(r2.hash, load::<Cfg>(&[], &[]).unwrap().hash);
        // Dumped config reloads to the same value.
        let dumped = write(dir.path(), "dump.toml", &r.to_toml());
        assert_eq!(load::<Cfg>(&[dumped], &[]).unwrap().config, r.config);
    }

    #[test]
    fn dump_has_each_keys_first_doc_paragraph_above_it() {
        let text = load::<Cfg>(&[], &[]).unwrap().to_toml();
        let expect = "# Run name.\nname = \"\"\n\n# The training loop.\n[train]\n\
                      # Passes over the training set.\nepochs = 10\n\
                      # Base learning rate: long enough a sentence to be wrapped over more than one comment line when it\n\
                      # is printed above its key.\nlr = 0.001\n";
        assert_eq!(text, expect);
        assert!(!text.contains("second paragraph"));
    }

    #[test]
    fn unknown_key_names_file_and_nearest() {
        let dir = tempfile::tempdir().unwrap();
        let run = write(dir.path(), "run.toml", "[train]\nepoch = 7\n");
        let e = load::<Cfg>(&[run], &[]).unwrap_err();
        assert_eq!(e.key, "train.epoch");
        assert!(e.source.as_deref().unwrap().ends_with("run.toml"));
        let s = e.to_string();
        assert!(s.contains("did you mean `train.epochs`"), "{s}");
        let e = load::<Cfg>(&[], &["trian.epochs=3".into()]).unwrap_err();
        assert!(e.to_string().contains("did you mean `train`"), "{e}");
        assert!(e.to_string().contains("--set trian.epochs=3"), "{e}");
    }

    #[test]
    fn wrong_type_and_range_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let run = write(dir.path(), "run.toml", "[train]\nepochs = \"many\"\n");
        let e = load::<Cfg>(&[run.clone()], &[]).unwrap_err();
        assert_eq!(e.key, "train.epochs");
        assert_eq!(
            e.source.as_deref(),
            Some(run.display().to_string().as_str())
        );
        assert!(e.message.contains("invalid type"), "{e}");
        let e = load::<Cfg>(&[], &["train.lr=-1".into()]).unwrap_err();
        assert_eq!(e.key, "train.lr");
        assert!(e.to_string().contains("must be positive"));
        assert!(e.to_string().contains("--set"), "{e}");
        let bad = write(dir.path(), "bad.toml", "[train\n");
        let e = load::<Cfg>(&[bad], &[]).unwrap_err();
        assert!(e.to_string().contains("not valid TOML"));
        assert!(!e.to_string().contains('\n'));
    }
}
