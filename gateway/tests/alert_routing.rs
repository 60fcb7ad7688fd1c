//! The route tree against the real `amtool config routes test` (Alertmanager 0.25's own
//! routing code): for a tree using every matcher form, `continue`, nesting and inheritance,
//! and many label sets, the receivers promgate picks are the receivers amtool prints. Also
//! `promgate check config` errors for routing and receivers, with file and line.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::process::Command;

use gateway::alerting::AlertmanagerFile;
use gateway::alerting::route::Route;

const TREE: &str = r#"
route:
  receiver: default
  group_by: [alertname]
  routes:
    - matchers: ['severity="page"']
      receiver: pager
      continue: true
    - match: {team: risk}
      receiver: risk
      routes:
        - match_re: {alertname: "Drawdown.*|Breaker"}
          receiver: risk-critical
        - matchers: ['env!~"prod|staging"', 'alertname!="Noise"']
          receiver: risk-dev
          continue: true
        - matchers: ['env=~"dev.*"']
          receiver: risk-dev2
    - matchers: ['{exchange=~"binance|kraken", severity!="info"}']
      receiver: exchange
      continue: true
    - matchers: ['exchange=~".+"']
      receiver: exchange-all
    - matchers: ['team=""']
      receiver: no-team
"#;

fn receivers() -> String {
    let mut s = String::from("receivers:\n");
    for r in [
        "default",
        "pager",
        "risk",
        "risk-critical",
        "risk-dev",
        "risk-dev2",
        "exchange",
        "exchange-all",
        "no-team",
    ] {
        s.push_str(&format!("  - name: {r}\n"));
    }
    s
}

fn amtool() -> String {
    let bin = std::env::var("AMTOOL").unwrap_or_else(|_| "/usr/bin/amtool".into());
    assert!(
        std::path::Path::new(&bin).exists(),
        "{bin} missing: run scripts/setup.sh (Debian prometheus-alertmanager)"
    );
    bin
}

#[test]
fn receivers_are_the_ones_amtool_prints() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alertmanager.yml");
    let text = format!("{TREE}{}", receivers());
    std::fs::write(&file, &text).unwrap();
    let cfg = AlertmanagerFile::load(&file).unwrap();
    let tree = Route::new(cfg.route.as_ref().unwrap());
    let names = ["severity", "team", "alertname", "env", "exchange"];
    let values: [&[&str]; 5] = [
        &["", "page", "info"],
        &["", "risk", "ops"],
        &["", "DrawdownHigh", "Breaker", "Noise"],
        &["", "prod", "dev", "devx"],
        &["", "binance", "okx"],
    ];
    // Every combination: 3 * 3 * 4 * 4 * 3 = 432 label sets.
    let mut combos: Vec<BTreeMap<String, String>> = vec![BTreeMap::new()];
    for (n, vs) in names.iter().zip(values) {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                vs.iter().map(move |v| {
                    let mut c = c.clone();
                    if !v.is_empty() {
                        c.insert(n.to_string(), v.to_string());
                    }
                    c
                })
            })
            .collect();
    }
    let bin = amtool();
    let mut checked = 0;
    for labels in combos.iter().filter(|c| !c.is_empty()) {
        let args: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let out = Command::new(&bin)
            .args(["config", "routes", "test"])
            .arg(format!("--config.file={}", file.display()))
            .args(&args)
            .output()
            .unwrap();
        let theirs = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let ours: Vec<String> = tree
            .matches(labels)
            .iter()
            .map(|r| r.opts.receiver.clone())
            .collect();
        assert_eq!(ours.join(","), theirs, "labels {labels:?}");
        checked += 1;
    }
    assert_eq!(checked, 431);
}

fn check(config: &str, am: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("alertmanager.yml"), am).unwrap();
    let path = dir.path().join("promgate.yml");
    std::fs::write(&path, config).unwrap();
    match gateway::config::Config::load(&path) {
        Ok(_) => "ok".into(),
        Err(e) => e
            .to_string()
            .replace(&dir.path().display().to_string(), "DIR"),
    }
}

#[test]
fn check_config_names_file_line_and_problem() {
    let file_form = "alertmanager_config: alertmanager.yml\n";
    let ok = "route:\n  receiver: a\nreceivers:\n  - name: a\n";
    assert_eq!(check(file_form, ok), "ok");
    let e = check(
        file_form,
        "route:\n  receiver: a\n  routes:\n    - receiver: b\nreceivers:\n  - name: a\n",
    );
    assert!(
        e.contains(
            "DIR/alertmanager.yml:4: route.routes[0]: undefined receiver \"b\" used in route"
        ),
        "{e}"
    );
    let e = check(
        file_form,
        "route:\n  receiver: a\n  routes:\n    - matchers: ['a=\"b']\nreceivers:\n  - name: a\n",
    );
    assert!(e.contains("DIR/alertmanager.yml:4:"), "{e}");
    assert!(e.contains("unescaped double quote"), "{e}");
    let e = check(
        file_form,
        "route:\n  receiver: a\nreceivers:\n  - name: a\n    slack_configs:\n      - channel: '#x'\n",
    );
    assert!(e.contains("receiver \"a\": slack_configs[0]"), "{e}");
    let e = check(
        file_form,
        "route:\n  receiver: a\nreceivers:\n  - name: a\n    pagerduty_configs:\n      - routing_key: ''\n",
    );
    assert!(e.contains("pagerduty_configs[0]"), "{e}");
    let e = check(
        "alertmanager:\n  route:\n    receiver: x\n  receivers:\n    - name: a\n",
        ok,
    );
    assert!(
        e.contains("DIR/promgate.yml:3: route: undefined receiver \"x\" used in route"),
        "{e}"
    );
    let e = check(
        file_form,
        "route:\n  receiver: a\n  match: {x: y}\nreceivers:\n  - name: a\n  - name: a\n",
    );
    assert!(e.contains("root route must not have any matchers"), "{e}");
    assert!(
        e.contains("DIR/alertmanager.yml:5: notification config name \"a\" is not unique"),
        "{e}"
    );
    // Secrets never appear in errors.
    let e = check(
        file_form,
        "route:\n  receiver: a\nreceivers:\n  - name: a\n    slack_configs:\n      - api_url: 'ftp://hooks.example/T0/B0/s3cr3t-t0ken'\n",
    );
    assert!(!e.contains("s3cr3t-t0ken"), "{e}");
}
