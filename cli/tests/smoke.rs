//! The `faceverify` binary end to end: `train` on a tiny tutorial-layout folder made from LFW
//! photos, then `verify` a genuine and an impostor probe; `identify` among three people; and
//! the exit code of a usage error.
//! Needs `../shared/data/lfw` and panics with a clear message when it is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

fn lfw() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/lfw");
    if !dir.join("George_W_Bush").is_dir() {
        panic!(
            "cli/tests/smoke.rs needs LFW at {}; it is missing. The smoke test trains on those \
             photos and cannot run without them.",
            dir.display()
        );
    }
    dir
}

/// The LFW photos of `person`, sorted.
fn photos_of(person: &str) -> Vec<PathBuf> {
    let mut photos: Vec<PathBuf> = std::fs::read_dir(lfw().join(person))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    photos.sort();
    photos
}

fn copy_into(dir: &Path, files: &[PathBuf]) {
    std::fs::create_dir_all(dir).unwrap();
    for file in files {
        std::fs::copy(file, dir.join(file.file_name().unwrap())).unwrap();
    }
}

fn faceverify(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_faceverify"))
        .args(args)
        .output()
        .expect("the faceverify binary runs")
}

/// Runs `faceverify` with `args`, which must succeed; its standard output.
fn faceverify_ok(args: &[&str]) -> String {
    let out = faceverify(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "faceverify {} failed: {stdout}\n{}",
        args[0],
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs `faceverify` with `args`, which must succeed and print `count` lines; its standard
/// output and those lines.
fn faceverify_lines(args: &[&str], count: usize) -> (String, Vec<String>) {
    let stdout = faceverify_ok(args);
    let lines: Vec<String> = stdout.lines().map(String::from).collect();
    assert_eq!(lines.len(), count, "{stdout}");
    (stdout, lines)
}

/// An empty folder `name` in Cargo's temporary folder for tests.
fn fresh_work_dir(name: &str) -> PathBuf {
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&work);
    work
}

#[test]
fn train_then_verify_a_genuine_and_an_impostor_probe() {
    let work = fresh_work_dir("faceverify-cli-smoke");
    let user = photos_of("George_W_Bush");
    let data = work.join("data");
    copy_into(&data.join("anchor"), &user[..10]);
    copy_into(&data.join("positive"), &user[10..20]);
    let negatives: Vec<PathBuf> = [
        "Gerhard_Schroeder",
        "Gray_Davis",
        "Guillermo_Coria",
        "Hans_Blix",
        "Hugo_Chavez",
        "Igor_Ivanov",
        "Jack_Straw",
        "Jacques_Chirac",
        "Jean_Chretien",
        "Jennifer_Capriati",
        "John_Ashcroft",
        "John_Negroponte",
        "Junichiro_Koizumi",
        "Kofi_Annan",
        "Laura_Bush",
        "Lleyton_Hewitt",
    ]
    .iter()
    .map(|name| photos_of(name)[0].clone())
    .collect();
    copy_into(&data.join("negative"), &negatives);
    let refs = work.join("refs");
    copy_into(&refs, &user[20..30]);
    let model = work.join("model.bin");

    let stdout = faceverify_ok(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--epochs",
        "40",
        "--seed",
        "5",
        "--out",
        model.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(
        stdout.contains("test split:") && stdout.contains("wrote"),
        "{stdout}"
    );
    // Calibrated for the default false-accept rate per attempt, with its confidence.
    assert!(
        stdout.contains("false accepts per attempt") && stdout.contains("target 1e-4 met"),
        "{stdout}"
    );
    assert!(model.is_file());

    let genuine = &user[40];
    let impostor = &photos_of("Luiz_Inacio_Lula_da_Silva")[0];
    let (stdout, lines) = faceverify_lines(
        &[
            "verify",
            "--model",
            model.to_str().unwrap(),
            "--refs",
            refs.to_str().unwrap(),
            genuine.to_str().unwrap(),
            impostor.to_str().unwrap(),
        ],
        5,
    );
    assert!(
        lines[4].starts_with("1 of 2 images verified") && lines[4].contains("identity only"),
        "{stdout}"
    );
    assert!(lines[0].contains(": VERIFIED"), "{stdout}");
    assert!(lines[2].contains(": NOT VERIFIED"), "{stdout}");
    assert!(lines[1].trim_start().starts_with("scores: ["), "{stdout}");
    // 10 references: 10 scores per probe.
    assert_eq!(lines[1].matches(',').count(), 9, "{stdout}");
}

#[test]
fn usage_errors_exit_with_2_and_say_what_is_wrong() {
    let missing = faceverify(&["train"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--data is required"));
    let unknown = faceverify(&["verify", "--model", "m", "--refs", "r", "--bogus", "1", "x"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown flag --bogus"));
    for (flag, value, hint) in [
        (
            "--mode",
            "quick",
            "unknown mode 'quick': use fine-tune, fine_tune, finetune or classic",
        ),
        (
            "--backend",
            "cuda",
            "unknown backend 'cuda': use cpu, flex, gpu or wgpu",
        ),
    ] {
        let refused = faceverify(&["train", "--data", "d", flag, value]);
        assert_eq!(refused.status.code(), Some(2), "{flag}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(hint), "{stderr}");
    }
    let absent = faceverify(&[
        "verify",
        "--model",
        "/nonexistent/model.bin",
        "--refs",
        "r",
        "x",
    ]);
    assert_eq!(absent.status.code(), Some(1));
}

#[test]
fn eval_reports_lfw_accuracy_on_a_few_pairs() {
    let lfw = lfw();
    let pairs = lfw.parent().unwrap().join("lfw-pairs-dev.txt");
    let stdout = faceverify_ok(&[
        "eval",
        "--lfw",
        lfw.to_str().unwrap(),
        "--pairs",
        pairs.to_str().unwrap(),
        "--crop",
        "detect",
        "--limit",
        "20",
    ]);
    let accuracy: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("accuracy (10-fold): "))
        .and_then(|l| l.split('%').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no accuracy line in:\n{stdout}"));
    assert!(accuracy >= 85.0, "{stdout}");
    assert!(
        stdout.contains("ROC AUC:") && stdout.contains("TAR at FAR = 1e-3"),
        "{stdout}"
    );
}

#[test]
fn identify_names_an_enrolled_person_and_nobody_for_a_stranger() {
    let work = fresh_work_dir("faceverify-cli-identify");
    let people = work.join("people");
    for person in ["George_W_Bush", "Colin_Powell", "Gerhard_Schroeder"] {
        copy_into(&people.join(person), &photos_of(person)[..4]);
    }
    let genuine = photos_of("Colin_Powell")[10].clone();
    let stranger = photos_of("Hugo_Chavez")[0].clone();
    let (stdout, lines) = faceverify_lines(
        &[
            "identify",
            "--people",
            people.to_str().unwrap(),
            genuine.to_str().unwrap(),
            stranger.to_str().unwrap(),
        ],
        2,
    );
    assert!(lines[0].contains(": Colin_Powell ("), "{stdout}");
    assert!(lines[1].contains(": nobody enrolled here"), "{stdout}");
}

#[test]
fn verify_keeps_clear_matches_as_adaptive_references_but_never_a_stranger() {
    let work = fresh_work_dir("faceverify-cli-adaptive");
    let user = photos_of("George_W_Bush");
    let refs = work.join("refs");
    copy_into(&refs, &user[..3]);
    let store = work.join("store");
    let stranger = photos_of("Luiz_Inacio_Lula_da_Silva")[0].clone();
    let mut args: Vec<String> = ["verify", "--store", store.to_str().unwrap(), "--refs"]
        .map(String::from)
        .to_vec();
    args.push(refs.to_str().unwrap().into());
    args.extend(["--adapt".into(), "on".into()]);
    args.push(stranger.to_str().unwrap().into());
    args.extend(user[3..13].iter().map(|p| p.to_str().unwrap().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stdout = faceverify_ok(&args);
    let lines: Vec<&str> = stdout.lines().collect();
    let stranger_line = lines
        .iter()
        .position(|l| l.contains("Luiz_Inacio"))
        .unwrap();
    assert!(lines[stranger_line].contains("NOT VERIFIED"), "{stdout}");
    assert!(!lines[stranger_line + 2].contains("adaptive"), "{stdout}");
    let learned = stdout.matches("kept as an adaptive reference").count();
    assert!(learned >= 1, "{stdout}");
    // Kept in the store: the next run compares with them too (3 enrolled + the kept ones).
    let stdout = faceverify_ok(&[
        "verify",
        "--store",
        store.to_str().unwrap(),
        user[20].to_str().unwrap(),
    ]);
    assert!(stdout.contains(": VERIFIED"), "{stdout}");
    assert_eq!(
        stdout.lines().nth(1).unwrap().matches(',').count(),
        3 + learned - 1,
        "{stdout}"
    );
}
