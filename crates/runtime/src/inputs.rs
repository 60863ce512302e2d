//! The input files of a run over many files (`detect predict --input`, `deepsky submit
//! --input`): files, folders, globs and `@list.txt` files, expanded into one sorted list so
//! that every process (a single run, each Slurm array task, the merge) sees the same files in
//! the same order.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! for name in ["b.fits", "a.fits", "notes.txt"] {
//!     std::fs::write(dir.path().join(name), b"").unwrap();
//! }
//! let glob = dir.path().join("*.fits").display().to_string();
//! let found = deepsky_runtime::inputs::expand(&[glob]).unwrap();
//! assert_eq!(found, [dir.path().join("a.fits"), dir.path().join("b.fits")]);
//! assert_eq!(deepsky_runtime::inputs::stem(&found[0]), "a");
//! ```

use std::path::{Path, PathBuf};

use crate::error::RunError;

/// File names a directory contributes: FITS images.
const FITS_SUFFIXES: [&str; 5] = [".fits", ".fits.gz", ".fit", ".fts", ".fits.fz"];

fn is_fits(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    FITS_SUFFIXES.iter().any(|s| lower.ends_with(s))
}

/// The per-image name used for output folders: the file name without its FITS suffix.
pub fn stem(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    for s in FITS_SUFFIXES {
        if lower.ends_with(s) {
            return name[..name.len() - s.len()].to_string();
        }
    }
    name
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Shell-style match of one path component: `*`, `?`, `[abc]`, `[a-z]`, `[!a]`.
fn glob_match(pat: &[char], name: &[char]) -> bool {
    match pat.first() {
        None => name.is_empty(),
        Some('*') => (0..=name.len()).any(|k| glob_match(&pat[1..], &name[k..])),
        Some('?') => !name.is_empty() && glob_match(&pat[1..], &name[1..]),
        Some('[') => {
            let Some(close) = pat.iter().skip(2).position(|&c| c == ']').map(|p| p + 2) else {
                return name.first() == Some(&'[') && glob_match(&pat[1..], &name[1..]);
            };
            let Some(&c) = name.first() else {
                return false;
            };
            let mut set = &pat[1..close];
            let negate = matches!(set.first(), Some('!') | Some('^'));
            if negate {
                set = &set[1..];
            }
            let mut hit = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == '-' {
                    hit |= set[i] <= c && c <= set[i + 2];
                    i += 3;
                } else {
                    hit |= set[i] == c;
                    i += 1;
                }
            }
            hit != negate && glob_match(&pat[close + 1..], &name[1..])
        }
        Some(&p) => name.first() == Some(&p) && glob_match(&pat[1..], &name[1..]),
    }
}

fn expand_glob(spec: &str) -> Result<Vec<PathBuf>, RunError> {
    let path = Path::new(spec);
    let (dir, pattern) = match (path.parent(), path.file_name()) {
        (Some(d), Some(f)) => (d, f.to_string_lossy().into_owned()),
        _ => (Path::new(""), spec.to_string()),
    };
    if has_wildcard(&dir.to_string_lossy()) {
        return Err(RunError::input(format!(
            "--input `{spec}`: wildcards are only supported in the file name, not in folders"
        )));
    }
    let read_dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let pat: Vec<char> = pattern.chars().collect();
    let mut found = Vec::new();
    for entry in std::fs::read_dir(read_dir)
        .map_err(|e| RunError::input(format!("--input `{spec}`: {}: {e}", read_dir.display())))?
    {
        let entry = entry.map_err(|e| RunError::input(format!("{}: {e}", read_dir.display())))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let chars: Vec<char> = name.chars().collect();
        if glob_match(&pat, &chars) && entry.path().is_file() {
            found.push(dir.join(&name));
        }
    }
    if found.is_empty() {
        return Err(RunError::input(format!(
            "--input `{spec}`: no file matches"
        )));
    }
    Ok(found)
}

fn expand_dir(dir: &Path) -> Result<Vec<PathBuf>, RunError> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)
        .map_err(|e| RunError::input(format!("{}: cannot list: {e}", dir.display())))?
    {
        let entry = entry.map_err(|e| RunError::input(format!("{}: {e}", dir.display())))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_fits(&name) && entry.path().is_file() {
            found.push(dir.join(&name));
        }
    }
    if found.is_empty() {
        return Err(RunError::input(format!(
            "{}: no FITS files (*.fits, *.fits.gz, *.fit, *.fts) in this folder",
            dir.display()
        )));
    }
    Ok(found)
}

fn expand_list(list: &Path) -> Result<Vec<PathBuf>, RunError> {
    let text = std::fs::read_to_string(list)
        .map_err(|e| RunError::input(format!("{}: cannot read input list: {e}", list.display())))?;
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let p = PathBuf::from(line);
        if !p.is_file() {
            return Err(RunError::input(format!(
                "{}:{}: `{line}`: no such file",
                list.display(),
                n + 1
            )));
        }
        found.push(p);
    }
    if found.is_empty() {
        return Err(RunError::input(format!(
            "{}: the input list names no files",
            list.display()
        )));
    }
    Ok(found)
}

/// Expand `--input` values into the sorted, de-duplicated list of images. Each value is a
/// file, a folder (its FITS files, not recursive), a glob (wildcards in the file name:
/// `fields/s*.fits`) or `@list.txt` (one path per line; blank lines and `#` comments
/// skipped). Paths stay as given (relative to the working directory), so the list and the
/// catalogue's `image` column read the same in every process. Two images with the same
/// name in different folders are an error: their per-image outputs would collide.
pub fn expand(specs: &[String]) -> Result<Vec<PathBuf>, RunError> {
    let mut all = Vec::new();
    for spec in specs {
        if let Some(list) = spec.strip_prefix('@') {
            all.extend(expand_list(Path::new(list))?);
        } else if Path::new(spec).is_dir() {
            all.extend(expand_dir(Path::new(spec))?);
        } else if Path::new(spec).exists() {
            all.push(PathBuf::from(spec));
        } else if has_wildcard(spec) {
            all.extend(expand_glob(spec)?);
        } else {
            return Err(RunError::input(format!("{spec}: no such file or folder")));
        }
    }
    all.sort();
    all.dedup();
    let mut stems: Vec<(String, &PathBuf)> = all.iter().map(|p| (stem(p), p)).collect();
    stems.sort();
    for w in stems.windows(2) {
        if w[0].0 == w[1].0 {
            return Err(RunError::input(format!(
                "{} and {}: two images named `{}`; their per-image outputs would collide (rename one)",
                w[0].1.display(),
                w[1].1.display(),
                w[0].0
            )));
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, n: &str) -> bool {
        glob_match(
            &p.chars().collect::<Vec<_>>(),
            &n.chars().collect::<Vec<_>>(),
        )
    }

    #[test]
    fn globs() {
        assert!(m("*.fits", "a.fits"));
        assert!(!m("*.fits", "a.fits.gz"));
        assert!(m("s?.fits", "s1.fits"));
        assert!(!m("s?.fits", "s10.fits"));
        assert!(m("s[0-3].fits", "s2.fits"));
        assert!(!m("s[!0-3].fits", "s2.fits"));
        assert!(m("*_truth*", "s1_truth.fits"));
        assert_eq!(stem(Path::new("a/b/s1.fits.gz")), "s1");
    }

    fn touch(dir: &Path, names: &[&str]) {
        for n in names {
            let p = dir.join(n);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"").unwrap();
        }
    }

    #[test]
    fn folders_lists_and_files_give_one_sorted_list() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        touch(
            root,
            &["f/c.fits", "f/a.fits.gz", "f/notes.txt", "g/b.fts", "x.fit"],
        );
        let list = root.join("list.txt");
        std::fs::write(
            &list,
            format!("# images\n\n{}\n", root.join("g/b.fts").display()),
        )
        .unwrap();
        let specs = [
            root.join("x.fit").display().to_string(),
            root.join("f").display().to_string(),
            format!("@{}", list.display()),
            // Named twice: listed once.
            root.join("f/c.fits").display().to_string(),
        ];
        let found = expand(&specs).unwrap();
        let want: Vec<PathBuf> = ["f/a.fits.gz", "f/c.fits", "g/b.fts", "x.fit"]
            .iter()
            .map(|n| root.join(n))
            .collect();
        assert_eq!(found, want);
    }

    #[test]
    fn bad_specs_are_input_errors_naming_them() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        touch(root, &["a/s1.fits", "b/s1.fits", "empty/readme.txt"]);
        let err = |specs: &[String]| match expand(specs) {
            Err(RunError::Input(m)) => m,
            other => panic!("expected an input error, got {other:?}"),
        };
        let same_stem = err(&[
            root.join("a").display().to_string(),
            root.join("b/s1.fits").display().to_string(),
        ]);
        assert!(same_stem.contains("two images named `s1`"), "{same_stem}");
        let missing = root.join("nope.fits").display().to_string();
        assert!(err(&[missing.clone()]).contains(&missing));
        assert!(err(&[root.join("empty").display().to_string()]).contains("no FITS files"));
        let no_match = root.join("a/z*.fits").display().to_string();
        assert!(err(&[no_match]).contains("no file matches"));
        let list = root.join("l.txt");
        std::fs::write(&list, "gone.fits\n").unwrap();
        assert!(err(&[format!("@{}", list.display())]).contains("l.txt:1: `gone.fits`"));
    }
}
