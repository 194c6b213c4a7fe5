//! Splits a YAML stream into its documents by line, so each document is parsed on its
//! own: errors then carry the exact document index and line, and one bad document's
//! budget cannot starve the others.
//!
//! YAML forbids `---` and `...` at the start of a line inside a document (even inside
//! block or quoted scalars), so line markers are an exact document boundary.

/// One document's text and where it starts in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk<'a> {
    pub text: &'a str,
    /// 1-based line number of the chunk's first line in the file.
    pub first_line: usize,
}

fn is_marker(line: &str, marker: &str) -> bool {
    match line.strip_prefix(marker) {
        Some(rest) => rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']),
        None => false,
    }
}

/// Whether a chunk holds nothing but blank lines, comments and directives.
fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || l.starts_with('%')
    })
}

fn has_directive(text: &str) -> bool {
    text.lines().any(|l| l.starts_with('%'))
}

/// Documents of `text` in order. An explicit `---` always starts a document (even an
/// empty one); text before the first marker or after a `...` is a document only when
/// it holds content. Directive lines stay with the document they precede.
pub fn split<'a>(text: &'a str) -> Vec<Chunk<'a>> {
    let mut out = Vec::new();
    let mut start = 0usize; // byte offset of the open chunk
    let mut start_line = 1usize;
    let mut explicit = false; // open chunk began with `---`
    let mut offset = 0usize;
    let close = |out: &mut Vec<Chunk<'a>>, from: usize, to: usize, first_line: usize, explicit: bool| -> bool {
        let body = &text[from..to];
        if explicit || !is_blank(body) {
            out.push(Chunk { text: body, first_line });
            true
        } else {
            false
        }
    };
    for (line_no, line) in (1usize..).zip(text.split_inclusive('\n')) {
        let line_end = offset + line.len();
        if is_marker(line, "---") {
            let pending = &text[start..offset];
            // A directive-only prelude belongs to the document this marker opens.
            if explicit || !(is_blank(pending) && has_directive(pending)) {
                close(&mut out, start, offset, start_line, explicit);
                start = offset;
                start_line = line_no;
            }
            explicit = true;
        } else if is_marker(line, "...") {
            close(&mut out, start, line_end, start_line, explicit);
            start = line_end;
            start_line = line_no + 1;
            explicit = false;
        }
        offset = line_end;
    }
    close(&mut out, start, text.len(), start_line, explicit);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(input: &str) -> Vec<(&str, usize)> {
        split(input).into_iter().map(|c| (c.text, c.first_line)).collect()
    }

    #[test]
    fn single_document_without_marker() {
        assert_eq!(texts("a: 1\nb: 2\n"), vec![("a: 1\nb: 2\n", 1)]);
    }

    #[test]
    fn leading_marker_and_comments() {
        assert_eq!(
            texts("# header\n---\na: 1\n---\nb: 2"),
            vec![("---\na: 1\n", 2), ("---\nb: 2", 4)]
        );
    }

    #[test]
    fn empty_explicit_documents_count() {
        assert_eq!(texts("---\n---\na: 1\n"), vec![("---\n", 1), ("---\na: 1\n", 2)]);
    }

    #[test]
    fn content_on_marker_line_and_crlf() {
        assert_eq!(texts("--- a\r\n---\r\nb: 1\r\n"), vec![("--- a\r\n", 1), ("---\r\nb: 1\r\n", 2)]);
    }

    #[test]
    fn not_a_marker() {
        assert_eq!(texts("a: ---\n----\n ---\n"), vec![("a: ---\n----\n ---\n", 1)]);
    }

    #[test]
    fn document_end_marker() {
        assert_eq!(texts("a: 1\n...\nb: 2\n"), vec![("a: 1\n...\n", 1), ("b: 2\n", 3)]);
        assert_eq!(texts("a: 1\n...\n# trailing\n"), vec![("a: 1\n...\n", 1)]);
    }

    #[test]
    fn directives_stay_with_their_document() {
        assert_eq!(
            texts("%YAML 1.2\n---\na: 1\n...\n%YAML 1.2\n---\nb: 2\n"),
            vec![("%YAML 1.2\n---\na: 1\n...\n", 1), ("%YAML 1.2\n---\nb: 2\n", 5)]
        );
    }

    #[test]
    fn empty_input() {
        assert!(split("").is_empty());
        assert!(split("\n# only a comment\n").is_empty());
    }
}
