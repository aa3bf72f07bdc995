//! `faceverify`: train, verify and build the impostor model from the command line.
//!
//! Plain std argument parsing: three subcommands and a handful of flags do not justify
//! clap's compile time on a 2-core machine. Errors are typed inside (`CliError`) and become a
//! message and an exit code here: 2 for a wrong command line, 1 for everything else.

use std::path::PathBuf;
use std::process::ExitCode;

use faceverify::app::{DEFAULT_SEED, IdentifyOutcome, TrainRequest};
use faceverify::protocol::choice_from_str;
use faceverify::train::impostors::FitOptions;
use faceverify::train::run::TrainingMode;
use faceverify_cli::session::CLI_PROFILE;
use faceverify_cli::{
    BackendChoice, CliError, ImpostorOptions, TrainOptions, VerifyOptions, default_weights_path,
    identify, impostors, train, verify,
};

mod bench;
mod bench_command;
mod default_head_command;
mod eval_command;
mod flags;

const USAGE: &str = "usage:
  faceverify train --data DIR [--mode fine-tune|classic] [--epochs N] [--batch N] [--seed N]
                   [--backend cpu|wgpu] [--out model.bin] [--store DIR [--resume]] [--quiet]
                   [--target-far X]
      DIR/anchor, DIR/positive and DIR/negative hold photos (JPEG or PNG); each face is
      detected and aligned, and the model trained and calibrated, as in the page (fine-tune
      mode: for a false-accept rate per attempt of X, 1e-4 by default). --store keeps the
      photos, runs and model in DIR (a checkpoint every epoch: --resume continues).
  faceverify verify (--model M --refs DIR | --store DIR) [--detection X] [--verification X]
                    [--adapt on|off] [--backend cpu|wgpu] IMAGE...
      Checks identity only (still photos cannot show liveness). --adapt on keeps clear
      matches as adaptive references in the store (at most 10, the oldest out first).
  faceverify identify --people DIR [--backend cpu|wgpu] IMAGE...
      Who each IMAGE shows among the people of DIR (DIR/<name>/*.jpg): the best match that
      verifies, or nobody enrolled here (each person decides with the default model).
  faceverify impostors --lfw DIR --out FILE [--clusters K] [--min-members N]
                       [--backend cpu|wgpu] [--weights FILE]
  faceverify eval --lfw DIR --pairs FILE [--crop detect|centre] [--fallback centre|lfw-framing]
                  [--limit N] [--batch-size N] [--backend cpu|wgpu] [--models DIR] [--json FILE]
      LFW's 10-fold verification protocol over a pairs file: accuracy, ROC AUC, EER,
      TAR at FAR = 1e-3 and faces/s (see README).
  faceverify default-head --lfw DIR --pairs FILE --out FILE [--per-class N] [--epochs N]
                          [--target-far X]
      Trains the default model (a head for everyone) on LFW pairs of photos outside FILE's
      pairs and calibrates it on them (`cargo xtask default-model` writes models/).
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
const SWITCHES: &[&str] = &["quiet", "resume"];

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

    /// The named choice `--name` gives, if any (`protocol::choice_from_str`).
    fn choice<T: serde::de::DeserializeOwned>(
        &mut self,
        name: &str,
    ) -> Result<Option<T>, CliError> {
        self.take(name)
            .map(|value| choice_from_str(name, &value).map_err(CliError::Usage))
            .transpose()
    }

    fn backend(&mut self) -> Result<BackendChoice, CliError> {
        Ok(self.choice("backend")?.unwrap_or_default())
    }

    fn weights(&mut self) -> PathBuf {
        self.take("weights")
            .map_or_else(default_weights_path, PathBuf::from)
    }
}

fn train_command(mut args: Args) -> Result<(), CliError> {
    let mode: TrainingMode = args.choice("mode")?.unwrap_or_default();
    let options = TrainOptions {
        data: PathBuf::from(args.required("data")?),
        request: TrainRequest {
            profile: CLI_PROFILE.into(),
            mode,
            epochs: args.parsed("epochs")?,
            batch_size: args.parsed("batch")?,
            seed: args.parsed("seed")?.unwrap_or(DEFAULT_SEED),
            resume: args.switch("resume"),
        },
        backend: args.backend()?,
        out: PathBuf::from(args.take("out").unwrap_or_else(|| "model.bin".into())),
        store: args.take("store").map(PathBuf::from),
        target_far: args.parsed("target-far")?,
    };
    let quiet = args.switch("quiet");
    args.finish()?;
    if !args.positional.is_empty() {
        return Err(CliError::Usage(format!(
            "train takes no positional arguments, got {:?}\n\n{USAGE}",
            args.positional
        )));
    }
    if options.request.resume && options.store.is_none() {
        return Err(CliError::Usage(
            "--resume continues a run kept with --store DIR".into(),
        ));
    }
    let trained = train(&options, quiet)?;
    for (role, report) in &trained.imported {
        let skipped: Vec<String> = report
            .skipped
            .iter()
            .map(|s| format!("{} ({})", s.name, s.reason))
            .collect();
        println!(
            "{}: {} photos{}",
            faceverify_cli::session::role_folder(*role),
            report.added.len(),
            if skipped.is_empty() {
                String::new()
            } else {
                format!(", skipped {}", skipped.join("; "))
            }
        );
    }
    print_report(&trained.outcome);
    println!("wrote {}", options.out.display());
    Ok(())
}

/// The run's test metrics and calibrated thresholds, from the stored model's metrics.
fn print_report(outcome: &faceverify::app::TrainOutcome) {
    let Some(model) = &outcome.model else {
        println!("training stopped ({:?}); no model was stored", outcome.stop);
        return;
    };
    let Some(metrics) = faceverify::app::ModelMetrics::of(&model.meta.metrics) else {
        println!("the stored model has no figures");
        return;
    };
    if let Some(test) = metrics.test {
        println!(
            "test split: loss {:.4}  precision {:.3}  recall {:.3}  accuracy {:.3}  AUC {:.4}  EER {:.3}",
            test.loss, test.precision, test.recall, test.accuracy, test.auc, test.eer,
        );
    }
    match (&metrics.attempts, &metrics.calibration_problem) {
        (Some(attempts), _) => println!("{}", describe_attempts(attempts)),
        (None, Some(problem)) => println!("no calibration ({problem}); default policy 0.5/0.5"),
        (None, None) => println!(
            "calibrated policy: detection {:.3}, verification {:.3}",
            metrics.policy.detection.value(),
            metrics.policy.verification.value(),
        ),
    }
    if let Some(problem) = &metrics.attempts_problem {
        println!("no calibration per attempt: {problem}");
    }
}

/// What the per-attempt calibration chose and what it shows.
fn describe_attempts(attempts: &faceverify::verify::attempts::AttemptCalibration) -> String {
    format!(
        "calibrated policy: detection {:.2}, verification {:.3}\n  \
         false accepts per attempt: {} of {} impostor attempts ({:.1e}; below {:.1e} with 95% \
         confidence), target {:.0e} {}\n  \
         false rejects: {} of {} genuine attempts on the enrolment photos ({:.1}%)",
        attempts.policy.detection.value(),
        attempts.policy.verification.value(),
        attempts.impostors_accepted,
        attempts.impostor_attempts,
        attempts.false_accept_rate,
        attempts.false_accept_upper_bound,
        attempts.target_false_accept_rate,
        if attempts.target_met {
            "met"
        } else {
            "NOT met"
        },
        attempts.genuine_rejected,
        attempts.genuine_attempts,
        100.0 * attempts.false_reject_rate,
    )
}

fn verify_command(mut args: Args) -> Result<(), CliError> {
    let options = VerifyOptions {
        model: args.take("model").map(PathBuf::from),
        refs: args.take("refs").map(PathBuf::from),
        store: args.take("store").map(PathBuf::from),
        detection: args.parsed("detection")?,
        verification: args.parsed("verification")?,
        backend: args.backend()?,
        images: args.positional.iter().map(PathBuf::from).collect(),
        adapt: match args.take("adapt").as_deref() {
            None => None,
            Some("on") => Some(true),
            Some("off") => Some(false),
            Some(other) => {
                return Err(CliError::Usage(format!(
                    "--adapt takes on or off, not '{other}'"
                )));
            }
        },
    };
    args.finish()?;
    if options.images.is_empty() {
        return Err(CliError::Usage(format!(
            "verify needs at least one IMAGE\n\n{USAGE}"
        )));
    }
    if options.store.is_none() && (options.model.is_none() || options.refs.is_none()) {
        return Err(CliError::Usage(format!(
            "verify needs --model and --refs, or a --store that train kept\n\n{USAGE}"
        )));
    }
    let decisions = verify(&options)?;
    for decision in &decisions {
        let Some(result) = &decision.result else {
            println!("{}: no face found", decision.image.display());
            continue;
        };
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
        if decision.learned {
            println!("  kept as an adaptive reference");
        }
    }
    let decided: Vec<_> = decisions.iter().filter_map(|d| d.result.as_ref()).collect();
    println!(
        "{} of {} images verified ({} without a face); identity only: still photos cannot show liveness",
        decided.iter().filter(|r| r.verified).count(),
        decided.len(),
        decisions.len() - decided.len(),
    );
    Ok(())
}

fn identify_command(mut args: Args) -> Result<(), CliError> {
    let people = PathBuf::from(args.required("people")?);
    let backend = args.backend()?;
    let images: Vec<PathBuf> = args.positional.iter().map(PathBuf::from).collect();
    args.finish()?;
    if images.is_empty() {
        return Err(CliError::Usage(format!(
            "identify needs at least one IMAGE\n\n{USAGE}"
        )));
    }
    for (image, outcome) in identify(&people, &images, backend)? {
        let IdentifyOutcome::Decision {
            candidates,
            identified,
            ..
        } = outcome
        else {
            println!("{}: no face found", image.display());
            continue;
        };
        let matched = |c: &faceverify::app::Candidate| {
            format!(
                "{} of {} photos matched",
                c.result.detections, c.result.reference_count
            )
        };
        match (identified, candidates.first()) {
            (Some(person), Some(best)) => {
                println!("{}: {} ({})", image.display(), person.name, matched(best))
            }
            (None, Some(best)) => println!(
                "{}: nobody enrolled here (closest: {}, {})",
                image.display(),
                best.profile.name,
                matched(best)
            ),
            (_, None) => println!("{}: nobody enrolled here", image.display()),
        }
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
    if command == "default-head" {
        return default_head_command::run(rest).map_err(CliError::Usage);
    }
    let args = Args::parse(rest)?;
    match command.as_str() {
        "train" => train_command(args),
        "verify" => verify_command(args),
        "identify" => identify_command(args),
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
