//! Mutation fuzzer for the EWS parsers (stable Rust stand-in for cargo-fuzz).
//!
//! `cargo run --release --example fuzz_ews -- [--target NAME|all] [--iterations N] [--seed S]
//! [--time-secs T] [--replay FILE] [--list]`
//!
//! Prints per-target inputs/s; writes every crashing input to `fuzz-crashes/` (gitignored) as
//! `<target>-<seed>-<iteration>.bin`, replayable with `--replay FILE --target NAME`. Exits 1 when
//! any target failed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use exsync::ews::fuzz::{fuzz_target, run_one, target, FuzzConfig, Target, TARGETS};

struct Args {
    target: String,
    iterations: u64,
    seed: u64,
    time_secs: Option<u64>,
    replay: Option<PathBuf>,
    list: bool,
}

fn usage() -> &'static str {
    "usage: fuzz_ews [--target NAME|all] [--iterations N] [--seed S] [--time-secs T] \
     [--replay FILE] [--list]"
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        target: "all".into(),
        iterations: 100_000,
        seed: 1,
        time_secs: None,
        replay: None,
        list: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--target" => args.target = value()?,
            "--iterations" => args.iterations = value()?.parse().map_err(|e| format!("{e}"))?,
            "--seed" => args.seed = value()?.parse().map_err(|e| format!("{e}"))?,
            "--time-secs" => args.time_secs = Some(value()?.parse().map_err(|e| format!("{e}"))?),
            "--replay" => args.replay = Some(PathBuf::from(value()?)),
            "--list" => args.list = true,
            "-h" | "--help" => return Err(usage().into()),
            other => return Err(format!("unknown argument {other}\n{}", usage())),
        }
    }
    Ok(args)
}

fn selected(name: &str) -> Result<Vec<&'static Target>, String> {
    if name == "all" {
        return Ok(TARGETS.iter().collect());
    }
    target(name).map(|t| vec![t]).ok_or_else(|| {
        let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
        format!("unknown target {name}; targets: all, {}", names.join(", "))
    })
}

fn replay(targets: &[&Target], file: &Path) -> Result<bool, String> {
    let input = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut clean = true;
    for t in targets {
        match run_one(t, &input) {
            Ok(outcome) => println!("{:<32} {outcome:?}", t.name),
            Err(failure) => {
                clean = false;
                println!("{:<32} FAILED: {failure}", t.name);
            }
        }
    }
    Ok(clean)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if args.list {
        for t in TARGETS {
            println!("{}", t.name);
        }
        return ExitCode::SUCCESS;
    }
    let targets = match selected(&args.target) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Some(file) = &args.replay {
        return match replay(&targets, file) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        };
    }
    // Panics are caught and reported per input; the default hook would flood the terminal.
    std::panic::set_hook(Box::new(|_| {}));
    // A time budget is shared evenly between the selected targets.
    let per_target = args
        .time_secs
        .map(|t| Duration::from_secs_f64(t as f64 / targets.len() as f64));
    let config = FuzzConfig {
        iterations: args.iterations,
        seed: args.seed,
        time_limit: per_target,
        ..FuzzConfig::default()
    };
    println!(
        "{:<32} {:>7} {:>10} {:>10} {:>10} {:>8} {:>12}",
        "target", "seeds", "mutants", "accepted", "refused", "crashes", "inputs/s"
    );
    let mut failed = false;
    for t in targets {
        let report = fuzz_target(t, &config);
        println!(
            "{:<32} {:>7} {:>10} {:>10} {:>10} {:>8} {:>12.0}",
            report.target,
            report.seeds,
            report.iterations,
            report.accepted,
            report.refused,
            report.crashes.len(),
            report.rate()
        );
        for crash in &report.crashes {
            failed = true;
            let round = crash
                .iteration
                .map_or_else(|| "seed".to_owned(), |i| i.to_string());
            let dir = Path::new("fuzz-crashes");
            let file = dir.join(format!("{}-{}-{round}.bin", t.name, args.seed));
            if let Err(e) =
                std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&file, &crash.input))
            {
                eprintln!("cannot write {}: {e}", file.display());
            }
            println!("  {} -> {}", crash.failure, file.display());
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
