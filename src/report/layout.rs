//! Pages, headings and tables on top of genpdf's low-level renderer.
//!
//! genpdf's `Document` lays out and writes in one call, so a page cannot learn how many
//! pages follow it and a table cannot repeat its header row. This module drives
//! [`Renderer`] itself instead: content flows down the pages once, tables measure each
//! row before drawing it (a row never splits across pages; the header row and the
//! section title are drawn again on every page the table continues on), and only when
//! everything is placed are the footers "Page N of M" drawn on every page, M then being
//! known. One layout pass, no second render.

use std::cell::RefCell;
use std::collections::HashMap;

use genpdf::error::{Error, ErrorKind};
use genpdf::fonts::{Font, FontCache};
use genpdf::render::{Area, Renderer};
use genpdf::style::Style;
use genpdf::{Mm, Position, Size};

use super::ReportError;
use super::style::{ACCENT, MUTED, accent_rule, band, body, heading, rule};
use super::text::{printable, truncate, wrap};

/// US Letter, portrait, in millimetres.
const PAGE_WIDTH: f64 = 215.9;
const PAGE_HEIGHT: f64 = 279.4;
const MARGIN_X: f64 = 16.0;
const MARGIN_Y: f64 = 12.0;
/// Height reserved above the body for the running header, and below it for the footer.
const BAND: f64 = 9.0;
const BODY_TOP: f64 = MARGIN_Y + BAND;
const BODY_WIDTH: f64 = PAGE_WIDTH - 2.0 * MARGIN_X;
pub(crate) const BODY_HEIGHT: f64 = PAGE_HEIGHT - 2.0 * (MARGIN_Y + BAND);
const CELL_PAD_X: f64 = 1.5;
const TITLE_GAP: f64 = 1.5;
const INTRO_GAP: f64 = 1.0;
/// Rows a table keeps on the page of its title and header row (fewer if it has fewer).
const KEEP_ROWS: usize = 3;
const CELL_PAD_Y: f64 = 1.0;

/// How a column's text sits in its cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Right,
}

/// One column of a [`Table`]: its header text, its share of the width, its alignment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    pub title: &'static str,
    pub weight: u32,
    pub align: Align,
}

impl Column {
    pub const fn new(title: &'static str, weight: u32, align: Align) -> Self {
        Self {
            title,
            weight,
            align,
        }
    }
}

/// A titled table: the title starts the section and is repeated, marked "continued",
/// above the header row on every further page the table needs.
pub(crate) struct Table<'a> {
    pub title: String,
    /// A sentence under the title on the table's first page, saying what the list is.
    pub intro: Option<String>,
    pub columns: &'a [Column],
    /// Printed instead of the header row when the table has no rows.
    pub when_empty: &'static str,
}

/// The finished document.
pub(crate) struct Rendered {
    pub bytes: Vec<u8>,
    pub pages: usize,
}

/// A document being laid out: the pages so far and the position on the last one.
pub(crate) struct Pages {
    renderer: Renderer,
    fonts: FontCache,
    widths: Widths,
    /// Distance from the top of the last page's body to where the next element goes.
    y: f64,
    running_header: String,
}

impl Pages {
    /// Starts a document whose pages all carry `running_header` at the top.
    pub fn new(
        mut fonts: FontCache,
        title: &str,
        running_header: &str,
    ) -> Result<Self, ReportError> {
        let renderer = Renderer::new(Size::new(PAGE_WIDTH, PAGE_HEIGHT), title)
            .map_err(ReportError::Render)?
            .with_conformance(minimal_conformance());
        fonts
            .load_pdf_fonts(&renderer)
            .map_err(ReportError::Render)?;
        let mut pages = Self {
            renderer,
            fonts,
            widths: Widths::default(),
            y: 0.0,
            running_header: String::new(),
        };
        pages.running_header = pages.fit(&printable(running_header), BODY_WIDTH, &band());
        pages.decorate()?;
        Ok(pages)
    }

    /// Prints `text` in `style` across the page, wrapped, keeping it on one page with
    /// at least `keep_with` millimetres of what follows.
    pub fn block(&mut self, text: &str, style: Style, keep_with: f64) -> Result<(), ReportError> {
        let lines = self.lines(text, BODY_WIDTH, &style);
        let line_height = self.line_height(&style);
        self.ensure(lines.len() as f64 * line_height + keep_with)?;
        for line in &lines {
            self.ensure(line_height)?;
            self.print(MARGIN_X, self.y, style, line)?;
            self.y += line_height;
        }
        Ok(())
    }

    /// Continues on a new page, unless this one is still empty.
    pub fn page_break(&mut self) -> Result<(), ReportError> {
        if self.y > 0.0 {
            self.new_page()?;
        }
        Ok(())
    }

    /// Leaves vertical space (dropped at the top of a page).
    pub fn gap(&mut self, mm: f64) {
        if self.y > 0.0 {
            self.y += mm;
        }
    }

    /// Draws `table` with `rows` (each as many cells as the table has columns). The title,
    /// the header row and the first few rows stay together on one page.
    pub fn table(&mut self, table: &Table<'_>, rows: &[Vec<String>]) -> Result<(), ReportError> {
        let heading = heading();
        let header = if has_header(table.columns) {
            let titles: Vec<String> = table.columns.iter().map(|c| c.title.into()).collect();
            Some(self.measure_row(table.columns, &titles))
        } else {
            None
        };
        let header_height = header.as_ref().map_or(0.0, |h| h.height);
        let title_height = if table.title.is_empty() {
            0.0
        } else {
            let lines = self.lines(&table.title, BODY_WIDTH, &heading);
            lines.len() as f64 * self.line_height(&heading) + TITLE_GAP
        };
        let intro_height = match &table.intro {
            Some(intro) => {
                let lines = self.lines(intro, BODY_WIDTH, &body());
                lines.len() as f64 * self.line_height(&body()) + INTRO_GAP
            }
            None => 0.0,
        };
        let first_rows: f64 = if rows.is_empty() {
            self.line_height(&body())
        } else {
            let kept = rows.iter().take(KEEP_ROWS);
            kept.map(|row| self.measure_row(table.columns, row).height)
                .sum::<f64>()
                + header_height
        };
        self.ensure(title_height + intro_height + first_rows)?;
        if !table.title.is_empty() {
            self.block(&table.title, heading, 0.0)?;
            self.y += TITLE_GAP;
        }
        if let Some(intro) = &table.intro {
            self.block(intro, body().with_color(MUTED), 0.0)?;
            self.y += INTRO_GAP;
        }
        if rows.is_empty() {
            return self.block(table.when_empty, body(), 0.0);
        }
        let header_style = body().with_color(ACCENT);
        if let Some(header) = &header {
            self.draw_row(table.columns, header, header_style, accent_rule())?;
        }
        let mut rows_on_page = 0;
        for row in rows {
            let row = self.measure_row(table.columns, row);
            // A row that fits on no page is cut where it starts, not after an empty page.
            if self.y + row.height > BODY_HEIGHT && rows_on_page > 0 {
                rows_on_page = 0;
                self.new_page()?;
                if !table.title.is_empty() {
                    let continued = format!("{} (continued)", table.title);
                    self.block(&continued, heading, 0.0)?;
                    self.y += TITLE_GAP;
                }
                if let Some(header) = &header {
                    self.draw_row(table.columns, header, header_style, accent_rule())?;
                }
            }
            self.draw_row(table.columns, &row, body(), rule())?;
            rows_on_page += 1;
        }
        Ok(())
    }

    /// Draws the footers, now that the page count is known, and writes the PDF.
    pub fn finish(self, footer_left: &str) -> Result<Rendered, ReportError> {
        let total = self.renderer.page_count();
        let style = band();
        let footer_left = self.fit(&printable(footer_left), BODY_WIDTH * 0.6, &style);
        let top = PAGE_HEIGHT - MARGIN_Y - BAND + 3.0;
        for index in 0..total {
            let Some(page) = self.renderer.get_page(index) else {
                continue;
            };
            let area = page.first_layer().area();
            let number = format!("Page {} of {total}", index + 1);
            let number_x = PAGE_WIDTH - MARGIN_X - self.width(&number, &style);
            line(&area, MARGIN_X, PAGE_WIDTH - MARGIN_X, top - 1.5, rule());
            print_at(&area, &self.fonts, MARGIN_X, top, style, &footer_left)?;
            print_at(&area, &self.fonts, number_x, top, style, &number)?;
        }
        let mut bytes = Vec::new();
        self.renderer
            .write(&mut bytes)
            .map_err(ReportError::Render)?;
        Ok(Rendered {
            bytes,
            pages: total,
        })
    }

    /// Starts a new page when `height` does not fit on this one (and this one is not
    /// empty: something taller than a page goes on anyway and is cut by the margin).
    fn ensure(&mut self, height: f64) -> Result<(), ReportError> {
        if self.y > 0.0 && self.y + height > BODY_HEIGHT {
            self.new_page()?;
        }
        Ok(())
    }

    fn new_page(&mut self) -> Result<(), ReportError> {
        self.renderer.add_page(Size::new(PAGE_WIDTH, PAGE_HEIGHT));
        self.y = 0.0;
        self.decorate()
    }

    /// The running header at the top of the current page.
    fn decorate(&self) -> Result<(), ReportError> {
        let area = self.area();
        print_at(
            &area,
            &self.fonts,
            MARGIN_X,
            MARGIN_Y,
            band(),
            &self.running_header,
        )?;
        line(
            &area,
            MARGIN_X,
            PAGE_WIDTH - MARGIN_X,
            BODY_TOP - 3.0,
            rule(),
        );
        Ok(())
    }

    fn measure_row(&self, columns: &[Column], cells: &[String]) -> MeasuredRow {
        let style = body();
        let widths = column_widths(columns);
        let cells: Vec<Vec<String>> = widths
            .iter()
            .enumerate()
            .map(|(i, width)| {
                let text = cells.get(i).map(String::as_str).unwrap_or_default();
                self.lines(text, width - 2.0 * CELL_PAD_X, &style)
            })
            .collect();
        let line_count = cells.iter().map(Vec::len).max().unwrap_or(1);
        let height = line_count as f64 * self.line_height(&style) + 2.0 * CELL_PAD_Y;
        MeasuredRow {
            cells,
            height: height.min(BODY_HEIGHT),
        }
    }

    /// Draws a measured row at the cursor with a rule under it, and moves down. A row
    /// taller than the rest of the page (only absurdly long text makes one) is cut, and
    /// its last visible line ends in an ellipsis.
    fn draw_row(
        &mut self,
        columns: &[Column],
        row: &MeasuredRow,
        style: Style,
        rule: Style,
    ) -> Result<(), ReportError> {
        let line_height = self.line_height(&style);
        let room = BODY_HEIGHT - self.y - 2.0 * CELL_PAD_Y;
        let max_lines = ((room / line_height).floor() as usize).max(1);
        let mut x = MARGIN_X;
        for ((column, width), lines) in columns.iter().zip(column_widths(columns)).zip(&row.cells) {
            for (n, text) in lines.iter().take(max_lines).enumerate() {
                let cut = n + 1 == max_lines && lines.len() > max_lines;
                let text = &if cut {
                    format!("{text}…")
                } else {
                    text.clone()
                };
                let y = self.y + CELL_PAD_Y + n as f64 * line_height;
                let left = match column.align {
                    Align::Left => x + CELL_PAD_X,
                    Align::Right => x + width - CELL_PAD_X - self.width(text, &style),
                };
                self.print(left, y, style, text)?;
            }
            x += width;
        }
        self.y += row.height.min(BODY_HEIGHT - self.y);
        line(
            &self.area(),
            MARGIN_X,
            PAGE_WIDTH - MARGIN_X,
            BODY_TOP + self.y,
            rule,
        );
        Ok(())
    }

    /// Prints one line at `y` below the top of the current page's body.
    fn print(&self, x: f64, y: f64, style: Style, text: &str) -> Result<(), ReportError> {
        print_at(&self.area(), &self.fonts, x, BODY_TOP + y, style, text)
    }

    fn area(&self) -> Area<'_> {
        self.renderer.last_page().first_layer().area()
    }

    fn lines(&self, text: &str, max_width: f64, style: &Style) -> Vec<String> {
        wrap(&printable(text), max_width, |s| self.width(s, style))
    }

    fn fit(&self, text: &str, max_width: f64, style: &Style) -> String {
        truncate(text, max_width, |s| self.width(s, style))
    }

    fn width(&self, text: &str, style: &Style) -> f64 {
        self.widths.of(&self.fonts, text, style)
    }

    fn line_height(&self, style: &Style) -> f64 {
        style.line_height(&self.fonts).into()
    }
}

/// Text widths exactly as genpdf's `Style::str_width` computes them (the advance of
/// each glyph, then the kerning of each pair, summed in that order), from advances and
/// kernings looked up once per font, size and character or pair. genpdf looks each one
/// up in the font file on every call, and a large report measures every cell a few
/// times: this halves the time it takes to lay one out.
#[derive(Default)]
struct Widths {
    /// Few entries (a font and size each): searched in order.
    fonts: RefCell<Vec<FontWidths>>,
}

struct FontWidths {
    font: Font,
    size: u8,
    advances: HashMap<char, f64>,
    /// The kerning before the second character of each pair.
    kernings: HashMap<(char, char), f64>,
}

impl Widths {
    fn of(&self, fonts: &FontCache, text: &str, style: &Style) -> f64 {
        let font = style.font(fonts);
        let size = style.font_size();
        let mut cache = self.fonts.borrow_mut();
        let index = match cache.iter().position(|f| f.font == font && f.size == size) {
            Some(index) => index,
            None => {
                cache.push(FontWidths {
                    font,
                    size,
                    advances: HashMap::new(),
                    kernings: HashMap::new(),
                });
                cache.len() - 1
            }
        };
        let Some(widths) = cache.get_mut(index) else {
            return style.str_width(fonts, text).into();
        };
        let (mut advance, mut kerning) = (0.0, 0.0);
        let mut previous = None;
        for c in text.chars() {
            advance += *widths
                .advances
                .entry(c)
                .or_insert_with(|| font.char_width(fonts, c, size).into());
            if let Some(before) = previous {
                kerning += *widths.kernings.entry((before, c)).or_insert_with(|| {
                    let pair = font.kerning(fonts, [before, c]);
                    let points = pair.get(1).copied().unwrap_or_default() * f32::from(size);
                    Mm::from(printpdf::Pt(f64::from(points))).into()
                });
            }
            previous = Some(c);
        }
        advance + kerning
    }
}

/// A row broken into lines per cell, and the height it needs.
struct MeasuredRow {
    cells: Vec<Vec<String>>,
    height: f64,
}

/// A table whose columns all have empty titles is a list of label/value pairs with no
/// header row.
fn has_header(columns: &[Column]) -> bool {
    columns.iter().any(|c| !c.title.is_empty())
}

fn column_widths(columns: &[Column]) -> Vec<f64> {
    let total: u32 = columns.iter().map(|c| c.weight).sum();
    columns
        .iter()
        .map(|c| BODY_WIDTH * f64::from(c.weight) / f64::from(total.max(1)))
        .collect()
}

/// Prints one line whose top is `y` millimetres below the top of the page.
fn print_at(
    area: &Area<'_>,
    fonts: &FontCache,
    x: f64,
    y: f64,
    style: Style,
    text: &str,
) -> Result<(), ReportError> {
    let position = Position::new(Mm::from(x), Mm::from(y));
    if area
        .print_str(fonts, position, style, text)
        .map_err(ReportError::Render)?
    {
        Ok(())
    } else {
        Err(ReportError::Render(Error::new(
            format!("text placed outside the page at {x:.1} mm, {y:.1} mm"),
            ErrorKind::PageSizeExceeded,
        )))
    }
}

fn line(area: &Area<'_>, from_x: f64, to_x: f64, y: f64, style: Style) {
    let at = |x: f64| Position::new(Mm::from(x), Mm::from(y));
    area.draw_line(vec![at(from_x), at(to_x)], style);
}

/// What genpdf's `Document::set_minimal_conformance` sets: no ICC profile and no XMP
/// metadata, which would add tens of kilobytes to every report and serve no reader here.
fn minimal_conformance() -> printpdf::PdfConformance {
    printpdf::PdfConformance::Custom(printpdf::CustomPdfConformance {
        requires_icc_profile: false,
        requires_xmp_metadata: false,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fonts::font_cache;

    const ONE_COLUMN: &[Column] = &[Column::new("Employee", 1, Align::Left)];

    fn pages_for(rows: usize) -> usize {
        let mut pages = Pages::new(font_cache().unwrap(), "test", "running header").unwrap();
        let table = Table {
            title: "List".into(),
            intro: None,
            columns: ONE_COLUMN,
            when_empty: "None.",
        };
        let rows: Vec<Vec<String>> = (0..rows).map(|n| vec![format!("E{n:05}")]).collect();
        pages.table(&table, &rows).unwrap();
        pages.finish("footer").unwrap().pages
    }

    /// Single-line rows below a one-line title and the header row, as on every page of
    /// a table that starts at the top of a page.
    fn rows_per_page() -> usize {
        let fonts = font_cache().unwrap();
        let row: f64 = f64::from(body().line_height(&fonts)) + 2.0 * CELL_PAD_Y;
        let title: f64 = f64::from(heading().line_height(&fonts)) + TITLE_GAP;
        ((BODY_HEIGHT - title - row) / row).floor() as usize
    }

    #[test]
    fn a_long_table_fills_every_page_with_as_many_rows_as_fit() {
        let per_page = rows_per_page();
        assert!((30..60).contains(&per_page), "{per_page} rows per page");
        assert_eq!(pages_for(per_page), 1);
        assert_eq!(pages_for(per_page + 1), 2);
        assert_eq!(pages_for(5_000), 5_000_usize.div_ceil(per_page));
    }

    #[test]
    fn widths_are_genpdf_s_to_the_last_bit() {
        let fonts = font_cache().unwrap();
        let widths = Widths::default();
        let texts = [
            "",
            "A",
            "AVATAR To Wa Yo",
            "Nguyễn Thị Łucja Søren",
            "Expiring within 90 days: 1,234",
            "\u{1F600} missing glyph",
        ];
        for style in [body(), heading(), band(), body().bold()] {
            for text in texts {
                // Twice: computed, then from the cache.
                for _ in 0..2 {
                    let expected: f64 = style.str_width(&fonts, text).into();
                    assert_eq!(widths.of(&fonts, text, &style), expected, "{text:?}");
                }
            }
        }
    }

    #[test]
    fn an_empty_table_still_takes_its_place() {
        assert_eq!(pages_for(0), 1);
    }

    #[test]
    fn a_cell_longer_than_a_page_is_cut_instead_of_failing() {
        let mut pages = Pages::new(font_cache().unwrap(), "test", "running header").unwrap();
        let table = Table {
            title: "Invalid rows".into(),
            intro: None,
            columns: &[
                Column::new("Line", 1, Align::Right),
                Column::new("Reason", 9, Align::Left),
            ],
            when_empty: "None.",
        };
        let endless = "a-very-long-reason ".repeat(2_000);
        let rows = vec![vec!["1".into(), endless.clone()], vec!["2".into(), endless]];
        pages.table(&table, &rows).unwrap();
        assert_eq!(pages.finish("footer").unwrap().pages, 2);
    }
}
