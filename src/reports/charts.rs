//! The report's two analysis charts, as SVG: a reliability diagram
//! (calibration) and accuracy by review length.
use anyhow::Result;
use plotters::prelude::*;
use plotters::style::RGBColor;

use super::curves::{drawing_error, font, palette, use_embedded_font};
use super::metrics::{CalibrationBin, LengthBucket};

const CALIBRATION_SIZE: (u32, u32) = (520, 460);
const LENGTH_SIZE: (u32, u32) = (640, 460);

/// Mean predicted probability against the observed fraction of positives,
/// per non-empty bin, over the diagonal of a perfectly calibrated model.
pub fn calibration_svg(bins: &[CalibrationBin]) -> Result<String> {
    use_embedded_font()?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CALIBRATION_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(drawing_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Calibration (reliability diagram)", font(20))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)
            .map_err(drawing_error)?;
        chart
            .configure_mesh()
            .x_desc("mean predicted probability")
            .y_desc("fraction positive")
            .label_style(font(15))
            .axis_desc_style(font(16))
            .light_line_style(WHITE)
            .draw()
            .map_err(drawing_error)?;
        let grey = RGBColor(150, 150, 150);
        chart
            .draw_series(LineSeries::new(
                [(0.0, 0.0), (1.0, 1.0)],
                grey.stroke_width(1),
            ))
            .map_err(drawing_error)?
            .label("perfectly calibrated")
            .legend(move |(x, y)| Rectangle::new([(x, y - 1), (x + 16, y + 1)], grey.filled()));
        let points: Vec<(f64, f64)> = bins
            .iter()
            .filter(|b| b.count > 0)
            .map(|b| (b.mean_probability, b.positive_fraction))
            .collect();
        let color = palette(0);
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(drawing_error)?
            .label("this model, 10 bins")
            .legend(move |(x, y)| Rectangle::new([(x, y - 2), (x + 16, y + 2)], color.filled()));
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(drawing_error)?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(font(13))
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(190, 190, 190))
            .draw()
            .map_err(drawing_error)?;
        root.present().map_err(drawing_error)?;
    }
    Ok(svg)
}

/// `0-49`, `50-99`, ..., `400+` words.
pub fn bucket_name(bucket: &LengthBucket) -> String {
    match bucket.max_words {
        Some(max) => format!("{}\u{2013}{}", bucket.min_words, max - 1),
        None => format!("{}+", bucket.min_words),
    }
}

/// One bar per non-empty length bucket; cut reviews in the second colour.
pub fn length_svg(buckets: &[LengthBucket]) -> Result<String> {
    use_embedded_font()?;
    let shown: Vec<&LengthBucket> = buckets.iter().filter(|b| b.count > 0).collect();
    let lowest = shown.iter().map(|b| b.accuracy).fold(1.0, f64::min);
    let floor = ((lowest - 0.1) * 10.0).floor().max(0.0) / 10.0;
    let names: Vec<String> = shown.iter().map(|b| bucket_name(b)).collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, LENGTH_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(drawing_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Accuracy by review length", font(20))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5..shown.len() as f64 - 0.5, floor..1.0)
            .map_err(drawing_error)?;
        let label_of = |x: &f64| {
            let i = x.round();
            let exact = (x - i).abs() < 1e-6 && i >= 0.0;
            names
                .get(i as usize)
                .filter(|_| exact)
                .cloned()
                .unwrap_or_default()
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(shown.len().max(1))
            .x_label_formatter(&label_of)
            .x_desc("review length in words (orange: cut to maxlen)")
            .y_desc("accuracy")
            .label_style(font(15))
            .axis_desc_style(font(16))
            .light_line_style(WHITE)
            .draw()
            .map_err(drawing_error)?;
        for bucket_cut in [false, true] {
            let color = if bucket_cut { palette(1) } else { palette(0) };
            let bars = shown
                .iter()
                .enumerate()
                .filter(|(_, b)| b.truncated == bucket_cut)
                .map(|(i, b)| {
                    let x = i as f64;
                    Rectangle::new([(x - 0.35, floor), (x + 0.35, b.accuracy)], color.filled())
                });
            chart.draw_series(bars).map_err(drawing_error)?;
        }
        root.present().map_err(drawing_error)?;
    }
    Ok(svg)
}
