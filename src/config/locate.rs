//! Finding where things are in the configuration text, so every error can name a line and the
//! full dotted key (`peers[1].addresses[0]`, `limits.max_body`).
//!
//! Both directions go through the spanned document that `toml` parses (`DeTable`): a serde
//! error carries a byte span, which [`Doc::path_at`] turns into a key path; a validation error
//! knows its key path, which [`Doc::line_of`] turns into a line. This keeps the serde structs
//! plain (no `Spanned` wrappers on every field) while still pointing at the exact line.

use std::fmt;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    /// `.name`
    Key(String),
    /// `[index]`
    Index(usize),
}

/// A full key path such as `peers[0].addresses[1]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyPath(pub(crate) Vec<Seg>);

impl KeyPath {
    /// A path from a dotted table path such as `"limits.max_body"` (no indices).
    pub(crate) fn keys(dotted: &str) -> Self {
        KeyPath(dotted.split('.').map(|k| Seg::Key(k.to_string())).collect())
    }

    /// This path with one more key.
    pub(crate) fn key(&self, name: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(name.to_string()));
        p
    }

    /// This path with one more index.
    pub(crate) fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            // Errors about the document as a whole (e.g. a syntax error before any key).
            return f.write_str("(top level)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => f.write_str(k)?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// The configuration text with its spanned parse tree (absent when the text does not parse).
pub(crate) struct Doc<'a> {
    text: &'a str,
    root: Option<&'a Spanned<DeTable<'a>>>,
}

impl<'a> Doc<'a> {
    /// Wrap a text and, when it parsed, its tree.
    pub(crate) fn new(text: &'a str, root: Option<&'a Spanned<DeTable<'a>>>) -> Self {
        Doc { text, root }
    }

    /// The 1-based line holding byte `offset`.
    pub(crate) fn line_at(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        // `get` rather than slicing: an offset inside a multi-byte character must not panic.
        let before = self.text.as_bytes().get(..end).unwrap_or_default();
        1 + before.iter().filter(|b| **b == b'\n').count()
    }

    /// The deepest key path whose key or value holds the span's start.
    pub(crate) fn path_at(&self, span: &Range<usize>) -> KeyPath {
        let mut path = KeyPath::default();
        if let Some(root) = self.root {
            descend_table(root.get_ref(), span.start, &mut path);
        }
        path
    }

    /// The line of `path`: its key (or array element) if present in the text, else the line of
    /// its deepest present ancestor (a value left at its default has no line of its own), else 1.
    pub(crate) fn line_of(&self, path: &KeyPath) -> usize {
        let Some(root) = self.root else { return 1 };
        let mut best: Option<Range<usize>> = None;
        let mut value: &DeValue<'_> = &DeValue::Boolean(false);
        let mut table = Some(root.get_ref());
        for seg in &path.0 {
            let found = match (seg, table, value) {
                (Seg::Key(k), Some(t), _) => t
                    .get_key_value(k.as_str())
                    .map(|(key, v)| (key.span(), v.get_ref())),
                (Seg::Index(i), None, DeValue::Array(a)) => {
                    a.get(*i).map(|v| (v.span(), v.get_ref()))
                }
                _ => None,
            };
            let Some((span, v)) = found else { break };
            best = Some(span);
            value = v;
            table = match v {
                DeValue::Table(t) => Some(t),
                _ => None,
            };
        }
        best.map_or(1, |s| self.line_at(s.start))
    }
}

fn contains(span: &Range<usize>, offset: usize) -> bool {
    span.start <= offset && offset < span.end.max(span.start + 1)
}

fn descend_table(table: &DeTable<'_>, offset: usize, path: &mut KeyPath) {
    for (key, value) in table.iter() {
        if contains(&key.span(), offset) {
            path.0.push(Seg::Key(key.get_ref().to_string()));
            return;
        }
        if contains(&value.span(), offset) {
            path.0.push(Seg::Key(key.get_ref().to_string()));
            descend_value(value.get_ref(), offset, path);
            return;
        }
    }
    // Spans of tables built from `[header]` sections do not always cover their keys, so
    // look inside every sub-table when no direct span matched.
    for (key, value) in table.iter() {
        let before = path.0.len();
        path.0.push(Seg::Key(key.get_ref().to_string()));
        if descend_value(value.get_ref(), offset, path) {
            return;
        }
        path.0.truncate(before);
    }
}

/// Returns whether something below `value` matched.
fn descend_value(value: &DeValue<'_>, offset: usize, path: &mut KeyPath) -> bool {
    match value {
        DeValue::Table(t) => {
            let before = path.0.len();
            descend_table(t, offset, path);
            path.0.len() > before
        }
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let before = path.0.len();
                path.0.push(Seg::Index(i));
                if contains(&item.span(), offset) {
                    descend_value(item.get_ref(), offset, path);
                    return true;
                }
                if descend_value(item.get_ref(), offset, path) {
                    return true;
                }
                path.0.truncate(before);
            }
            false
        }
        _ => false,
    }
}
