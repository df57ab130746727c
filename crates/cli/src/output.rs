//! How commands print data: tables that fit the screen (cells cut with `…`, error columns
//! wrapped), statuses coloured for a person at a terminal, and `--output json|yaml|table`.

use std::fmt;
use std::io::IsTerminal;

use clap::{Args, ValueEnum};
use comfy_table::{
    Cell, Color, ColumnConstraint, ContentArrangement, Table, Width, presets::UTF8_BORDERS_ONLY,
};
use serde::Serialize;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// `--output` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// For people: a table (or the command's own summary).
    Table,
    /// JSON, pretty-printed.
    Json,
    /// YAML, the same document as the JSON.
    Yaml,
}

/// `--output FORMAT` and its alias `--json`, on every command that prints data.
#[derive(Debug, Args)]
pub(crate) struct OutputArg {
    /// Print as `table` (for people), `json` or `yaml` (for programs).
    #[arg(long, short = 'o', value_enum, value_name = "FORMAT")]
    output: Option<Format>,
    /// Same as `--output json`.
    #[arg(long, conflicts_with = "output")]
    json: bool,
}

impl OutputArg {
    /// The format asked for, `default` when none was.
    pub(crate) fn format_or(&self, default: Format) -> Format {
        match (self.output, self.json) {
            (Some(format), _) => format,
            (None, true) => Format::Json,
            (None, false) => default,
        }
    }

    /// Prints `value` when JSON or YAML was asked for, and says whether it did; the command
    /// prints its table otherwise.
    pub(crate) fn print_data<T: Serialize + ?Sized>(&self, value: &T) -> anyhow::Result<bool> {
        print_as(self.format_or(Format::Table), value)
    }
}

/// Prints `value` as JSON or YAML; `false` (nothing printed) for [`Format::Table`].
pub(crate) fn print_as<T: Serialize + ?Sized>(format: Format, value: &T) -> anyhow::Result<bool> {
    match format {
        Format::Table => return Ok(false),
        Format::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Format::Yaml => print!("{}", serde_yaml_ng::to_string(value)?),
    }
    Ok(true)
}

/// Where a table goes: how many columns it may take, and whether statuses are coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Screen {
    /// `None`: no limit (standard output is a file or a pipe and `COLUMNS` is not set).
    pub(crate) width: Option<usize>,
    /// Colour codes around statuses.
    pub(crate) colour: bool,
}

impl Screen {
    /// Standard output's: `COLUMNS` when set, else the terminal's width; colour only on a
    /// terminal without `NO_COLOR` (the rule of the log lines).
    pub(crate) fn stdout() -> Self {
        let terminal = std::io::stdout().is_terminal();
        // comfy-table reads the terminal's size (through crossterm) when standard output is one.
        let width = columns(std::env::var("COLUMNS").ok().as_deref()).or_else(|| {
            let size = terminal.then(|| Table::new().width()).flatten();
            size.map(usize::from).filter(|w| *w > 0)
        });
        Self {
            width,
            colour: crate::colour_logs(terminal, std::env::var_os("NO_COLOR").as_deref()),
        }
    }
}

/// The width `COLUMNS` gives, when it is a positive number.
fn columns(value: Option<&str>) -> Option<usize> {
    value?.trim().parse().ok().filter(|w| *w > 0)
}

/// Screen columns taken by the borders and padding of [`UTF8_BORDERS_ONLY`]: `│` either side,
/// one space either side of each cell, and a space (its vertical line) between cells.
fn overhead(columns: usize) -> usize {
    2 + 2 * columns + columns.saturating_sub(1)
}

/// A column holding errors gives way first, down to this width, since it wraps onto more lines.
const WRAP_FLOOR: usize = 24;
/// No column is cut narrower than this (its header wraps), however narrow the screen.
const HARD_FLOOR: usize = 4;

/// A table laid out for a [`Screen`], with one rule for every command: a column whose header
/// ends in `ERROR` wraps, every other cell is cut to one line ending in `…`, and `STATUS`,
/// `STATE` and `OUTCOME` cells are coloured by the word they start with.
pub(crate) struct Grid {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    screen: Screen,
    /// Columns cut before the others: the ones least needed to tell rows apart.
    gives_way: Vec<usize>,
}

impl Grid {
    /// An empty table for standard output.
    pub(crate) fn new(header: &[&str]) -> Self {
        Self::for_screen(header, Screen::stdout())
    }

    /// An empty table for `screen`.
    pub(crate) fn for_screen(header: &[&str], screen: Screen) -> Self {
        Self {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
            screen,
            gives_way: Vec::new(),
        }
    }

    /// Makes the columns headed `headers` give way first when the screen is too narrow (after
    /// an error column's wrapping), down to their header's longest word.
    pub(crate) fn gives_way(&mut self, headers: &[&str]) -> &mut Self {
        self.gives_way = (0..self.header.len())
            .filter(|&c| headers.contains(&self.header[c].as_str()))
            .collect();
        self
    }

    /// Adds a row, one cell per header.
    pub(crate) fn add_row(&mut self, cells: Vec<String>) -> &mut Self {
        self.rows.push(cells);
        self
    }

    fn wraps(&self, column: usize) -> bool {
        self.header[column].ends_with("ERROR")
    }

    fn coloured(&self, column: usize) -> bool {
        matches!(self.header[column].as_str(), "STATUS" | "STATE" | "OUTCOME")
    }

    /// Each column's content width: all of it, or what fits the screen.
    fn widths(&self) -> Vec<usize> {
        let natural: Vec<usize> = (0..self.header.len())
            .map(|c| {
                let cells = self.rows.iter().filter_map(|r| r.get(c));
                let widest = if self.wraps(c) {
                    cells.flat_map(|t| t.lines()).map(str::width).max()
                } else {
                    cells.map(|t| first_line(t).width()).max()
                };
                widest.unwrap_or(0).max(self.header[c].width())
            })
            .collect();
        let Some(total) = self.screen.width else {
            return natural;
        };
        let room = total.saturating_sub(overhead(natural.len()));
        // A header's longest word: narrower, it would be cut within a word.
        let word = |c: usize| {
            let words = self.header[c].split_whitespace().map(str::width);
            words.max().unwrap_or(0).max(HARD_FLOOR)
        };
        // Each stage gives some columns a floor; the others keep their width.
        let stages: [&dyn Fn(usize) -> Option<usize>; 4] = [
            &|c| self.wraps(c).then_some(WRAP_FLOOR),
            &|c| self.gives_way.contains(&c).then(|| word(c)),
            &|c| Some(word(c)),
            &|_| Some(HARD_FLOOR),
        ];
        let mut widths = natural;
        for stage in stages {
            let floors: Vec<usize> = (0..widths.len())
                .map(|c| stage(c).map_or(widths[c], |floor| floor.min(widths[c])))
                .collect();
            shrink(&mut widths, &floors, room);
        }
        widths
    }
}

/// Takes one column at a time off the widest column above its floor until the widths fit
/// `room` (or every column is at its floor).
fn shrink(widths: &mut [usize], floors: &[usize], room: usize) {
    while widths.iter().sum::<usize>() > room {
        let widest = (0..widths.len())
            .filter(|&c| widths[c] > floors[c])
            .max_by_key(|&c| (widths[c], std::cmp::Reverse(c)));
        match widest {
            Some(c) => widths[c] -= 1,
            None => return,
        }
    }
}

/// The first line of `text`, with `…` when more lines follow.
fn first_line(text: &str) -> std::borrow::Cow<'_, str> {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    if lines.next().is_some() {
        format!("{first}…").into()
    } else {
        first.into()
    }
}

/// `text` cut to `width` columns of screen, ending in `…` when cut.
fn cut(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for ch in text.chars() {
        let w = ch.width().unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        out.push(ch);
        used += w;
    }
    out.push('…');
    out
}

/// The colour of a status word: green when well, yellow when in between, red when not.
fn tone(text: &str) -> Option<Color> {
    match text.split_whitespace().next()? {
        "healthy" | "active" => Some(Color::Green),
        "degraded" | "expired" => Some(Color::Yellow),
        "down" | "revoked" => Some(Color::Red),
        _ => None,
    }
}

impl fmt::Display for Grid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let widths = self.widths();
        let mut table = Table::new();
        table
            .load_preset(UTF8_BORDERS_ONLY)
            .set_content_arrangement(ContentArrangement::Disabled)
            .force_no_tty()
            .set_header(self.header.clone());
        if self.screen.colour {
            table.enforce_styling();
        }
        for row in &self.rows {
            let cells: Vec<Cell> = row
                .iter()
                .enumerate()
                .map(|(c, text)| {
                    let width = widths.get(c).copied().unwrap_or(usize::MAX);
                    let cell = if self.wraps(c) {
                        Cell::new(text)
                    } else {
                        Cell::new(cut(&first_line(text), width))
                    };
                    match tone(text) {
                        Some(colour) if self.screen.colour && self.coloured(c) => cell.fg(colour),
                        _ => cell,
                    }
                })
                .collect();
            table.add_row(cells);
        }
        // A header wider than its column, on a very narrow screen, wraps; so do errors.
        for (c, width) in widths.iter().enumerate() {
            if let (Some(column), Ok(fixed)) = (table.column_mut(c), u16::try_from(width + 2)) {
                column.set_constraint(ColumnConstraint::UpperBoundary(Width::Fixed(fixed)));
            }
        }
        write!(f, "{table}")
    }
}

#[cfg(test)]
mod tests {
    use unicode_width::UnicodeWidthStr;

    use super::*;

    fn grid(width: Option<usize>) -> Grid {
        let mut g = Grid::for_screen(
            &["ID", "STATUS", "URL", "LAST ERROR"],
            Screen {
                width,
                colour: false,
            },
        );
        g.add_row(vec![
            "a-very-long-server-id-that-goes-on-and-on".into(),
            "down".into(),
            "http://a-rather-long-host-name.example.internal:8080/some/path".into(),
            "send initialize request: error sending request: client error (Connect): tcp \
             connect error: Connection refused (os error 111)"
                .into(),
        ]);
        g.add_row(vec![
            "b".into(),
            "healthy".into(),
            "http://b".into(),
            String::new(),
        ]);
        g
    }

    #[test]
    fn tables_fit_the_screen_cutting_cells_and_wrapping_errors() {
        for width in [60, 80, 100, 200] {
            let text = grid(Some(width)).to_string();
            for line in text.lines() {
                assert!(line.width() <= width, "{width}: {line:?} in\n{text}");
            }
            if width < 200 {
                assert!(text.contains('…'), "{width}:\n{text}");
            }
            // The error is wrapped, not cut: each of its words is there.
            for word in ["initialize", "(Connect):", "refused", "111)"] {
                assert!(text.contains(word), "{width}: {word} in\n{text}");
            }
        }
        let whole = grid(None).to_string();
        assert!(!whole.contains('…'), "{whole}");
        assert!(whole.contains("a-very-long-server-id-that-goes-on-and-on"));
    }

    #[test]
    fn a_screen_too_narrow_for_the_headers_still_shows_every_column() {
        let text = grid(Some(20)).to_string();
        assert!(text.contains("ID") && text.contains("STAT"), "{text}");
    }

    #[test]
    fn columns_that_give_way_are_cut_first() {
        let mut g = Grid::for_screen(
            &["ID", "NAME", "URL"],
            Screen {
                width: Some(80),
                colour: false,
            },
        );
        g.add_row(vec![
            "payments-eu-1".into(),
            "Payments for the European Union, first instance".into(),
            "http://payments-eu-1.payments.svc.cluster.local:8080".into(),
        ]);
        g.gives_way(&["NAME"]);
        let text = g.to_string();
        assert!(
            text.contains("payments-eu-1")
                && text.contains("http://payments-eu-1.payments.svc.cluster.local:8080"),
            "{text}"
        );
        assert!(text.contains("Paym…"), "{text}");
    }

    #[test]
    fn cells_are_cut_by_screen_columns() {
        assert_eq!(cut("abcdef", 6), "abcdef");
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("日本語です", 5), "日本…");
        assert_eq!(first_line("one\ntwo"), "one…");
    }

    #[test]
    fn columns_needs_a_positive_number() {
        assert_eq!(columns(Some("80")), Some(80));
        assert_eq!(columns(Some(" 120 ")), Some(120));
        assert_eq!(columns(Some("0")), None);
        assert_eq!(columns(Some("wide")), None);
        assert_eq!(columns(None), None);
    }

    #[test]
    fn statuses_are_coloured_only_when_asked() {
        let plain = grid(Some(80)).to_string();
        assert!(!plain.contains('\u{1b}'), "{plain}");
        let mut g = grid(Some(80));
        g.screen.colour = true;
        let coloured = g.to_string();
        assert!(coloured.contains("\u{1b}["), "{coloured}");
        let stripped: String = coloured
            .split('\u{1b}')
            .enumerate()
            .map(|(i, part)| {
                if i == 0 {
                    part
                } else {
                    part.split_once('m').map_or("", |(_, rest)| rest)
                }
            })
            .collect();
        assert_eq!(stripped, plain);
    }
}
