//! The report's look: type sizes and colours. One typeface throughout (see
//! [`fonts`](super::fonts)), so hierarchy comes from size, colour and rules.

use genpdf::style::{Color, Style};

pub(crate) const BODY_SIZE: u8 = 9;
pub(crate) const BAND_SIZE: u8 = 8;
pub(crate) const HEADING_SIZE: u8 = 13;

pub(crate) const ACCENT: Color = Color::Rgb(31, 56, 100);
pub(crate) const MUTED: Color = Color::Rgb(100, 100, 100);
pub(crate) const ALERT: Color = Color::Rgb(170, 20, 20);
pub(crate) const RULE: Color = Color::Rgb(190, 190, 190);

/// Table text and most prose, in the default black: a colour of its own would add
/// two colour operators to every cell (about a fifth of a table page's bytes).
pub(crate) fn body() -> Style {
    Style::new().with_font_size(BODY_SIZE)
}

pub(crate) fn band() -> Style {
    Style::new().with_font_size(BAND_SIZE).with_color(MUTED)
}

pub(crate) fn heading() -> Style {
    Style::new().with_font_size(HEADING_SIZE).with_color(ACCENT)
}

pub(crate) fn rule() -> Style {
    Style::new().with_color(RULE)
}

pub(crate) fn accent_rule() -> Style {
    Style::new().with_color(ACCENT)
}
