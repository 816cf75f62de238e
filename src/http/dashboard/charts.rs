//! The dashboard's charts: SVG drawn on the server with `plotters`.
//!
//! plotters is built without its default features: only the SVG backend, no bitmap backend
//! and no `ttf` (font-kit, which needs fontconfig). Text is laid out with plotters' built-in
//! estimate and drawn as SVG `<text>` in the browser's own sans-serif font, so no font file is
//! read on the server and nothing is fetched by the browser. Category labels and value labels
//! are placed by this module (at the pixel positions of the chart's coordinates), which keeps
//! bars and labels aligned whatever the number of categories.
//!
//! Every chart is an `<svg role="img">` with a `<title>` and an `aria-label`; the page puts a
//! table with the same numbers next to it.
//!
//! A drawing is an [`Svg`]: markup made here, by plotters (which escapes the text it draws) and
//! by `render` below (which escapes the title it adds). It is the only markup from outside the
//! page's templates that they write without escaping, and nothing outside this module can make
//! one: its field is private and it has no constructor from a string. A chart gives its
//! drawing:
//!
//! ```
//! use subdesk::http::dashboard::charts::{self, Svg};
//! let chart = charts::lines("Cases per day", &[], &[], "cases");
//! let svg: &Svg = chart.svg().expect("drawn");
//! assert!(svg.as_str().starts_with("<svg class=\"chart\" role=\"img\""));
//! ```
//!
//! but no string becomes one:
//!
//! ```compile_fail,E0423
//! use subdesk::http::dashboard::charts::Svg;
//! let forged = Svg(String::from("<script>alert(1)</script>"));
//! ```

use std::fmt;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Drawing size; the page scales the SVG to its column (`viewBox`).
const WIDTH: u32 = 720;
const HEIGHT: u32 = 340;
const FONT: &str = "sans-serif";

/// The Okabe-Ito palette: tells series apart for every kind of colour vision.
pub const BLUE: RGBColor = RGBColor(0x00, 0x72, 0xB2);
pub const ORANGE: RGBColor = RGBColor(0xE6, 0x9F, 0x00);
pub const GREEN: RGBColor = RGBColor(0x00, 0x9E, 0x73);
pub const VERMILION: RGBColor = RGBColor(0xD5, 0x5E, 0x00);
pub const SKY: RGBColor = RGBColor(0x56, 0xB4, 0xE9);
pub const PURPLE: RGBColor = RGBColor(0xCC, 0x79, 0xA7);
const INK: RGBColor = RGBColor(0x1F, 0x29, 0x37);
const MUTED: RGBColor = RGBColor(0x6B, 0x72, 0x80);
const GRID: RGBColor = RGBColor(0xE5, 0xE7, 0xEB);

/// An SVG chart drawn by this module: trusted markup, written into the page as it is.
#[derive(Debug, Clone)]
pub struct Svg(String);

impl Svg {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Svg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The page's templates write an `Svg` without escaping it (and escape everything else).
impl askama::filters::HtmlSafe for Svg {}

/// A chart as the page shows it: the drawing, or the title of one that could not be drawn
/// (the page says so; the table next to it still has the numbers).
#[derive(Debug, Clone)]
pub enum Chart {
    Drawn(Svg),
    Missing(String),
}

impl Chart {
    /// The drawing, if there is one.
    pub fn svg(&self) -> Option<&Svg> {
        match self {
            Self::Drawn(svg) => Some(svg),
            Self::Missing(_) => None,
        }
    }
}

/// One named series of values, one per category (or per x position).
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub color: RGBColor,
    pub values: Vec<f64>,
}

impl Series {
    pub fn new(name: impl Into<String>, color: RGBColor, values: Vec<f64>) -> Self {
        Self {
            name: name.into(),
            color,
            values,
        }
    }
}

/// How a bar chart labels its axis and its bars.
pub struct Bars<'a> {
    /// What the chart shows, in words (title and accessible name).
    pub title: &'a str,
    pub categories: &'a [String],
    /// Stacked, bottom first.
    pub series: &'a [Series],
    pub y_desc: &'a str,
    /// Formats axis values and the total above each bar.
    pub format: fn(f64) -> String,
    /// A target per category, drawn as a dashed line across its bar.
    pub targets: Option<&'a [f64]>,
    /// The y axis runs to at least this.
    pub y_floor: f64,
}

pub fn whole(value: f64) -> String {
    format!("{value:.0}")
}

pub fn percent(value: f64) -> String {
    format!("{value:.0}%")
}

pub fn hours(value: f64) -> String {
    if value >= 10.0 || value == 0.0 {
        format!("{value:.0} h")
    } else {
        format!("{value:.1} h")
    }
}

/// A round upper bound for the y axis.
fn nice_max(max: f64, floor: f64) -> f64 {
    let max = max.max(floor).max(1.0);
    let magnitude = 10f64.powf(max.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if step * magnitude >= max {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

/// Shortens a label to `max` characters.
fn clip(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        label.to_string()
    } else {
        let mut short: String = label.chars().take(max.saturating_sub(1)).collect();
        short.push('…');
        short
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Drawn = Result<(), Box<dyn std::error::Error>>;

/// Draws with `draw` and returns the SVG, made accessible and scalable; a chart that cannot
/// be drawn is [`Chart::Missing`].
fn render(title: &str, draw: impl FnOnce(&Area<'_>) -> Drawn) -> Chart {
    let mut svg = String::new();
    let drawn = {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root).and_then(|()| root.present().map_err(Into::into))
    };
    if let Err(error) = drawn {
        tracing::warn!(%error, chart = title, "chart not drawn");
        return Chart::Missing(title.to_string());
    }
    let title = escape(title);
    Chart::Drawn(Svg(svg
        .replacen(
            "<svg ",
            &format!("<svg class=\"chart\" role=\"img\" aria-label=\"{title}\" "),
            1,
        )
        .replacen('>', &format!("><title>{title}</title>"), 1)))
}

/// A legend above the plot: a swatch and a name per series.
fn legend(root: &Area<'_>, series: &[Series]) -> Drawn {
    let mut x = 56;
    for s in series {
        root.draw(&Rectangle::new([(x, 11), (x + 14, 25)], s.color.filled()))?;
        root.draw(&Text::new(
            s.name.clone(),
            (x + 20, 18),
            (FONT, 19)
                .into_font()
                .color(&INK)
                .pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
        x += 36 + 9 * i32::try_from(s.name.chars().count()).unwrap_or(10);
    }
    Ok(())
}

/// Bars per category, the series stacked, the total above each bar.
impl<'a> Bars<'a> {
    /// A chart of counts: whole numbers, no targets.
    pub fn counts(
        title: &'a str,
        categories: &'a [String],
        series: &'a [Series],
        y_desc: &'a str,
        y_floor: f64,
    ) -> Self {
        let format = whole;
        Self {
            title,
            categories,
            series,
            y_desc,
            format,
            targets: None,
            y_floor,
        }
    }
}

pub fn bars(spec: &Bars<'_>) -> Chart {
    render(spec.title, |root| {
        root.fill(&WHITE)?;
        let n = spec.categories.len().max(1);
        let totals: Vec<f64> = (0..n)
            .map(|i| {
                spec.series
                    .iter()
                    .map(|s| s.values.get(i).copied().unwrap_or(0.0))
                    .sum()
            })
            .collect();
        let highest = totals
            .iter()
            .copied()
            .chain(spec.targets.unwrap_or(&[]).iter().copied())
            .fold(0.0, f64::max);
        // Room above the highest bar for its label, unless the floor (100%) already has it.
        let y_max = if highest <= spec.y_floor {
            nice_max(spec.y_floor, 1.0)
        } else {
            nice_max(highest * 1.12, 1.0)
        };
        let label_size = if n > 8 { 16 } else { 19 };
        let top = if spec.series.len() > 1 { 44 } else { 24 };
        let mut chart = ChartBuilder::on(root)
            .margin_top(top)
            .margin_right(16)
            .margin_left(8)
            .margin_bottom(8)
            .x_label_area_size(38)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..n as f64, 0f64..y_max)?;
        let format = spec.format;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_labels(5)
            .y_label_formatter(&|v| format(*v))
            .y_desc(spec.y_desc)
            .light_line_style(WHITE)
            .bold_line_style(GRID)
            .axis_style(MUTED)
            .label_style((FONT, 18).into_font().color(&MUTED))
            .axis_desc_style((FONT, 18).into_font().color(&MUTED))
            .draw()?;
        for i in 0..n {
            let x0 = i as f64 + 0.18;
            let x1 = i as f64 + 0.82;
            let mut base = 0.0;
            for s in spec.series {
                let value = s.values.get(i).copied().unwrap_or(0.0);
                if value > 0.0 {
                    chart.draw_series(std::iter::once(Rectangle::new(
                        [(x0, base), (x1, base + value)],
                        s.color.filled(),
                    )))?;
                }
                base += value;
            }
            if let Some(target) = spec.targets.and_then(|t| t.get(i)) {
                chart.draw_series(DashedLineSeries::new(
                    [(i as f64 + 0.06, *target), (i as f64 + 0.94, *target)],
                    6,
                    4,
                    INK.stroke_width(2),
                ))?;
            }
            let (px, py) = chart.backend_coord(&(i as f64 + 0.5, base));
            root.draw(&Text::new(
                format(base),
                (px, py - 4),
                (FONT, label_size)
                    .into_font()
                    .color(&INK)
                    .pos(Pos::new(HPos::Center, VPos::Bottom)),
            ))?;
            let (lx, ly) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
            let label = spec.categories.get(i).map_or("", String::as_str);
            root.draw(&Text::new(
                clip(label, (70 / n).clamp(6, 18)),
                (lx, ly + 8),
                (FONT, label_size)
                    .into_font()
                    .color(&INK)
                    .pos(Pos::new(HPos::Center, VPos::Top)),
            ))?;
        }
        if spec.series.len() > 1 {
            legend(root, spec.series)?;
        }
        Ok(())
    })
}

/// Lines over `x` (days), one per series, with markers.
pub fn lines(title: &str, x: &[String], series: &[Series], y_desc: &str) -> Chart {
    render(title, |root| {
        root.fill(&WHITE)?;
        let n = x.len().max(2);
        let highest = series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .fold(0.0, f64::max);
        let y_max = nice_max(highest * 1.12, 4.0);
        let mut chart = ChartBuilder::on(root)
            .margin_top(44)
            .margin_right(24)
            .margin_left(8)
            .margin_bottom(8)
            .x_label_area_size(38)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..y_max)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_labels(5)
            .y_label_formatter(&|v| whole(*v))
            .y_desc(y_desc)
            .light_line_style(WHITE)
            .bold_line_style(GRID)
            .axis_style(MUTED)
            .label_style((FONT, 18).into_font().color(&MUTED))
            .axis_desc_style((FONT, 18).into_font().color(&MUTED))
            .draw()?;
        for s in series {
            let points: Vec<(f64, f64)> = s
                .values
                .iter()
                .enumerate()
                .map(|(i, v)| (i as f64, *v))
                .collect();
            chart.draw_series(LineSeries::new(points.clone(), s.color.stroke_width(3)))?;
            chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, s.color.filled())))?;
        }
        // Every k-th day is labelled, so that labels never overlap.
        let every = x.len().div_ceil(8).max(1);
        for (i, label) in x.iter().enumerate().step_by(every) {
            let (lx, ly) = chart.backend_coord(&(i as f64, 0.0));
            root.draw(&Text::new(
                label.clone(),
                (lx, ly + 8),
                (FONT, 19)
                    .into_font()
                    .color(&INK)
                    .pos(Pos::new(HPos::Center, VPos::Top)),
            ))?;
        }
        legend(root, series)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_chart_is_an_accessible_svg_with_its_labels_and_totals_as_text() {
        let categories = vec!["P1".to_string(), "P2 <script>".to_string()];
        let series = [
            Series::new("open", BLUE, vec![2.0, 1.0]),
            Series::new("waiting", ORANGE, vec![1.0, 0.0]),
        ];
        let svg = bars(&Bars {
            title: "Open cases",
            categories: &categories,
            series: &series,
            y_desc: "cases",
            format: whole,
            targets: None,
            y_floor: 4.0,
        });
        let svg = svg.svg().expect("drawn").to_string();
        assert!(svg.starts_with("<svg class=\"chart\" role=\"img\" aria-label=\"Open cases\" "));
        assert!(svg.contains("<title>Open cases</title>"));
        assert!(
            svg.contains(">\n3\n</text>") || svg.contains(">3\n</text>"),
            "{svg}"
        );
        assert!(svg.contains("P2 &lt;script&gt;"));
        assert!(!svg.contains("<script>"));
    }

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(nice_max(0.0, 4.0), 5.0);
        assert_eq!(nice_max(7.3, 1.0), 10.0);
        assert_eq!(nice_max(112.0, 1.0), 200.0);
        assert_eq!(nice_max(230.0, 1.0), 250.0);
    }
}
