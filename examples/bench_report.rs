//! Merges the benchmark examples' JSON fragments into one results file and renders it
//! as Markdown: `bench-results/<name>.json` and `bench-results/<name>.md`.
//!
//! ```text
//! bench_report --out-dir bench-results --name 2026-11-30 --commit abc1234 \
//!     [--quick] [--started-load "0.5 0.6 0.7"] FRAGMENT.json…
//! ```

#[path = "bench_support/mod.rs"]
mod bench_support;

use std::fmt::Write as _;
use std::path::PathBuf;

use bench_support::machine::{Load, Machine};
use bench_support::results::{Comparison, Section};
use serde::{Deserialize, Serialize};

/// The whole run.
#[derive(Debug, Serialize, Deserialize)]
struct Run {
    /// When the run started and ended (RFC 3339, UTC).
    started_at: String,
    ended_at: String,
    /// `git rev-parse --short HEAD` of the code measured (with `-dirty` when modified).
    commit: String,
    /// Whether this was the `--quick` smoke run (smaller sizes, fewer rounds).
    quick: bool,
    machine: Machine,
    /// Load averages as the run started and ended.
    load_at_start: Load,
    load_at_end: Load,
    sections: Vec<Section>,
}

fn main() {
    let mut out_dir = PathBuf::from("bench-results");
    let mut name = None;
    let mut commit = String::from("unknown");
    let mut quick = false;
    let mut started_at = None;
    let mut load_at_start = None;
    let mut fragments = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--out-dir" => out_dir = PathBuf::from(value()),
            "--name" => name = Some(value()),
            "--commit" => commit = value(),
            "--quick" => quick = true,
            "--started-at" => started_at = Some(value()),
            "--started-load" => {
                let v: Vec<f64> = value()
                    .split_whitespace()
                    .map(|f| f.parse().expect("load average"))
                    .collect();
                load_at_start = Some(Load {
                    one: v[0],
                    five: v[1],
                    fifteen: v[2],
                });
            }
            _ => fragments.push(PathBuf::from(arg)),
        }
    }
    let now = jiff::Timestamp::now();
    let name = name.unwrap_or_else(|| now.strftime("%Y-%m-%d").to_string());
    let mut sections: Vec<Section> = Vec::new();
    for fragment in &fragments {
        let text = std::fs::read_to_string(fragment)
            .unwrap_or_else(|e| panic!("read {}: {e}", fragment.display()));
        sections.extend(
            serde_json::from_str::<Vec<Section>>(&text)
                .unwrap_or_else(|e| panic!("parse {}: {e}", fragment.display())),
        );
    }
    // Titles start with the issue's numbering ("1.", "1b.", "2.", …).
    sections.sort_by(|a, b| a.title.cmp(&b.title));
    let run = Run {
        started_at: started_at.unwrap_or_else(|| now.to_string()),
        ended_at: now.to_string(),
        commit,
        quick,
        machine: Machine::describe(),
        load_at_start: load_at_start.unwrap_or_else(Load::now),
        load_at_end: Load::now(),
        sections,
    };
    std::fs::create_dir_all(&out_dir).expect("create the results folder");
    let json = out_dir.join(format!("{name}.json"));
    let markdown = out_dir.join(format!("{name}.md"));
    std::fs::write(
        &json,
        serde_json::to_string_pretty(&run).expect("serialise"),
    )
    .expect("write the JSON results");
    std::fs::write(&markdown, render(&run)).expect("write the Markdown results");
    println!("{}\n{}", json.display(), markdown.display());
}

fn render(run: &Run) -> String {
    let mut md = String::new();
    let m = &run.machine;
    let load = |l: &Load| format!("{:.2} / {:.2} / {:.2}", l.one, l.five, l.fifteen);
    let _ = writeln!(
        md,
        "# Benchmark results{}\n\n\
         - run: {} → {}\n- commit: `{}`\n\
         - machine: {} CPUs ({}), {} MiB memory, {}, Linux {}\n\
         - load average (1 / 5 / 15 min): {} at start, {} at end\n",
        if run.quick { " (quick smoke run)" } else { "" },
        run.started_at,
        run.ended_at,
        run.commit,
        m.cpus,
        m.cpu_model,
        m.memory_mib,
        m.os,
        m.kernel,
        load(&run.load_at_start),
        load(&run.load_at_end),
    );
    md.push_str("## Targets\n\n| benchmark | target | measured | met |\n|---|---|---:|:---:|\n");
    for section in &run.sections {
        for check in &section.checks {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                section.title,
                escape(&check.target),
                number(check.value),
                if check.met { "yes" } else { "**no**" }
            );
        }
    }
    md.push_str(
        "\nRatios are ours / reference per interleaved round (time: lower is better); \
         each cell is the median, with min–max.\n",
    );
    for section in &run.sections {
        let _ = writeln!(md, "\n## {}\n", section.title);
        if let Some((start, end)) = &section.load {
            let _ = writeln!(md, "Load average: {} → {}\n", load(start), load(end));
        }
        if !section.comparisons.is_empty() {
            md.push_str(
                "| workload | ours | median (min–max) | reference | median (min–max) | \
                 ratio (min–max) | rounds |\n|---|---|---:|---|---:|---:|---:|\n",
            );
            for c in &section.comparisons {
                md.push_str(&comparison_row(c));
            }
            md.push('\n');
        }
        if !section.facts.is_empty() {
            md.push_str("| figure | value |\n|---|---:|\n");
            for fact in &section.facts {
                let _ = writeln!(
                    md,
                    "| {} | {} {} |",
                    escape(&fact.label),
                    number(fact.value),
                    fact.unit
                );
            }
            md.push('\n');
        }
        for note in &section.notes {
            let _ = writeln!(md, "- {}", escape(note));
        }
    }
    md
}

fn comparison_row(c: &Comparison) -> String {
    let series = |s: &bench_support::stats::Series| {
        format!(
            "{} {} ({}–{})",
            number(s.median),
            c.unit,
            number(s.min),
            number(s.max)
        )
    };
    format!(
        "| {} | {} | {} | {} | {} | **{:.2}×** ({:.2}–{:.2}) | {} |\n",
        escape(&c.label),
        escape(&c.ours_name),
        series(&c.ours),
        escape(&c.reference_name),
        series(&c.reference),
        c.ratio.median,
        c.ratio.min,
        c.ratio.max,
        c.ratio.samples.len()
    )
}

/// Three significant digits, thousands separated.
fn number(value: f64) -> String {
    let magnitude = value.abs();
    let decimals = if magnitude >= 100.0 || magnitude == 0.0 {
        0
    } else if magnitude >= 10.0 {
        1
    } else if magnitude >= 1.0 {
        2
    } else {
        3
    };
    let text = format!("{value:.decimals$}");
    let (int, frac) = text
        .split_once('.')
        .map_or((text.as_str(), None), |(i, f)| (i, Some(f)));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut grouped = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// Table cells must not contain a bare `|`.
fn escape(text: &str) -> String {
    text.replace('|', "\\|")
}
