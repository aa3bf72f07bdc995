//! `faceverify bench`: the benchmark suite (`bench/`) natively, on the flex CPU backend and on
//! wgpu (Vulkan; Mesa's lavapipe on a machine without a GPU), one line per figure:
//!
//! ```text
//! cargo run --release -p faceverify-cli -- bench [--backend cpu|wgpu|all] [--runs N]
//!     [--warmup N] [--slow-runs N] [--koch-pairs N] [--shared DIR] [--models DIR] [--only NAME]
//! ```
//!
//! After each compute-bound figure it prints its theoretical floor: the figure's FLOPs divided
//! by this machine's peak f32 FLOP/s, derived from `/proc/cpuinfo` (the assumption is printed).
//! `cargo xtask bench` runs this, adds the sizes and the browser's figures.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::Device;
use faceverify::backend;
use faceverify::model::koch::check_koch_fits;
use faceverify::vision::frame::Frame;

use crate::bench::figures::{self, FINE_TUNE_CAPTURES};
use crate::bench::{self as suite, Data, Plan, Record, Sink};
use crate::flags::{flag_values, number};

const USAGE: &str = "usage: faceverify bench [--backend cpu|wgpu|all] [--runs N] [--warmup N] \
[--slow-runs N] [--koch-pairs N] [--shared DIR] [--models DIR] [--only NAME]
  Times the face pipeline, the Koch tower and fine-tune time-to-ready on each backend:
  one line `figure=NAME median=V min=V max=V runs=N unit=ms` per figure, after warm-up runs,
  and `floor=NAME ...` (FLOPs / this machine's peak) for the compute-bound ones.
  --runs: measured runs of the quick figures (5); --slow-runs: of the Koch training step and
  fine-tune time-to-ready (3); --warmup: unmeasured runs first (1); --koch-pairs: the Koch
  step's batch (16); --shared: the shared data folder (../shared beside the repository);
  --only: figures whose name contains NAME.";

/// The person whose LFW photos stand in for a user's 30 anchor and 30 positive captures.
const FINE_TUNE_PERSON: &str = "George_W_Bush";
/// The colour photo that stands in for a camera frame.
const FRAME_PHOTO: &str = "data/color/obama.jpg";

struct Args {
    backends: Vec<&'static str>,
    plan: Plan,
    shared: PathBuf,
    models: PathBuf,
}

fn parse_args(raw: &[String]) -> Result<Args, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut args = Args {
        backends: vec!["cpu", "wgpu"],
        plan: Plan {
            warmup: 1,
            runs: 5,
            koch_step_warmup: 1,
            koch_step_runs: 3,
            ready_warmup: 1,
            ready_runs: 3,
            koch_pairs: 16,
            koch_skip: None,
            align: true,
            only: None,
        },
        shared: root.join("..").join("shared"),
        models: root.join("models"),
    };
    for (flag, value) in flag_values(raw, USAGE)? {
        let number = || number::<usize>(flag, value);
        match flag {
            "--backend" => {
                args.backends = match value {
                    "cpu" | "flex" => vec!["cpu"],
                    "wgpu" | "gpu" => vec!["wgpu"],
                    "all" => vec!["cpu", "wgpu"],
                    other => return Err(format!("--backend: '{other}': use cpu, wgpu or all")),
                }
            }
            "--runs" => args.plan.runs = number()?.max(1),
            "--slow-runs" => {
                args.plan.koch_step_runs = number()?.max(1);
                args.plan.ready_runs = args.plan.koch_step_runs;
            }
            "--warmup" => {
                args.plan.warmup = number()?;
                args.plan.koch_step_warmup = args.plan.warmup;
                args.plan.ready_warmup = args.plan.warmup;
            }
            "--koch-pairs" => args.plan.koch_pairs = number()?.max(1),
            "--shared" => args.shared = PathBuf::from(value),
            "--models" => args.models = PathBuf::from(value),
            "--only" => args.plan.only = Some(value.to_owned()),
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    Ok(args)
}

/// This machine's peak f32 arithmetic, from `/proc/cpuinfo`, with the assumption in words.
#[derive(Debug, Clone, PartialEq)]
pub struct Peak {
    pub cores: usize,
    pub mhz: f64,
    pub mhz_source: &'static str,
    pub flops_per_cycle: f64,
    pub isa: &'static str,
}

impl Peak {
    pub fn gflops(&self) -> f64 {
        self.cores as f64 * self.mhz * self.flops_per_cycle / 1e3
    }

    /// Reads `cpuinfo` (the text of `/proc/cpuinfo`) and, when given, the cpufreq maximum in kHz.
    pub fn from_cpuinfo(cpuinfo: &str, max_khz: Option<f64>) -> Self {
        let cores = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count()
            .max(1);
        let field = |line: &str| line.split_once(':').map(|(_, v)| v.trim().to_owned());
        let listed_mhz = cpuinfo
            .lines()
            .filter(|l| l.starts_with("cpu MHz"))
            .filter_map(|l| field(l)?.parse::<f64>().ok())
            .fold(0.0, f64::max);
        let (mhz, mhz_source) = match max_khz {
            Some(khz) if khz > 0.0 => (khz / 1e3, "cpufreq's cpuinfo_max_freq"),
            _ if listed_mhz > 0.0 => (
                listed_mhz,
                "'cpu MHz' in /proc/cpuinfo: no maximum frequency is exposed, turbo not counted",
            ),
            _ => (1000.0, "unknown: 1000 MHz assumed"),
        };
        let flags: Vec<String> = cpuinfo
            .lines()
            .find(|l| l.starts_with("flags"))
            .and_then(field)
            .map(|f| f.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        let has = |flag: &str| flags.iter().any(|f| f == flag);
        let (flops_per_cycle, isa) = if has("avx512f") && has("fma") {
            (
                64.0,
                "AVX-512F with FMA: 16 f32 lanes x 2 (multiply-add) x 2 FMA units assumed per core",
            )
        } else if has("avx2") && has("fma") {
            (
                32.0,
                "AVX2 with FMA: 8 f32 lanes x 2 (multiply-add) x 2 FMA units assumed per core",
            )
        } else if has("avx") {
            (
                16.0,
                "AVX: 8 f32 lanes, one add and one multiply per cycle per core",
            )
        } else {
            (
                8.0,
                "SSE: 4 f32 lanes, one add and one multiply per cycle per core",
            )
        };
        Self {
            cores,
            mhz,
            mhz_source,
            flops_per_cycle,
            isa,
        }
    }

    /// This machine's.
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let max_khz =
            std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
                .ok()
                .and_then(|s| s.trim().parse().ok());
        Self::from_cpuinfo(&cpuinfo, max_khz)
    }
}

fn clock_ms() -> f64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64() * 1000.0
}

/// Prints each figure at once, with its floor.
struct Console {
    peak_gflops: f64,
}

impl Sink for Console {
    fn figure(&mut self, record: Record) {
        for line in figures::record_lines(&record, Some(self.peak_gflops)) {
            println!("{line}");
        }
        let _ = std::io::stdout().flush();
    }

    fn note(&mut self, line: &str) {
        println!("bench: {line}");
        let _ = std::io::stdout().flush();
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The photos: the camera frame and the fine-tune captures, or why they are missing.
fn photos(shared: &Path, sink: &mut Console) -> Result<(Option<Frame>, Vec<Frame>), String> {
    let frame_path = shared.join(FRAME_PHOTO);
    let frame = if frame_path.is_file() {
        Some(suite::camera_frame(&read(&frame_path)?)?)
    } else {
        sink.note(&format!(
            "no {}: the photo figures are skipped",
            frame_path.display()
        ));
        None
    };
    let person = shared.join("data/lfw").join(FINE_TUNE_PERSON);
    let mut captures = Vec::new();
    match std::fs::read_dir(&person) {
        Ok(entries) => {
            let mut paths: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
                .collect();
            paths.sort();
            for path in paths.iter().take(2 * FINE_TUNE_CAPTURES) {
                captures.push(suite::decode(&read(path)?)?);
            }
        }
        Err(e) => sink.note(&format!(
            "no {} ({e}): fine-tune time-to-ready is skipped",
            person.display()
        )),
    }
    Ok((frame, captures))
}

/// Runs `faceverify bench` with the arguments after `bench`.
pub fn run(raw: &[String]) -> Result<(), String> {
    let args = parse_args(raw)?;
    let started = Instant::now();
    let peak = Peak::detect();
    println!(
        "bench: peak {:.1} GFLOP/s f32 = {} cores x {:.0} MHz ({}) x {:.0} FLOP/cycle ({})",
        peak.gflops(),
        peak.cores,
        peak.mhz,
        peak.mhz_source,
        peak.flops_per_cycle,
        peak.isa
    );
    println!(
        "machine cores={} mhz={:.0} flops_per_cycle={:.0} peak_gflops={:.1}",
        peak.cores,
        peak.mhz,
        peak.flops_per_cycle,
        peak.gflops()
    );
    let mut console = Console {
        peak_gflops: peak.gflops(),
    };
    let (frame, captures) = photos(&args.shared, &mut console)?;
    let data = Data {
        detector_weights: read(&args.models.join("blazeface.f16.bin"))?,
        tower_weights: read(&args.models.join("face_resnet.q8.bin"))?,
        impostors_json: String::from_utf8(read(&args.models.join("impostors.json"))?)
            .map_err(|e| format!("impostors.json: {e}"))?,
        mesh_weights: read(&args.models.join("facemesh.f16.bin"))?,
        frame,
        captures,
    };
    for (i, backend_name) in args.backends.iter().enumerate() {
        let device = match *backend_name {
            "cpu" => Device::flex(),
            _ => match pollster::block_on(backend::wgpu_device()) {
                Ok(device) => device,
                Err(reason) => {
                    console.note(&format!(
                        "native.wgpu: skipped, no wgpu adapter ({reason}); `cargo xtask setup` \
                         installs Mesa's Vulkan drivers"
                    ));
                    continue;
                }
            },
        };
        let mut plan = Plan {
            // Alignment is CPU work whatever the backend: time it once.
            align: i == 0,
            ..args.plan.clone()
        };
        if *backend_name == "wgpu" {
            // The app's memory check decides, as it must before allocating: a device that
            // cannot bind the 144 MiB dense weight fails validation (a panic in Burn).
            plan.koch_skip = match pollster::block_on(faceverify::backend::wgpu_buffer_limits()) {
                None => Some("the adapter's limits could not be read".into()),
                Some(limits) => check_koch_fits(&limits, plan.koch_pairs)
                    .err()
                    .map(|e| format!("{e} (adapter limits: {limits:?})")),
            };
        }
        let prefix = format!("native.{backend_name}");
        let backend_started = Instant::now();
        pollster::block_on(suite::run(
            &prefix,
            &device,
            &data,
            &plan,
            clock_ms,
            &mut console,
        ))
        .map_err(|e| format!("{prefix}: {e}"))?;
        console.note(&format!(
            "{prefix}: done in {:.1} s",
            backend_started.elapsed().as_secs_f64()
        ));
    }
    console.note(&format!(
        "native: done in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_comes_from_cores_frequency_and_vector_width() {
        let cpuinfo = "processor\t: 0\ncpu MHz\t\t: 2600.000\nflags\t\t: fpu sse avx avx2 fma avx512f\n\
                       processor\t: 1\ncpu MHz\t\t: 2500.000\nflags\t\t: fpu sse avx avx2 fma avx512f\n";
        let peak = Peak::from_cpuinfo(cpuinfo, None);
        assert_eq!(peak.cores, 2);
        assert_eq!(peak.mhz, 2600.0);
        assert_eq!(peak.flops_per_cycle, 64.0);
        assert!((peak.gflops() - 332.8).abs() < 1e-9);
        let avx2 = Peak::from_cpuinfo(&cpuinfo.replace(" avx512f", ""), Some(3_500_000.0));
        assert_eq!((avx2.flops_per_cycle, avx2.mhz), (32.0, 3500.0));
    }

    #[test]
    fn arguments_set_the_plan() {
        let raw: Vec<String> = ["--backend", "cpu", "--runs", "2", "--only", "koch"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let args = parse_args(&raw).unwrap();
        assert_eq!(args.backends, vec!["cpu"]);
        assert_eq!(args.plan.runs, 2);
        assert_eq!(args.plan.only.as_deref(), Some("koch"));
        assert!(parse_args(&["--bogus".into(), "1".into()]).is_err());
    }
}
