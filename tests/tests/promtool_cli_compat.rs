//! `promgate check rules` and `promgate test rules` against the real promtool 2.42: the same
//! arguments give the same exit code and stdout, and every error promtool prints appears in
//! promgate's (which adds the line, column, group and rule where promtool does not).

use std::path::Path;
use std::process::Command;

fn run(bin: &Path, args: &[&str], dir: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn same(args: &[&str], dir: &Path) {
    let (tool_code, tool_out, tool_err) = run(Path::new("/usr/bin/promtool"), args, dir);
    let (gate_code, gate_out, gate_err) = run(&e2e::server::promgate_bin(), args, dir);
    assert_eq!(
        gate_code, tool_code,
        "exit codes differ for {args:?}: {gate_err}"
    );
    assert_eq!(gate_out, tool_out, "stdout differs for {args:?}");
    for line in tool_err.lines() {
        // promtool prefixes errors with the file name; promgate puts the position after it.
        let core = args
            .iter()
            .find_map(|f| line.strip_prefix(&format!("{f}: ")))
            .unwrap_or(line);
        assert!(
            gate_err.contains(core),
            "{args:?}: promtool says {line:?}, promgate says:\n{gate_err}"
        );
    }
    assert_eq!(
        gate_err.is_empty(),
        tool_err.is_empty(),
        "{args:?}: {gate_err}"
    );
}

fn fixtures() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).expect("write");
    w(
        "dup.yml",
        "groups:\n  - name: g\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up)\n        labels: {team: a}\n      - record: job:up:sum\n        expr: sum by (job) (up)\n        labels: {team: a}\n      - alert: A\n        expr: up == 0\n",
    );
    w(
        "bad_duration.yml",
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        for: 5x\n",
    );
    w(
        "bad_expr.yml",
        "groups:\n  - name: g\n    rules:\n      - record: job:up:sum\n        expr: sum(up\n",
    );
    w("empty.yml", "groups: []\n");
    let pack = Path::new(env!("CARGO_MANIFEST_DIR")).join("../alerts.yaml");
    std::fs::copy(pack, dir.path().join("alerts.yaml")).expect("copy the pack");
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    copy_rule_tests(&tests, dir.path());
    w(
        "bad_template.yml",
        "groups:\n  - name: g\n    rules:\n      - alert: Bad\n        expr: up == 0\n        labels:\n          sev: '{{ nofunc }}'\n        annotations:\n          a: '{{ if }}'\n          b: '{{ tmpl \"x\" . }}'\n          c: 'fine {{ $labels.x }}'\n",
    );
    dir
}

/// Copies `tests/rules` (and its `fixtures/`), pointing the tests at the copied pack.
fn copy_rule_tests(from: &Path, to: &Path) {
    for f in std::fs::read_dir(from).expect("read dir") {
        let f = f.expect("entry").path();
        let dest = to.join(f.file_name().expect("name"));
        if f.is_dir() {
            std::fs::create_dir_all(&dest).expect("mkdir");
            copy_rule_tests(&f, &dest);
            continue;
        }
        let text = std::fs::read_to_string(&f)
            .expect("read")
            .replace("../../alerts.yaml", "alerts.yaml");
        std::fs::write(dest, text).expect("write");
    }
}

#[test]
fn check_rules_matches_promtool() {
    let dir = fixtures();
    let d = dir.path();
    same(&["check", "rules", "alerts.yaml"], d);
    same(&["check", "rules", "dup.yml"], d);
    same(&["check", "rules", "--lint-fatal", "dup.yml"], d);
    same(&["check", "rules", "--lint=none", "dup.yml"], d);
    same(&["check", "rules", "bad_duration.yml"], d);
    same(&["check", "rules", "bad_expr.yml"], d);
    same(&["check", "rules", "bad_template.yml"], d);
    same(&["check", "rules", "fixtures/templates.yml"], d);
    same(
        &["check", "rules", "empty.yml", "alerts.yaml", "dup.yml"],
        d,
    );
}

#[test]
fn test_rules_matches_promtool() {
    let dir = fixtures();
    let d = dir.path();
    same(
        &[
            "test",
            "rules",
            "services_test.yml",
            "trading_risk_test.yml",
        ],
        d,
    );
    // A failing group: same failure report.
    let failing = std::fs::read_to_string(d.join("services_test.yml"))
        .expect("read")
        .replace(
            "summary: \"Agent hedger unhealthy\"",
            "summary: \"Agent hedger sick\"",
        );
    std::fs::write(d.join("failing_test.yml"), failing).expect("write");
    same(&["test", "rules", "failing_test.yml"], d);
    // Templates: Go's template language and Prometheus's functions, expanded alike; a wrong
    // expectation prints the same report, every expansion (and error text) included.
    same(&["test", "rules", "templates_test.yml"], d);
    let failing = std::fs::read_to_string(d.join("templates_test.yml"))
        .expect("read")
        .replace("with: \"none|eth\"", "with: \"none|ETH\"");
    std::fs::write(d.join("failing_templates_test.yml"), failing).expect("write");
    same(&["test", "rules", "failing_templates_test.yml"], d);
}

/// `--run` (promtool 2.42 has no such flag; later promtool versions do) runs only the test
/// groups whose name matches.
#[test]
fn run_selects_test_groups() {
    let dir = fixtures();
    let d = dir.path();
    let failing = std::fs::read_to_string(d.join("services_test.yml"))
        .expect("read")
        .replace(
            "summary: \"Agent hedger unhealthy\"",
            "summary: \"Agent hedger sick\"",
        );
    std::fs::write(d.join("failing_test.yml"), failing).expect("write");
    let bin = e2e::server::promgate_bin();
    let (code, _, err) = run(&bin, &["test", "rules", "failing_test.yml"], d);
    assert_eq!(code, Some(1), "{err}");
    let (code, out, err) = run(
        &bin,
        &["test", "rules", "--run", "^MCP", "failing_test.yml"],
        d,
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("SUCCESS"), "{out}");
    let (code, _, err) = run(
        &bin,
        &["test", "rules", "--run", "agent", "failing_test.yml"],
        d,
    );
    assert_eq!(code, Some(1), "{err}");
}
