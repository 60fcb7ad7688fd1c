//! The promtool-compatible runner against the conformance corpora in `shared/conformance/`:
//! the 494 calibrated PromQL cases (every file must pass), the upstream promtool fixtures of
//! Prometheus v2.42.0 with the exit status `cmd/promtool/unittest_test.go` expects, and
//! promtool's exact output for a failing file.

use std::path::{Path, PathBuf};

use rules_engine::unittest::run_test_files;

fn conformance() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance")
}

fn run(file: &Path) -> (bool, String) {
    let mut out = Vec::new();
    let ok = run_test_files(&[file.to_path_buf()], &mut out).expect("writing to a Vec");
    (ok, String::from_utf8(out).expect("utf-8 output"))
}

#[test]
fn calibrated_promql_cases_all_pass() {
    let dir = conformance().join("promql");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 494);
    let failed: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let (ok, out) = run(f);
            (!ok).then_some(out)
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn upstream_promtool_fixtures_exit_as_expected() {
    let dir = conformance().join("upstream/promtool-testdata");
    let cases = [
        ("unittest.yml", true),
        ("long-period.yml", true),
        ("at-modifier-test.yml", true),
        ("negative-offset-test.yml", true),
        ("bad-input-series.yml", false),
        ("bad-promql.yml", false),
        ("bad-rules-syntax-test.yml", false),
        ("bad-rules-error-test.yml", false),
        ("failing.yml", false),
    ];
    for (f, want) in cases {
        let (ok, out) = run(&dir.join(f));
        assert_eq!(ok, want, "{f}:\n{out}");
    }
}

#[test]
fn failing_file_prints_what_promtool_prints() {
    let file = conformance().join("upstream/promtool-testdata/failing.yml");
    let (ok, out) = run(&file);
    assert!(!ok);
    let want = include_str!("fixtures/failing.out").replace("FILE", &file.display().to_string());
    assert_eq!(out, want);
}

#[test]
fn run_option_selects_test_groups_by_name() {
    let dir = std::env::temp_dir().join(format!("promgate-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("t.yml");
    std::fs::write(
        &file,
        "tests:\n  - name: good\n    promql_expr_test:\n      - expr: '1'\n        exp_samples:\n          - value: 1\n  - name: bad\n    promql_expr_test:\n      - expr: '1'\n        exp_samples:\n          - value: 2\n",
    )
    .unwrap();
    let run = |names: &[&str]| {
        let opts = rules_engine::unittest::RunOptions {
            run: names.iter().map(|s| s.to_string()).collect(),
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let ok = rules_engine::unittest::run_test_files_with(
            std::slice::from_ref(&file),
            &opts,
            &mut out,
            &mut err,
        )
        .unwrap();
        (
            ok,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    };
    let (ok, out, err) = run(&["^good$"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("  SUCCESS"));
    let (ok, _, err) = run(&[]);
    assert!(!ok);
    assert!(
        err.starts_with("  FAILED:\n    expr: \"1\", time: 0s,"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
