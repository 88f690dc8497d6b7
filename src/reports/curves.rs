//! Learning curves with plotters: loss and accuracy side by side, training
//! against validation per epoch, with the step-level running curve behind
//! them; several runs overlay, one colour each. The same figure is drawn
//! as SVG (for browsers and the report) or PNG (with an embedded font, so
//! it looks the same on a machine without fonts).
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle, RGBColor};

use crate::atomic::write_atomically;
use crate::run_dir::{EpochRecord, StepRecord};

/// The font family every text of a figure uses.
const FONT: &str = "sans-serif";
/// DejaVu Sans (Bitstream Vera licence, `assets/fonts/LICENSE-DejaVu.txt`):
/// plotters measures text with it in SVG and draws with it in PNG.
static FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// The legend name of the step-level curve, its longest.
const RUNNING_LABEL: &str = "training, running mean within the epoch";

/// Width and height of the learning-curve figure, in pixels.
pub const HISTORY_SIZE: (u32, u32) = (1200, 500);

/// Matplotlib's "tab10" colours: one per run, distinct and colour-blind safe.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Registers the embedded font once per process; plotters has no text
/// without it.
pub(super) fn use_embedded_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok());
    if ok {
        Ok(())
    } else {
        bail!("the embedded font cannot be read")
    }
}

pub(super) fn font(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().into()
}

/// `color` mixed with white: 0 is the colour, 1 is white.
pub(super) fn tint(color: RGBColor, whiteness: f64) -> RGBColor {
    let mix = |c: u8| (f64::from(c) + (255.0 - f64::from(c)) * whiteness).round() as u8;
    RGBColor(mix(color.0), mix(color.1), mix(color.2))
}

pub(super) fn palette(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// One run's curves and the name its legend entries carry.
#[derive(Debug, Clone, Copy)]
pub struct PlotRun<'a> {
    pub label: &'a str,
    pub epochs: &'a [EpochRecord],
    pub steps: &'a [StepRecord],
}

/// An output format, chosen by the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Svg,
    Png,
}

impl ImageFormat {
    pub fn of(path: &Path) -> Result<ImageFormat> {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("svg") => Ok(ImageFormat::Svg),
            Some(e) if e.eq_ignore_ascii_case("png") => Ok(ImageFormat::Png),
            _ => bail!("{}: the file name must end in .svg or .png", path.display()),
        }
    }
}

/// Which figure a panel shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Metric {
    Loss,
    Accuracy,
}

impl Metric {
    fn title(self) -> &'static str {
        match self {
            Metric::Loss => "Loss (binary cross-entropy)",
            Metric::Accuracy => "Accuracy",
        }
    }

    fn training(self, e: &EpochRecord) -> f64 {
        match self {
            Metric::Loss => e.loss,
            Metric::Accuracy => e.accuracy,
        }
    }

    fn validation(self, e: &EpochRecord) -> f64 {
        match self {
            Metric::Loss => e.val_loss,
            Metric::Accuracy => e.val_accuracy,
        }
    }

    fn running(self, s: &StepRecord) -> f64 {
        match self {
            Metric::Loss => s.loss,
            Metric::Accuracy => s.accuracy,
        }
    }

    /// Where the legend goes: where the curves end up is away from it
    /// (loss falls, accuracy rises), and the y range leaves it room.
    fn legend_position(self) -> SeriesLabelPosition {
        match self {
            Metric::Loss => SeriesLabelPosition::UpperRight,
            Metric::Accuracy => SeriesLabelPosition::LowerRight,
        }
    }

    /// The y range that holds every value of every run, with a margin,
    /// and room for the legend above (loss) or below (accuracy) the curves
    /// under it, so that it hides none of them.
    fn range(self, runs: &[PlotRun]) -> std::ops::Range<f64> {
        let points = drawn_points(self, runs);
        let ys = || points.iter().map(|p| p.1).filter(|y| y.is_finite());
        let (low, high) = (
            ys().fold(f64::INFINITY, f64::min),
            ys().fold(f64::NEG_INFINITY, f64::max),
        );
        if low > high {
            return 0.0..1.0;
        }
        let margin = ((high - low) * 0.08).max(0.01);
        let (low, high) = match self {
            Metric::Loss => ((low - margin).max(0.0), high + margin),
            Metric::Accuracy => ((low - margin).max(0.0), (high + margin).min(1.0)),
        };
        let legend = LegendShare::of(runs);
        let legend_left = (1.0 - legend.width) * epochs_shown(runs) as f64;
        let under_legend = points
            .iter()
            .filter(|p| p.0 >= legend_left && p.1.is_finite())
            .map(|p| p.1);
        let h = legend.height;
        match self {
            Metric::Loss => {
                let highest = under_legend.fold(low, f64::max) + margin / 2.0;
                low..high.max((highest - h * low) / (1.0 - h))
            }
            Metric::Accuracy => {
                let lowest = under_legend.fold(high, f64::min) - margin / 2.0;
                low.min((lowest - h * high) / (1.0 - h)).max(0.0)..high
            }
        }
    }
}

/// Epochs on the x axis: the longest run's.
fn epochs_shown(runs: &[PlotRun]) -> usize {
    runs.iter()
        .map(|r| r.epochs.len())
        .max()
        .unwrap_or(0)
        .max(1)
}

/// The legend's share of a panel's plotting area, estimated from its
/// entries and their longest name (about 7 pixels a character in a
/// 500-pixel-wide area, 20 pixels a line in a 390-pixel-high one).
struct LegendShare {
    width: f64,
    height: f64,
}

impl LegendShare {
    fn of(runs: &[PlotRun]) -> LegendShare {
        let prefix = match runs.len() {
            1 => 0,
            _ => runs
                .iter()
                .map(|r| r.label.chars().count() + 2)
                .max()
                .unwrap_or(0),
        };
        let longest = prefix + RUNNING_LABEL.len();
        let entries: usize = runs
            .iter()
            .map(|r| if r.steps.is_empty() { 2 } else { 3 })
            .sum();
        LegendShare {
            width: ((longest * 7 + 50) as f64 / 500.0).min(1.0),
            height: (0.03 + 0.05 * entries as f64).min(0.8),
        }
    }
}

/// The learning-curve figure as SVG text.
pub fn history_svg(runs: &[PlotRun]) -> Result<String> {
    use_embedded_font()?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, HISTORY_SIZE).into_drawing_area();
        draw_history(&root, runs)?;
    }
    Ok(svg)
}

/// The learning-curve figure as an RGB image (`size.0 * size.1 * 3` bytes).
fn history_rgb(runs: &[PlotRun]) -> Result<Vec<u8>> {
    use_embedded_font()?;
    let (width, height) = HISTORY_SIZE;
    let mut pixels = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, HISTORY_SIZE).into_drawing_area();
        draw_history(&root, runs)?;
    }
    Ok(pixels)
}

/// Encodes RGB pixels as a PNG file's bytes.
pub(super) fn encode_png(pixels: &[u8], (width, height): (u32, u32)) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().context("cannot encode the PNG")?;
    writer
        .write_image_data(pixels)
        .context("cannot encode the PNG")?;
    writer.finish().context("cannot encode the PNG")?;
    Ok(bytes)
}

/// Writes the learning curves to `path` (`.svg` or `.png`), atomically.
pub fn write_history_plot(path: &Path, runs: &[PlotRun]) -> Result<()> {
    let bytes = match ImageFormat::of(path)? {
        ImageFormat::Svg => history_svg(runs)?.into_bytes(),
        ImageFormat::Png => encode_png(&history_rgb(runs)?, HISTORY_SIZE)?,
    };
    write_atomically(path, |out| std::io::Write::write_all(out, &bytes))
}

pub(super) fn drawing_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("cannot draw the plot: {e}")
}

fn draw_history<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, runs: &[PlotRun]) -> Result<()> {
    root.fill(&WHITE).map_err(drawing_error)?;
    let panels = root.split_evenly((1, 2));
    for (area, metric) in panels.iter().zip([Metric::Loss, Metric::Accuracy]) {
        draw_panel(area, metric, runs)?;
    }
    root.present().map_err(drawing_error)
}

/// Every point the panel draws for `metric`, with points along the
/// straight segments between epochs, so a legend over a segment counts.
fn drawn_points(metric: Metric, runs: &[PlotRun]) -> Vec<(f64, f64)> {
    let mut points = Vec::new();
    for run in runs {
        points.extend(
            run.steps
                .iter()
                .map(|s| (s.epochs_done(), metric.running(s))),
        );
        for value in [Metric::training, Metric::validation] {
            let ends: Vec<(f64, f64)> = run
                .epochs
                .iter()
                .map(|e| ((e.epoch + 1) as f64, value(metric, e)))
                .collect();
            points.extend(ends.iter().copied());
            for pair in ends.windows(2) {
                let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
                points.extend((1..10).map(|k| {
                    let t = f64::from(k) / 10.0;
                    (x0 + t * (x1 - x0), y0 + t * (y1 - y0))
                }));
            }
        }
    }
    points
}

/// The legend's sample of a curve: a short bar rather than a line, so the
/// SVG holds exactly one polyline per curve.
fn legend_mark(color: RGBColor) -> impl Fn((i32, i32)) -> Rectangle<(i32, i32)> {
    move |(x, y)| Rectangle::new([(x, y - 2), (x + 16, y + 2)], color.filled())
}

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The colours of one run's three curves.
#[derive(Debug, Clone, Copy)]
struct CurveColors {
    running: RGBColor,
    training: RGBColor,
    validation: RGBColor,
}

impl CurveColors {
    /// Alone, training and validation get two distinct colours (blue and
    /// orange, as in Keras's tutorials); among several runs each run has one
    /// hue, lighter for training.
    fn of_run(i: usize, runs: usize) -> CurveColors {
        if runs == 1 {
            CurveColors {
                running: tint(palette(0), 0.6),
                training: palette(0),
                validation: palette(1),
            }
        } else {
            CurveColors {
                running: tint(palette(i), 0.65),
                training: tint(palette(i), 0.35),
                validation: palette(i),
            }
        }
    }
}

/// One run's three curves in a panel; `name` makes the legend entry of each.
fn draw_run<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    metric: Metric,
    run: &PlotRun,
    colors: CurveColors,
    name: impl Fn(&str) -> String,
) -> Result<()> {
    let CurveColors {
        running,
        training,
        validation,
    } = colors;
    if !run.steps.is_empty() {
        let points = run
            .steps
            .iter()
            .map(|s| (s.epochs_done(), metric.running(s)));
        chart
            .draw_series(LineSeries::new(points, running.stroke_width(1)))
            .map_err(drawing_error)?
            .label(name("training, running mean within the epoch"))
            .legend(legend_mark(running));
    }
    let at_epoch_end = |value: fn(Metric, &EpochRecord) -> f64| -> Vec<(f64, f64)> {
        run.epochs
            .iter()
            .map(|e| ((e.epoch + 1) as f64, value(metric, e)))
            .collect()
    };
    let train_points = at_epoch_end(Metric::training);
    chart
        .draw_series(LineSeries::new(
            train_points.clone(),
            training.stroke_width(2),
        ))
        .map_err(drawing_error)?
        .label(name("training"))
        .legend(legend_mark(training));
    chart
        .draw_series(
            train_points
                .iter()
                .map(|&p| Circle::new(p, 4, training.filled())),
        )
        .map_err(drawing_error)?;
    let validation_points = at_epoch_end(Metric::validation);
    chart
        .draw_series(LineSeries::new(
            validation_points.clone(),
            validation.stroke_width(3),
        ))
        .map_err(drawing_error)?
        .label(name("validation"))
        .legend(legend_mark(validation));
    chart
        .draw_series(
            validation_points
                .iter()
                .map(|&p| TriangleMarker::new(p, 6, validation.filled())),
        )
        .map_err(drawing_error)?;
    Ok(())
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    metric: Metric,
    runs: &[PlotRun],
) -> Result<()> {
    let epochs = runs
        .iter()
        .map(|r| r.epochs.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(metric.title(), font(20))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..epochs as f64, metric.range(runs))
        .map_err(drawing_error)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .x_labels(epochs + 1)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.2}"))
        .label_style(font(15))
        .axis_desc_style(font(16))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(drawing_error)?;
    for (i, run) in runs.iter().enumerate() {
        let name = |what: &str| match runs.len() {
            1 => what.to_owned(),
            _ => format!("{}: {what}", run.label),
        };
        draw_run(
            &mut chart,
            metric,
            run,
            CurveColors::of_run(i, runs.len()),
            name,
        )?;
    }
    chart
        .configure_series_labels()
        .position(metric.legend_position())
        .label_font(font(14))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(190, 190, 190))
        .draw()
        .map_err(drawing_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epochs(n: usize) -> Vec<EpochRecord> {
        (0..n)
            .map(|epoch| EpochRecord {
                epoch,
                accuracy: 0.6 + 0.1 * epoch as f64,
                loss: 0.6 - 0.1 * epoch as f64,
                val_accuracy: 0.65 + 0.05 * epoch as f64,
                val_loss: 0.55 - 0.05 * epoch as f64,
                seconds: 10.0,
                samples_per_second: 2500.0,
                learning_rate: None,
            })
            .collect()
    }

    fn steps(n: usize) -> Vec<StepRecord> {
        (0..n)
            .flat_map(|epoch| {
                (1..=4).map(move |step| StepRecord {
                    epoch,
                    step,
                    steps_per_epoch: 4,
                    accuracy: 0.5 + 0.02 * step as f64,
                    loss: 0.7 - 0.02 * step as f64,
                })
            })
            .collect()
    }

    /// The coloured polylines (the axes and ticks are black ones), as
    /// their numbers of points.
    fn curves(svg: &str) -> Vec<usize> {
        let doc = roxmltree::Document::parse(svg).expect("the SVG is XML");
        doc.descendants()
            .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke") != Some("#000000"))
            .map(|n| n.attribute("points").unwrap().split_whitespace().count())
            .collect()
    }

    #[test]
    fn the_svg_holds_one_polyline_per_curve() {
        let (e, s) = (epochs(3), steps(3));
        let one = PlotRun {
            label: "a",
            epochs: &e,
            steps: &s,
        };
        // Running (4 steps x 3 epochs), training and validation (3 epochs),
        // in each of the two panels.
        assert_eq!(curves(&history_svg(&[one]).unwrap()), [12, 3, 3, 12, 3, 3]);
        let without_steps = PlotRun { steps: &[], ..one };
        let both = curves(&history_svg(&[one, without_steps]).unwrap());
        assert_eq!(both, [12, 3, 3, 3, 3, 12, 3, 3, 3, 3]);
    }

    #[test]
    fn the_png_decodes_at_the_figure_size() {
        let e = epochs(2);
        let run = PlotRun {
            label: "a",
            epochs: &e,
            steps: &[],
        };
        let bytes = encode_png(&history_rgb(&[run]).unwrap(), HISTORY_SIZE).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let info = decoder.read_info().unwrap().info().clone();
        assert_eq!((info.width, info.height), HISTORY_SIZE);
    }

    #[test]
    fn the_legend_never_covers_a_curve() {
        let (e, s) = (epochs(5), steps(5));
        let runs = [PlotRun {
            label: "a",
            epochs: &e,
            steps: &s,
        }; 2];
        let legend = LegendShare::of(&runs);
        let left = (1.0 - legend.width) * 5.0;
        for metric in [Metric::Loss, Metric::Accuracy] {
            let range = metric.range(&runs);
            let share = |y: f64| (y - range.start) / (range.end - range.start);
            for (x, y) in drawn_points(metric, &runs) {
                let free = match metric {
                    Metric::Loss => share(y) <= 1.0 - legend.height,
                    Metric::Accuracy => share(y) >= legend.height,
                };
                assert!(x < left || free, "{metric:?}: ({x}, {y}) under the legend");
            }
        }
    }

    #[test]
    fn only_svg_and_png_names_are_accepted() {
        assert_eq!(
            ImageFormat::of(Path::new("a/h.SVG")).unwrap(),
            ImageFormat::Svg
        );
        let err = ImageFormat::of(Path::new("h.jpg")).unwrap_err().to_string();
        assert!(err.contains("h.jpg"), "{err}");
    }
}
