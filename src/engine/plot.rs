//! The pass@t plot: repair points (batched and sequential) with their 95%
//! intervals over tasks, the n_fr = 1 curve, and each mode's baseline (the
//! same bootstrap at n_fr = 0) as a band, as SVG and PNG.

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

/// A band from (x, lo, hi) triples sorted by x.
fn band(pts: &[(f64, f64, f64)]) -> Vec<(f64, f64)> {
    pts.iter()
        .map(|&(x, lo, _)| (x, lo))
        .chain(pts.iter().rev().map(|&(x, _, hi)| (x, hi)))
        .collect()
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
        .map(|b| b.tokens_ci.map_or(b.tokens, |c| c.hi))
        .chain(
            r.pass_at_t
                .iter()
                .map(|p| p.tokens_ci.map_or(p.tokens + p.tokens_std, |c| c.hi)),
        )
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
        .y_desc("pass rate (bands and bars: 95% CI over tasks)")
        .label_style(("sans-serif", 14))
        .draw()?;
    for (mode, color) in [(Mode::Batched, BLUE), (Mode::Sequential, RED)] {
        let name = format!("{mode:?}").to_lowercase();
        // The baseline: a band for its interval, a dashed line for its mean.
        let base: Vec<(f64, f64, f64)> = r
            .baseline
            .iter()
            .filter(|b| b.mode == mode)
            .map(|b| {
                let c = b.pass_ci.unwrap_or(super::interval::Interval {
                    lo: b.pass_rate,
                    hi: b.pass_rate,
                });
                (b.tokens, c.lo, c.hi)
            })
            .collect();
        if !base.is_empty() {
            chart.draw_series(std::iter::once(Polygon::new(band(&base), color.mix(0.08))))?;
            chart
                .draw_series(DashedLineSeries::new(
                    r.baseline
                        .iter()
                        .filter(|b| b.mode == mode)
                        .map(|b| (b.tokens, b.pass_rate)),
                    6,
                    4,
                    color.mix(0.7).stroke_width(2),
                ))?
                .label(format!("baseline (n_fr = 0), {name}"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.mix(0.7).stroke_width(2))
                });
        }
        // The n_fr = 1 curve over n_p, with its band.
        let mut curve: Vec<&crate::engine::estimate::Point> = r
            .pass_at_t
            .iter()
            .filter(|p| p.mode == mode && p.nf == 1)
            .collect();
        curve.sort_by_key(|p| p.np);
        if curve.len() > 1 {
            let b: Vec<(f64, f64, f64)> = curve
                .iter()
                .filter_map(|p| p.pass_ci.map(|c| (p.tokens, c.lo, c.hi)))
                .collect();
            chart.draw_series(std::iter::once(Polygon::new(band(&b), color.mix(0.15))))?;
            chart.draw_series(LineSeries::new(
                curve.iter().map(|p| (p.tokens, p.pass_rate)),
                color.stroke_width(1),
            ))?;
        }
        let pts: Vec<&crate::engine::estimate::Point> = r
            .pass_at_t
            .iter()
            .filter(|p| p.mode == mode && p.curve != "dense")
            .collect();
        if pts.is_empty() {
            continue;
        }
        chart.draw_series(pts.iter().flat_map(|p| {
            let (x, y) = (p.tokens, p.pass_rate);
            let pc = p
                .pass_ci
                .map_or((y - p.pass_std, y + p.pass_std), |c| (c.lo, c.hi));
            let tc = p.tokens_ci.map_or((x, x), |c| (c.lo, c.hi));
            [
                PathElement::new(vec![(x, pc.0.max(0.0)), (x, pc.1.min(1.0))], color.mix(0.5)),
                PathElement::new(vec![(tc.0, y), (tc.1, y)], color.mix(0.5)),
            ]
        }))?;
        chart
            .draw_series(
                pts.iter()
                    .map(|p| Circle::new((p.tokens, p.pass_rate), 5, color.filled())),
            )?
            .label(format!("self-repair, {name} (line: n_fr = 1)"))
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
