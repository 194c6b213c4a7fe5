//! Which files `-f PATH...` means: files as given, directories recursively
//! (`.yaml`, `.yml`, `.json`, in lexical path order).

use super::InputError;
use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

const EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

pub(crate) const TOO_LARGE: &str = "file is larger than";

/// Expands the `-f` arguments into the files to read, in reading order.
pub(crate) fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, InputError> {
    let mut out = Vec::new();
    for path in paths {
        let meta = fs::metadata(path).map_err(|e| InputError::file(path, e.to_string()))?;
        if meta.is_dir() {
            let mut found = Vec::new();
            let mut visited = HashSet::new();
            walk(path, &mut found, &mut visited)?;
            found.sort();
            out.extend(found);
        } else {
            // A file named explicitly is read whatever its extension.
            out.push(path.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>, visited: &mut HashSet<PathBuf>) -> Result<(), InputError> {
    // Symlinks to directories are not followed, and the canonical set guards against
    // any remaining cycle (e.g. bind mounts).
    let canonical = fs::canonicalize(dir).map_err(|e| InputError::file(dir, e.to_string()))?;
    if !visited.insert(canonical) {
        return Ok(());
    }
    let entries = fs::read_dir(dir).map_err(|e| InputError::file(dir, e.to_string()))?;
    for entry in entries {
        let entry = entry.map_err(|e| InputError::file(dir, e.to_string()))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| InputError::file(&path, e.to_string()))?;
        if kind.is_dir() {
            walk(&path, found, visited)?;
        } else if has_manifest_extension(&path) && (kind.is_file() || (kind.is_symlink() && path.is_file())) {
            found.push(path);
        }
    }
    Ok(())
}

fn has_manifest_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Reads a whole file as UTF-8, refusing files over `max_bytes` without reading them.
pub(crate) fn read_text(path: &Path, max_bytes: u64) -> Result<String, InputError> {
    let file = fs::File::open(path).map_err(|e| InputError::file(path, e.to_string()))?;
    let mut bytes = Vec::new();
    // `take` bounds the read even if the file grows while being read.
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| InputError::file(path, e.to_string()))?;
    if bytes.len() as u64 > max_bytes {
        return Err(InputError::file(path, format!("{TOO_LARGE} {max_bytes} bytes")));
    }
    String::from_utf8(bytes).map_err(|e| InputError::file(path, format!("not UTF-8 text ({e})")))
}
