//! `bench`: runs one scenario against a boxoffice deployment, prints its Markdown table, writes
//! its JSON report under `--out`, and exits 1 when a correctness check failed (never because
//! of speed), 2 when the scenario could not run.

use std::process::ExitCode;

use anyhow::Context;
use boxoffice_bench::{Cli, Report};
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli).await {
        Ok(report) if report.passed() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("bench {}: {e:#}", cli.scenario.name());
            ExitCode::from(2)
        }
    }
}

async fn run(cli: &Cli) -> anyhow::Result<Report> {
    let report = boxoffice_bench::run(cli).await?;
    print!("{}", report.markdown());
    std::fs::create_dir_all(&cli.common.out).with_context(|| format!("creating {}", cli.common.out.display()))?;
    let stamp = report.started_at.replace(':', "");
    let file = cli.common.out.join(format!("{}-{}-{stamp}.json", cli.common.label, report.scenario));
    std::fs::write(&file, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", file.display()))?;
    eprintln!("bench: wrote {}", file.display());
    Ok(report)
}
