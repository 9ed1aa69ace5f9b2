//! The pass@t plot: repair points (batched and sequential) against the
//! i.i.d. baseline curve, as SVG and PNG.

use super::report::Results;
use super::store::Mode;
use plotters::prelude::*;
use std::path::Path;

/// DejaVu Sans (Bitstream Vera licence), so text renders the same on any
/// machine, with or without system fonts.
const FONT: &[u8] = include_bytes!("DejaVuSans.ttf");

#[derive(Debug, thiserror::Error)]
#[error("cannot draw {path}: {reason}")]
pub struct PlotError {
    path: String,
    reason: String,
}

fn register() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Only fails on a malformed font, which the embedded one is not.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Write `pass_at_t.svg` and `pass_at_t.png` into `dir`.
pub fn write(results: &Results, dir: &Path) -> Result<(), PlotError> {
    register();
    let svg = dir.join("pass_at_t.svg");
    let png = dir.join("pass_at_t.png");
    let err = |p: &Path| {
        let path = p.display().to_string();
        move |e: Box<dyn std::error::Error>| PlotError {
            path: path.clone(),
            reason: e.to_string(),
        }
    };
    draw(
        SVGBackend::new(&svg, (900, 600)).into_drawing_area(),
        results,
    )
    .map_err(err(&svg))?;
    draw(
        BitMapBackend::new(&png, (900, 600)).into_drawing_area(),
        results,
    )
    .map_err(err(&png))?;
    Ok(())
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    r: &Results,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let max_x = r
        .baseline
        .iter()
        .map(|b| b.tokens)
        .chain(r.pass_at_t.iter().map(|p| p.tokens + p.tokens_std))
        .fold(1.0f64, f64::max)
        * 1.05;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("pass@t · {} · {}", r.dataset, r.model),
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..max_x, 0f64..1.0f64)?;
    chart
        .configure_mesh()
        .x_desc("mean generated tokens per task (program + explanation)")
        .y_desc("pass rate")
        .label_style(("sans-serif", 14))
        .draw()?;
    if !r.baseline.is_empty() {
        chart
            .draw_series(LineSeries::new(
                r.baseline.iter().map(|b| (b.tokens, b.pass_rate)),
                BLACK.stroke_width(2),
            ))?
            .label("i.i.d. baseline (pass@k)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2)));
    }
    for (mode, color) in [(Mode::Batched, BLUE), (Mode::Sequential, RED)] {
        let pts: Vec<(f64, f64, f64)> = r
            .pass_at_t
            .iter()
            .filter(|p| p.mode == mode)
            .map(|p| (p.tokens, p.pass_rate, p.pass_std))
            .collect();
        if pts.is_empty() {
            continue;
        }
        chart.draw_series(pts.iter().map(|&(x, y, s)| {
            PathElement::new(
                vec![(x, (y - s).max(0.0)), (x, (y + s).min(1.0))],
                color.mix(0.5),
            )
        }))?;
        chart
            .draw_series(
                pts.iter()
                    .map(|&(x, y, _)| Circle::new((x, y), 5, color.filled())),
            )?
            .label(format!("self-repair, {mode:?}").to_lowercase())
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(())
}
