//! Text shaping for the report that does not need a PDF: cleaning, line wrapping and
//! number formatting. Widths come from a caller-supplied measure so the wrapping rules
//! can be tested without fonts.

use unicode_normalization::UnicodeNormalization;

/// Makes text from the ERP or the ALiS file printable: composed (NFC) so that "Zoe" plus a
/// combining diaeresis prints as the font's "ë" glyph instead of a letter with a loose
/// accent, and with control characters (tabs, stray carriage returns) turned into spaces
/// so they never print as missing-glyph boxes. Line feeds are kept: they end a line.
pub(crate) fn printable(text: &str) -> String {
    if text
        .bytes()
        .all(|b| b.is_ascii() && !b.is_ascii_control() || b == b'\n')
    {
        return text.to_owned();
    }
    text.nfc()
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .collect()
}

/// Breaks `text` into lines no wider than `max_width`, as measured by `width`.
///
/// Lines break at spaces; a word wider than a whole line (a long e-mail address, a
/// 64-digit hash) is broken between characters. Line feeds in the text always break.
/// Empty text gives one empty line, so every table cell has a height.
pub(crate) fn wrap(text: &str, max_width: f64, width: impl Fn(&str) -> f64) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        // Most table cells fit as they are: measured once, not word by word.
        let single_spaced =
            !paragraph.starts_with(' ') && !paragraph.ends_with(' ') && !paragraph.contains("  ");
        if single_spaced && width(paragraph) <= max_width {
            lines.push(paragraph.to_owned());
            continue;
        }
        let mut line = String::new();
        for word in paragraph.split(' ').filter(|word| !word.is_empty()) {
            let candidate = if line.is_empty() {
                word.to_owned()
            } else {
                format!("{line} {word}")
            };
            if width(&candidate) <= max_width {
                line = candidate;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            if width(word) <= max_width {
                line = word.to_owned();
            } else {
                let mut pieces = break_word(word, max_width, &width);
                line = pieces.pop().unwrap_or_default();
                lines.extend(pieces);
            }
        }
        lines.push(line);
    }
    lines
}

/// Splits one word into pieces that each fit, at least one character per piece.
fn break_word(word: &str, max_width: f64, width: &impl Fn(&str) -> f64) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut piece = String::new();
    for c in word.chars() {
        piece.push(c);
        if width(&piece) > max_width && piece.chars().count() > 1 {
            piece.pop();
            pieces.push(std::mem::take(&mut piece));
            piece.push(c);
        }
    }
    pieces.push(piece);
    pieces
}

/// Shortens `text` with an ellipsis so it fits in `max_width` (for one-line page headers).
pub(crate) fn truncate(text: &str, max_width: f64, width: impl Fn(&str) -> f64) -> String {
    if width(text) <= max_width {
        return text.to_owned();
    }
    let mut shortened: String = text.to_owned();
    while !shortened.is_empty() && width(&format!("{shortened}…")) > max_width {
        shortened.pop();
    }
    format!("{}…", shortened.trim_end())
}

/// A count with thousands separators, as HR reads them: `51234` → `51,234`.
pub fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every character is one unit wide.
    fn chars(s: &str) -> f64 {
        s.chars().count() as f64
    }

    #[test]
    fn short_text_stays_on_one_line() {
        assert_eq!(
            wrap("Østergaard, Søren", 40.0, chars),
            ["Østergaard, Søren"]
        );
    }

    #[test]
    fn long_text_breaks_at_spaces() {
        assert_eq!(
            wrap("ERP: O'BRIEN, ALiS: OBrien", 13.0, chars),
            ["ERP: O'BRIEN,", "ALiS: OBrien"]
        );
    }

    #[test]
    fn a_word_wider_than_the_line_breaks_between_characters() {
        assert_eq!(
            wrap("sha 0123456789abcdef", 6.0, chars),
            ["sha", "012345", "6789ab", "cdef"]
        );
    }

    #[test]
    fn line_feeds_always_break_and_empty_text_keeps_one_line() {
        assert_eq!(wrap("one\ntwo", 40.0, chars), ["one", "two"]);
        assert_eq!(wrap("", 40.0, chars), [""]);
    }

    #[test]
    fn a_line_narrower_than_one_character_still_makes_progress() {
        assert_eq!(wrap("abc", 0.5, chars), ["a", "b", "c"]);
    }

    #[test]
    fn decomposed_accents_are_composed_and_control_characters_become_spaces() {
        assert_eq!(
            printable("Zoe\u{308}\tNguye\u{302}\u{303}n\r"),
            "Zoë Nguyễn "
        );
        assert_eq!(printable("line\nbreak"), "line\nbreak");
    }

    #[test]
    fn truncation_adds_an_ellipsis_only_when_needed() {
        assert_eq!(truncate("Import Summary", 20.0, chars), "Import Summary");
        assert_eq!(truncate("Import Summary", 8.0, chars), "Import…");
    }

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1000), "1,000");
        assert_eq!(group_digits(51_234), "51,234");
        assert_eq!(group_digits(1_234_567), "1,234,567");
    }
}
