//! `faceverify`: train, verify and build the impostor model from the command line.
//!
//! Plain std argument parsing: three subcommands and a handful of flags do not justify
//! clap's compile time on a 2-core machine. Errors are typed inside (`CliError`) and become a
//! message and an exit code here: 2 for a wrong command line, 1 for everything else.

use std::path::PathBuf;
use std::process::ExitCode;

use faceverify::train::impostors::FitOptions;
use faceverify::train::run::{RunSettings, TrainingMode};
use faceverify_cli::{
    BackendChoice, CliError, ImpostorOptions, TrainOptions, VerifyOptions, default_impostors_path,
    default_weights_path, impostors, train, verify,
};

mod bench;
mod bench_command;
mod eval_command;

const USAGE: &str = "usage:
  faceverify train --data DIR [--mode fine-tune|classic] [--epochs N] [--batch N] [--seed N]
                   [--lr X] [--pairs N] [--patience N|none] [--backend cpu|wgpu] [--out model.bin]
                   [--impostors FILE|none] [--impostor-samples N] [--augment N]
                   [--checkpoint FILE] [--weights FILE] [--quiet]
      DIR/anchor, DIR/positive and DIR/negative hold photos (JPEG or PNG) of centred faces.
      --pairs: pairs per class (fine-tune default: anchors x positives, at most 400;
      classic: the tutorial's zip, as many as the smallest folder).
  faceverify verify --model M --refs DIR [--detection X] [--verification X]
                    [--backend cpu|wgpu] [--weights FILE] IMAGE...
  faceverify impostors --lfw DIR --out FILE [--clusters K] [--min-members N]
                       [--backend cpu|wgpu] [--weights FILE]
  faceverify eval --lfw DIR --pairs FILE [--crop detect|centre] [--fallback centre|lfw-framing]
                  [--limit N] [--batch-size N] [--backend cpu|wgpu] [--models DIR] [--json FILE]
      LFW's 10-fold verification protocol over a pairs file: accuracy, ROC AUC, EER,
      TAR at FAR = 1e-3 and faces/s (see README).
  faceverify bench [--backend cpu|wgpu|all] [--runs N] [--warmup N] [--slow-runs N]
                   [--koch-pairs N] [--shared DIR] [--models DIR] [--only NAME]
      Times the face pipeline, the Koch tower and fine-tune time-to-ready, one line per
      figure (see docs/BENCH.md; `cargo xtask bench` adds sizes and the browser's figures).";

/// Flags (`--name value` or `--name=value`) and positional arguments.
struct Args {
    flags: Vec<(String, Option<String>)>,
    positional: Vec<String>,
}

/// Flags that take no value.
const SWITCHES: &[&str] = &["quiet"];

impl Args {
    fn parse(raw: &[String]) -> Result<Self, CliError> {
        let mut flags = Vec::new();
        let mut positional = Vec::new();
        let mut iter = raw.iter();
        while let Some(arg) = iter.next() {
            if let Some(flag) = arg.strip_prefix("--") {
                if let Some((name, value)) = flag.split_once('=') {
                    flags.push((name.to_owned(), Some(value.to_owned())));
                } else if SWITCHES.contains(&flag) {
                    flags.push((flag.to_owned(), None));
                } else {
                    let value = iter
                        .next()
                        .ok_or_else(|| CliError::Usage(format!("--{flag} needs a value")))?;
                    flags.push((flag.to_owned(), Some(value.clone())));
                }
            } else {
                positional.push(arg.clone());
            }
        }
        Ok(Self { flags, positional })
    }

    fn take(&mut self, name: &str) -> Option<String> {
        let index = self.flags.iter().position(|(n, _)| n == name)?;
        self.flags.remove(index).1
    }

    fn switch(&mut self, name: &str) -> bool {
        let found = self.flags.iter().any(|(n, _)| n == name);
        self.flags.retain(|(n, _)| n != name);
        found
    }

    fn parsed<T: std::str::FromStr>(&mut self, name: &str) -> Result<Option<T>, CliError> {
        self.take(name)
            .map(|value| {
                value
                    .parse()
                    .map_err(|_| CliError::Usage(format!("--{name}: '{value}' is not valid")))
            })
            .transpose()
    }

    fn required(&mut self, name: &str) -> Result<String, CliError> {
        self.take(name)
            .ok_or_else(|| CliError::Usage(format!("--{name} is required\n\n{USAGE}")))
    }

    /// Refuses flags nobody asked for (a typo must not silently change nothing).
    fn finish(&self) -> Result<(), CliError> {
        match self.flags.first() {
            Some((name, _)) => Err(CliError::Usage(format!("unknown flag --{name}\n\n{USAGE}"))),
            None => Ok(()),
        }
    }

    fn backend(&mut self) -> Result<BackendChoice, CliError> {
        Ok(self.parsed("backend")?.unwrap_or(BackendChoice::Cpu))
    }

    fn weights(&mut self) -> PathBuf {
        self.take("weights")
            .map_or_else(default_weights_path, PathBuf::from)
    }
}

fn train_command(mut args: Args) -> Result<(), CliError> {
    let mode = match args.take("mode").as_deref() {
        None | Some("fine-tune" | "finetune" | "fine_tune") => TrainingMode::FineTune,
        Some("classic") => TrainingMode::Classic,
        Some(other) => {
            return Err(CliError::Usage(format!(
                "unknown mode '{other}': use fine-tune or classic"
            )));
        }
    };
    let mut settings = RunSettings::for_mode(mode);
    if let Some(epochs) = args.parsed("epochs")? {
        settings.training.epochs = epochs;
    }
    if let Some(batch) = args.parsed("batch")? {
        settings.training.batch_size = batch;
    }
    if let Some(seed) = args.parsed("seed")? {
        settings.training.seed = seed;
    }
    if let Some(pairs) = args.parsed("pairs")? {
        settings.training.pairs_per_class = Some(pairs);
    }
    if let Some(lr) = args.parsed("lr")? {
        settings.training.learning_rate = lr;
    }
    match args.take("patience").as_deref() {
        None => {}
        Some("none") => settings.patience = None,
        Some(value) => {
            settings.patience = Some(value.parse().map_err(|_| {
                CliError::Usage(format!("--patience: '{value}' is not a number or none"))
            })?)
        }
    }
    let impostors = match args.take("impostors").as_deref() {
        Some("none") => None,
        Some(path) => Some(PathBuf::from(path)),
        None if mode == TrainingMode::FineTune => Some(default_impostors_path()),
        None => None,
    };
    let options = TrainOptions {
        data: PathBuf::from(args.required("data")?),
        mode,
        backend: args.backend()?,
        out: PathBuf::from(args.take("out").unwrap_or_else(|| "model.bin".into())),
        weights: args.weights(),
        impostors,
        impostor_samples: args.parsed("impostor-samples")?.unwrap_or(200),
        augment: args.parsed("augment")?.unwrap_or(0),
        checkpoint: args.take("checkpoint").map(PathBuf::from),
        settings,
    };
    let quiet = args.switch("quiet");
    args.finish()?;
    if !args.positional.is_empty() {
        return Err(CliError::Usage(format!(
            "train takes no positional arguments, got {:?}\n\n{USAGE}",
            args.positional
        )));
    }
    let outcome = train(&options, quiet)?;
    let report = &outcome.report;
    println!(
        "images: {} anchor, {} positive, {} negative; embedding {:.1} s, training {:.1} s",
        outcome.counts[0],
        outcome.counts[1],
        outcome.counts[2],
        outcome.seconds.0,
        outcome.seconds.1
    );
    println!(
        "test split: loss {:.4}  precision {:.3}  recall {:.3}  accuracy {:.3}  AUC {:.4}  EER {:.3}",
        report.test_loss,
        report.evaluation.precision,
        report.evaluation.recall,
        report.evaluation.accuracy,
        report.evaluation.auc,
        report.evaluation.eer.rate
    );
    match (&report.policy, &report.calibration_problem) {
        (Some(proposal), _) => println!(
            "calibrated policy (target FAR {}): detection {:.3} (pair FAR {:.3}, FRR {:.3}), \
             verification {:.3} (probe FAR {:.3}, FRR {:.3})",
            options.settings.target_false_accept_rate,
            proposal.policy.detection.value(),
            proposal.detection.false_accept_rate,
            proposal.detection.false_reject_rate,
            proposal.policy.verification.value(),
            proposal.verification.false_accept_rate,
            proposal.verification.false_reject_rate,
        ),
        (None, Some(problem)) => println!("no calibration ({problem}); default policy 0.5/0.5"),
        (None, None) => {}
    }
    println!("wrote {}", options.out.display());
    Ok(())
}

fn verify_command(mut args: Args) -> Result<(), CliError> {
    let options = VerifyOptions {
        model: PathBuf::from(args.required("model")?),
        refs: PathBuf::from(args.required("refs")?),
        detection: args.parsed("detection")?,
        verification: args.parsed("verification")?,
        weights: args.weights(),
        backend: args.backend()?,
        images: args.positional.iter().map(PathBuf::from).collect(),
    };
    args.finish()?;
    if options.images.is_empty() {
        return Err(CliError::Usage(format!(
            "verify needs at least one IMAGE\n\n{USAGE}"
        )));
    }
    for decision in verify(&options)? {
        let result = &decision.result;
        let scores: Vec<String> = result.scores.iter().map(|s| format!("{s:.3}")).collect();
        println!(
            "{}: {}  ({} of {} above {:.3} = {:.3}, threshold {:.3})",
            decision.image.display(),
            if result.verified {
                "VERIFIED"
            } else {
                "NOT VERIFIED"
            },
            result.detections,
            result.reference_count,
            result.policy.detection.value(),
            result.fraction,
            result.policy.verification.value(),
        );
        println!("  scores: [{}]", scores.join(", "));
    }
    Ok(())
}

fn impostors_command(mut args: Args) -> Result<(), CliError> {
    let defaults = FitOptions::default();
    let options = ImpostorOptions {
        lfw: PathBuf::from(args.required("lfw")?),
        out: PathBuf::from(args.required("out")?),
        fit: FitOptions {
            clusters: args.parsed("clusters")?.unwrap_or(defaults.clusters),
            min_members: args.parsed("min-members")?.unwrap_or(defaults.min_members),
            ..defaults
        },
        weights: args.weights(),
        backend: args.backend()?,
    };
    args.finish()?;
    let model = impostors(&options, false)?;
    println!(
        "wrote {}: {} people in {} clusters",
        options.out.display(),
        model.people,
        model.clusters.len()
    );
    Ok(())
}

fn run(raw: &[String]) -> Result<(), CliError> {
    let (command, rest) = raw
        .split_first()
        .ok_or_else(|| CliError::Usage(USAGE.into()))?;
    if command == "eval" {
        // The benchmark parses its own flags (see eval_command.rs).
        return eval_command::run(rest).map_err(CliError::Usage);
    }
    if command == "bench" {
        return bench_command::run(rest).map_err(CliError::Usage);
    }
    let args = Args::parse(rest)?;
    match command.as_str() {
        "train" => train_command(args),
        "verify" => verify_command(args),
        "impostors" => impostors_command(args),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(CliError::Usage(format!(
            "unknown command '{other}'\n\n{USAGE}"
        ))),
    }
}

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    match run(&raw) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("faceverify: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
