//! The report's one embedded font.
//!
//! genpdf 0.2 embeds every face of a font family whole (no subsetting), and it embeds
//! each of the four slots of a [`FontFamily`] separately even when they hold the same
//! bytes: four slots of Liberation Sans make every PDF about 1.6 MB. The report therefore
//! uses one face only, Liberation Sans Regular (about 400 KB in each PDF), and shows
//! emphasis with size, colour and rules instead of bold or italic. The three slots it
//! never uses are declared as the PDF's built-in Helvetica faces, which cost a few bytes
//! of font dictionary and no glyph data; their metrics come from the same TTF.

use genpdf::fonts::{FontCache, FontData, FontFamily};
use printpdf::BuiltinFont;

use super::ReportError;

/// Liberation Sans 2.1.5 Regular (SIL OFL 1.1, `assets/fonts/LICENSE-LiberationSans.txt`),
/// from Debian's `fonts-liberation2`. Version 2 has the Vietnamese and the rest of Latin
/// Extended Additional that version 1 (Debian's `fonts-liberation`) lacks.
const LIBERATION_SANS_REGULAR: &[u8] =
    include_bytes!("../../assets/fonts/LiberationSans-Regular.ttf");

/// A font cache whose default family is embedded Liberation Sans Regular.
pub(crate) fn font_cache() -> Result<FontCache, ReportError> {
    let embedded = |data: &[u8]| FontData::new(data.to_vec(), None).map_err(ReportError::Font);
    let metrics_only = |builtin| {
        FontData::new(LIBERATION_SANS_REGULAR.to_vec(), Some(builtin)).map_err(ReportError::Font)
    };
    Ok(FontCache::new(FontFamily {
        regular: embedded(LIBERATION_SANS_REGULAR)?,
        bold: metrics_only(BuiltinFont::HelveticaBold)?,
        italic: metrics_only(BuiltinFont::HelveticaOblique)?,
        bold_italic: metrics_only(BuiltinFont::HelveticaBoldOblique)?,
    }))
}
