//! A fast reader for the YAML subset the renderer emits, used by the parse-back check.
//!
//! General YAML parsers read our output at about 30 MB/s, which made the parse-back check
//! three quarters of the compile time. What we emit is a small block-style subset:
//! `key: value` and `- item` lines with space indentation, double-quoted or plain scalars,
//! `{}`/`[]`, block scalars (`|`, `>-`, ...) and comment lines. This reader accepts exactly
//! that subset, checks its structure (indentation and nesting), and extracts each document's
//! head. Anything outside the subset is [`Scan::Unsupported`], and the caller falls back to
//! the full parser; in debug builds (every test) both run and must agree.

/// What a document says about itself.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) api_version: Option<String>,
    pub(crate) kind: Option<String>,
    pub(crate) has_metadata: bool,
    pub(crate) name: Option<String>,
    pub(crate) namespace: Option<String>,
    pub(crate) labels: Vec<(String, String)>,
}

/// The result of scanning one document.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Scan {
    /// Well-formed within the subset.
    Head(Head),
    /// Outside the subset (not necessarily invalid): use the full parser.
    Unsupported,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Map,
    Seq,
}

struct Level {
    indent: usize,
    kind: Kind,
    /// Key path of this mapping from the document root, for the levels we extract from.
    path: Path,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    Root,
    Metadata,
    Labels,
    Other,
}

/// Scans one document (no `---` lines inside).
pub(crate) fn scan(doc: &str) -> Scan {
    scan_inner(doc).map_or(Scan::Unsupported, Scan::Head)
}

fn scan_inner(doc: &str) -> Option<Head> {
    let mut head = Head::default();
    let mut stack: Vec<Level> = Vec::new();
    // Set after `key:` with nothing after it: the next line must open its value.
    let mut pending: Option<(usize, Path)> = None;
    let mut root_keys: Vec<&str> = Vec::new();
    let mut meta_keys: Vec<&str> = Vec::new();
    let mut lines = doc.lines().peekable();
    while let Some(line) = lines.next() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let content = &line[indent..];
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        if content.starts_with('\t') {
            return None;
        }
        let is_item = content == "-" || content.starts_with("- ");
        // Open the pending value, or find the level this line belongs to.
        if let Some((parent_indent, path)) = pending.take() {
            let opens_seq = is_item && indent >= parent_indent;
            if indent <= parent_indent && !opens_seq {
                return None; // `key:` with no value and nothing nested: null, not in our subset
            }
            let kind = if is_item { Kind::Seq } else { Kind::Map };
            stack.push(Level { indent, kind, path });
        } else {
            while let Some(top) = stack.last() {
                if top.indent > indent {
                    stack.pop();
                } else {
                    break;
                }
            }
            match stack.last() {
                Some(top) if top.indent == indent => {
                    if (top.kind == Kind::Seq) != is_item {
                        // `- item` under a mapping at the same indent closes nothing valid,
                        // except a sequence that is the value of the key above (handled by pending).
                        if top.kind == Kind::Map && is_item {
                            return None;
                        }
                        stack.pop();
                        if stack
                            .last()
                            .is_none_or(|t| t.indent != indent || t.kind != Kind::Map)
                        {
                            return None;
                        }
                    }
                }
                None if indent == 0 && !is_item => stack.push(Level {
                    indent: 0,
                    kind: Kind::Map,
                    path: Path::Root,
                }),
                _ => return None,
            }
        }
        let level_path = stack.last().map_or(Path::Root, |l| l.path);
        // A sequence item holds a scalar or the first line of a mapping.
        let (entry, entry_indent, entry_path) = if is_item {
            let rest = content.strip_prefix('-').unwrap_or_default();
            let rest = rest.strip_prefix(' ').unwrap_or(rest);
            if rest.is_empty() {
                return None;
            }
            if rest.starts_with("- ") {
                return None; // nested inline sequences: not in our subset
            }
            match split_key(rest) {
                Some(_) => {
                    let item_indent = indent + (content.len() - rest.len());
                    stack.push(Level {
                        indent: item_indent,
                        kind: Kind::Map,
                        path: Path::Other,
                    });
                    (rest, item_indent, Path::Other)
                }
                None => {
                    scalar(rest, &mut lines, indent)?;
                    continue;
                }
            }
        } else {
            (content, indent, level_path)
        };
        let (key, value) = split_key(entry)?;
        // Keys and values are decoded only where the head is read; elsewhere they are
        // only checked, which spares an allocation per line.
        let wanted = matches!(entry_path, Path::Root | Path::Metadata | Path::Labels);
        let key_text = if wanted {
            Some(key_string(key)?)
        } else {
            if key.starts_with('"') && !valid_quoted(key) {
                return None;
            }
            None
        };
        match entry_path {
            Path::Root if entry_indent == 0 => {
                if root_keys.contains(&key) {
                    return None;
                }
                root_keys.push(key);
            }
            Path::Metadata => {
                if meta_keys.contains(&key) {
                    return None;
                }
                meta_keys.push(key);
            }
            _ => {}
        }
        let key_text = key_text.as_deref();
        match value {
            None => {
                let child = match (entry_path, key_text) {
                    (Path::Root, Some("metadata")) if entry_indent == 0 => {
                        head.has_metadata = true;
                        Path::Metadata
                    }
                    (Path::Metadata, Some("labels")) => Path::Labels,
                    _ => Path::Other,
                };
                pending = Some((entry_indent, child));
            }
            Some(value) => {
                let text = scalar(value, &mut lines, entry_indent)?;
                match (entry_path, key_text) {
                    (Path::Root, Some("apiVersion")) if entry_indent == 0 => {
                        head.api_version = Some(text.decode()?)
                    }
                    (Path::Root, Some("kind")) if entry_indent == 0 => {
                        head.kind = Some(text.decode()?)
                    }
                    (Path::Root, Some("metadata")) if entry_indent == 0 => {
                        if text != Text::Plain("{}") {
                            return None;
                        }
                        head.has_metadata = true;
                    }
                    (Path::Metadata, Some("name")) => head.name = Some(text.decode()?),
                    (Path::Metadata, Some("namespace")) => head.namespace = Some(text.decode()?),
                    (Path::Labels, Some(label)) => {
                        head.labels.push((label.to_owned(), text.decode()?))
                    }
                    _ => {}
                }
            }
        }
    }
    if pending.is_some() {
        return None;
    }
    Some(head)
}

/// Splits `key: value` or `key:`; `None` when the line is not a mapping entry.
fn split_key(s: &str) -> Option<(&str, Option<&str>)> {
    let key_end = if s.starts_with('"') {
        closing_quote(s)? + 1
    } else {
        let end = s.find(": ").unwrap_or(s.len());
        let end = if end == s.len() {
            s.strip_suffix(':').map(str::len)?
        } else {
            end
        };
        let key = &s[..end];
        let plain = !key.is_empty()
            && key.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'-' | b':')
            })
            && !key.starts_with(['-', ':']);
        if !plain {
            return None;
        }
        end
    };
    let rest = &s[key_end..];
    if rest == ":" {
        Some((&s[..key_end], None))
    } else {
        rest.strip_prefix(": ").map(|v| (&s[..key_end], Some(v)))
    }
}

fn key_string(key: &str) -> Option<String> {
    if key.starts_with('"') {
        unquote(key)
    } else {
        Some(key.to_owned())
    }
}

/// A scalar as written: plain text, or a double-quoted scalar still in its quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Text<'a> {
    Plain(&'a str),
    Quoted(&'a str),
}

impl Text<'_> {
    fn decode(self) -> Option<String> {
        match self {
            Text::Plain(s) => Some(s.to_owned()),
            Text::Quoted(s) => unquote(s),
        }
    }
}

/// Checks a scalar value; for block scalars, consumes the lines that belong to it.
fn scalar<'a>(
    value: &'a str,
    lines: &mut std::iter::Peekable<std::str::Lines<'_>>,
    indent: usize,
) -> Option<Text<'a>> {
    match value {
        "{}" | "[]" => Some(Text::Plain(value)),
        "|" | "|-" | ">" | ">-" => {
            // The block holds every following line indented deeper than its key.
            while let Some(next) = lines.peek() {
                let next_indent = next.len() - next.trim_start_matches(' ').len();
                if next.trim().is_empty() || next_indent > indent {
                    lines.next();
                } else {
                    break;
                }
            }
            Some(Text::Plain(""))
        }
        v if v.starts_with('"') => {
            (closing_quote(v)? + 1 == v.len() && valid_quoted(v)).then_some(Text::Quoted(v))
        }
        v => {
            let plain = v.bytes().all(|b| (0x20..0x7f).contains(&b))
                && !v.starts_with([
                    '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'',
                    '"', '%', '@', '`', ' ',
                ])
                && !v.ends_with([' ', ':'])
                && !v.contains(": ")
                && !v.contains(" #");
            plain.then_some(Text::Plain(v))
        }
    }
}

/// True when `s` is a double-quoted scalar using only the escapes our quoting writes.
fn valid_quoted(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
        return false;
    };
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('"' | '\\' | 'n' | 't' | 'r') => {}
                Some('u') => {
                    let hex: String = chars.by_ref().take(4).collect();
                    let ok = hex.len() == 4
                        && u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .is_some();
                    if !ok {
                        return false;
                    }
                }
                _ => return false,
            },
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                return false;
            }
            _ => {}
        }
    }
    true
}

/// Index of the quote closing the double-quoted scalar that starts `s`.
fn closing_quote(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Decodes the escapes our quoting writes; anything else is outside the subset.
fn unquote(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    let code = u32::from_str_radix(&hex, 16)
                        .ok()
                        .filter(|_| hex.len() == 4)?;
                    out.push(char::from_u32(code)?);
                }
                _ => return None,
            },
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                return None;
            }
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(doc: &str) -> Head {
        match scan(doc) {
            Scan::Head(h) => h,
            Scan::Unsupported => panic!("unsupported:\n{doc}"),
        }
    }

    #[test]
    fn reads_heads() {
        let h = head(
            "# c\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: \"ws-a\\u2028b\"\n  labels:\n    a.b/c: \"x\"\nspec:\n  list:\n  - \"a\"\n  - key: v\n    other: |\n      free: text\n        - more\n  empty: {}\n",
        );
        assert_eq!(h.api_version.as_deref(), Some("v1"));
        assert_eq!(h.name.as_deref(), Some("ws-a\u{2028}b"));
        assert_eq!(h.labels, vec![("a.b/c".to_owned(), "x".to_owned())]);
    }

    #[test]
    fn rejects_what_is_outside_the_subset_or_malformed() {
        for doc in [
            "a: b\n  c: d\n",                    // deeper line after a scalar
            "a:\nb: c\n",                        // key with nothing under it
            "a: \"x\" y\n",                      // text after a quoted scalar
            "a: b: c\n",                         // nested key in a plain scalar
            "a: b\na: c\n",                      // duplicate root key
            "metadata:\n  name: a\n  name: b\n", // duplicate metadata key
            "a: [1, 2]\n",                       // flow sequence
            "a: \"\\x41\"\n",                    // escape we never write
            "  a: b\n",                          // indented root
            "a:\n  - b\n  c: d\n",               // mapping key in a sequence
        ] {
            assert_eq!(scan(doc), Scan::Unsupported, "{doc}");
        }
    }
}
