//! The processes under test: promgate and its peers, each a child process on a free loopback
//! port, waited on until it answers its readiness endpoint, killed (SIGKILL) when dropped.
//!
//! Every process writes its stdout and stderr to a log file in its own temporary directory;
//! a failure to start panics with the log's tail, so a broken binary says why.

use std::collections::HashSet;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::http;

/// How long a process may take to answer its readiness endpoint.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A free TCP port on 127.0.0.1. Ports handed out by this process are never handed out twice,
/// so servers started in parallel tests don't collide with each other.
pub fn free_port() -> u16 {
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(Default::default);
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        let mut set = given.lock().unwrap_or_else(|e| e.into_inner());
        if set.insert(port) {
            return port;
        }
    }
}

/// CPU seconds (user + system) a process has used so far, from `/proc/PID/stat` (`utime` and
/// `stime`, in clock ticks of `getconf CLK_TCK`).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/stat: {e}"));
    // The command name (field 2) is in parentheses and may hold spaces; fields after it start
    // at field 3 (state). utime is field 14, stime field 15.
    let rest = &stat[stat.rfind(')').expect("')' in /proc/PID/stat") + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields[11].parse().expect("utime");
    let stime: u64 = fields[12].parse().expect("stime");
    (utime + stime) as f64 / clock_ticks() as f64
}

fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        let out = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .expect("run getconf CLK_TCK");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("getconf CLK_TCK prints a number")
    })
}

/// A running child process with its port, working directory and log.
#[derive(Debug)]
pub struct Process {
    name: &'static str,
    child: Option<Child>,
    port: u16,
    log: PathBuf,
    /// Holds the config and log (and the data when the caller gave no data dir).
    dir: TempDir,
}

impl Process {
    /// Spawns `cmd` with its output going to `<dir>/<name>.log`, then polls
    /// `http://127.0.0.1:port{ready_path}` until it answers 200.
    pub(crate) fn spawn(
        name: &'static str,
        mut cmd: Command,
        port: u16,
        dir: TempDir,
        ready_path: &str,
    ) -> Self {
        let log = dir.path().join(format!("{name}.log"));
        let out = File::create(&log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name} ({cmd:?}): {e}"));
        let mut p = Process {
            name,
            child: Some(child),
            port,
            log,
            dir,
        };
        p.wait_ready(ready_path);
        p
    }

    fn wait_ready(&mut self, path: &str) {
        let url = format!("{}{path}", self.url());
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "{} exited during start-up ({status}); log {}:\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail()
                );
            }
            let last = match http::get(&url) {
                Ok(r) if r.status == 200 => return,
                Ok(r) => format!("{} {}", r.status, r.text()),
                Err(e) => e,
            };
            if Instant::now() > deadline {
                panic!(
                    "{} not ready at {url} after {START_TIMEOUT:?} (last: {last}); log:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The child's PID (for [`cpu_seconds`]).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("process running")
    }

    /// The last 4 KiB of the process's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(4096);
        String::from_utf8_lossy(&text[start..]).into_owned()
    }

    /// The whole log.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Whether the process is still running (not exited, not killed).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL, and reap. Idempotent.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // `Child::kill` sends SIGKILL on Unix.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM (via `kill -TERM`) and waits up to `timeout` for the process to exit.
    /// Returns its exit status, or `None` if it was still running at the deadline (it is then
    /// SIGKILLed).
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(sent, "kill -TERM {} failed", child.id());
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The temporary directory holding config and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// Where the promgate binary is: `$PROMGATE_BIN`, else the newest of
/// `<target>/{debug,release}/promgate` (target: `$CARGO_TARGET_DIR` or `<workspace>/target`).
pub fn promgate_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("PROMGATE_BIN") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "PROMGATE_BIN={} is not a file; build it first: cargo build -p gateway",
            p.display()
        );
        return p;
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| {
            if t.is_relative() {
                workspace.join(t)
            } else {
                t
            }
        })
        .unwrap_or_else(|| workspace.join("target"));
    let newest = ["debug", "release"]
        .iter()
        .map(|profile| target.join(profile).join("promgate"))
        .filter_map(|p| {
            let modified = std::fs::metadata(&p).ok()?.modified().ok()?;
            Some((modified, p))
        })
        .max();
    match newest {
        Some((_, p)) => p,
        None => panic!(
            "no promgate binary under {}/{{debug,release}}/ and PROMGATE_BIN unset; \
             build it first: cargo build -p gateway",
            target.display()
        ),
    }
}

/// A running `promgate serve`.
#[derive(Debug)]
pub struct Promgate {
    process: Process,
    bin: PathBuf,
    data_dir: PathBuf,
    config: String,
}

impl Promgate {
    /// Starts `promgate serve --config <tmp.yml> --listen 127.0.0.1:PORT --data-dir DATA_DIR`
    /// with `extra_config_yaml` as the whole config file (may be empty), and waits until
    /// `GET /-/ready` answers 200.
    pub fn start(data_dir: &Path, extra_config_yaml: &str) -> Self {
        Self::start_bin(&promgate_bin(), data_dir, extra_config_yaml)
    }

    /// As [`Promgate::start`], with an explicit binary.
    pub fn start_bin(bin: &Path, data_dir: &Path, extra_config_yaml: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("promgate-e2e-")
            .tempdir()
            .expect("tempdir");
        let config = dir.path().join("promgate.yml");
        std::fs::write(&config, extra_config_yaml).expect("write config");
        std::fs::create_dir_all(data_dir).expect("create data dir");
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data_dir);
        let process = Process::spawn("promgate", cmd, port, dir, "/-/ready");
        Promgate {
            process,
            bin: bin.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            config: extra_config_yaml.to_string(),
        }
    }

    /// SIGKILL, then start again with the same binary, config and data directory (on a new
    /// port), waiting until ready.
    pub fn restart(&mut self) {
        self.kill_9();
        *self = Promgate::start_bin(&self.bin, &self.data_dir, &self.config);
    }

    pub fn url(&self) -> String {
        self.process.url()
    }

    /// `http://127.0.0.1:PORT/api/v1/write`.
    pub fn write_url(&self) -> String {
        format!("{}/api/v1/write", self.url())
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn process(&self) -> &Process {
        &self.process
    }

    pub fn process_mut(&mut self) -> &mut Process {
        &mut self.process
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// SIGKILL promgate (a crash: no shutdown path runs).
    pub fn kill_9(&mut self) {
        self.process.kill_9();
    }

    /// `GET /api/v1/export?match[]=SELECTOR[&start&end][&raw_bits=1]`, parsed.
    pub fn export(
        &self,
        selector: &str,
        range: Option<(i64, i64)>,
        raw_bits: bool,
    ) -> Result<Vec<http::ExportSeries>, String> {
        http::export(&self.url(), selector, range, raw_bits)
    }

    /// Whether `GET /-/healthy` answers 200.
    pub fn is_healthy(&self) -> bool {
        http::get(&format!("{}/-/healthy", self.url())).is_ok_and(|r| r.status == 200)
    }

    /// `GET /metrics` as text.
    pub fn metrics(&self) -> String {
        let r = http::get(&format!("{}/metrics", self.url())).expect("GET /metrics");
        assert_eq!(r.status, 200, "GET /metrics: {}", r.text());
        r.text()
    }

    /// The value of one self-metric sample line (`name{labels}` exactly as exposed), if any.
    pub fn metric_value(&self, series: &str) -> Option<f64> {
        http::metric_value(&self.metrics(), series)
    }
}

/// A running Prometheus 2.42 (`/usr/bin/prometheus`) with the remote-write receiver on.
#[derive(Debug)]
pub struct Prometheus {
    process: Process,
}

impl Prometheus {
    /// Starts Prometheus with `config` as `prometheus.yml`, in which `{{PORT}}` stands for
    /// Prometheus's own listen port (for a self-scrape). TSDB in a temporary directory.
    pub fn start(config: &str) -> Self {
        Self::start_with_args(config, &[])
    }

    /// As [`Prometheus::start`], with extra command-line flags.
    pub fn start_with_args(config: &str, args: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("prometheus-e2e-")
            .tempdir()
            .expect("tempdir");
        let port = free_port();
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(&cfg, config.replace("{{PORT}}", &port.to_string())).expect("write");
        let mut cmd = Command::new(peer_bin("prometheus"));
        cmd.arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            .args(args);
        Prometheus {
            process: Process::spawn("prometheus", cmd, port, dir, "/-/ready"),
        }
    }

    pub fn url(&self) -> String {
        self.process.url()
    }

    pub fn write_url(&self) -> String {
        format!("{}/api/v1/write", self.url())
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn process(&self) -> &Process {
        &self.process
    }

    pub fn kill_9(&mut self) {
        self.process.kill_9();
    }

    /// An instant query at `time_ms`; for a range selector (`sel[1m]`) Prometheus returns the
    /// raw samples. Parsed into series with millisecond timestamps.
    pub fn query(&self, query: &str, time_ms: i64) -> Result<Vec<http::ExportSeries>, String> {
        http::prom_query(&self.url(), query, time_ms)
    }
}

/// A running VictoriaMetrics single node (`/usr/bin/victoria-metrics`).
#[derive(Debug)]
pub struct VictoriaMetrics {
    process: Process,
}

impl VictoriaMetrics {
    /// Starts VictoriaMetrics with an empty data directory, `-retentionPeriod=100y`, waiting for
    /// `GET /health`.
    pub fn start() -> Self {
        Self::start_with_args(&[])
    }

    /// As [`VictoriaMetrics::start`], with extra flags.
    pub fn start_with_args(args: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("victoria-metrics-e2e-")
            .tempdir()
            .expect("tempdir");
        let port = free_port();
        let mut cmd = Command::new(peer_bin("victoria-metrics"));
        cmd.arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!(
                "-storageDataPath={}",
                dir.path().join("data").display()
            ))
            .arg("-retentionPeriod=100y")
            .args(args);
        VictoriaMetrics {
            process: Process::spawn("victoria-metrics", cmd, port, dir, "/health"),
        }
    }

    pub fn url(&self) -> String {
        self.process.url()
    }

    pub fn write_url(&self) -> String {
        format!("{}/api/v1/write", self.url())
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn process(&self) -> &Process {
        &self.process
    }

    pub fn kill_9(&mut self) {
        self.process.kill_9();
    }

    /// Makes recently written data searchable (`/internal/force_flush`).
    pub fn force_flush(&self) {
        let r = http::get(&format!("{}/internal/force_flush", self.url()))
            .expect("GET /internal/force_flush");
        assert_eq!(r.status, 200, "force_flush: {}", r.text());
    }

    /// `GET /api/v1/export?match[]=SELECTOR`, parsed.
    pub fn export(
        &self,
        selector: &str,
        range: Option<(i64, i64)>,
    ) -> Result<Vec<http::ExportSeries>, String> {
        http::export(&self.url(), selector, range, false)
    }

    pub fn query(&self, query: &str, time_ms: i64) -> Result<Vec<http::ExportSeries>, String> {
        http::prom_query(&self.url(), query, time_ms)
    }
}

/// A running vmagent (`/usr/bin/vmagent`, from the victoria-metrics package): receives remote
/// write and forwards it to `remote_write_url`, buffering in a temporary directory.
#[derive(Debug)]
pub struct Vmagent {
    process: Process,
}

impl Vmagent {
    pub fn start(remote_write_url: &str) -> Self {
        Self::start_with_relabel(remote_write_url, None)
    }

    /// vmagent with `relabel` (a relabel config, YAML) applied to what it sends to the URL
    /// (`-remoteWrite.urlRelabelConfig`, its `write_relabel_configs`).
    pub fn start_with_relabel(remote_write_url: &str, relabel: Option<&str>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("vmagent-e2e-")
            .tempdir()
            .expect("tempdir");
        let port = free_port();
        let mut cmd = Command::new(peer_bin("vmagent"));
        cmd.arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!("-remoteWrite.url={remote_write_url}"))
            .arg(format!(
                "-remoteWrite.tmpDataPath={}",
                dir.path().join("queue").display()
            ));
        if let Some(relabel) = relabel {
            let path = dir.path().join("relabel.yml");
            std::fs::write(&path, relabel).expect("write vmagent relabel config");
            cmd.arg(format!("-remoteWrite.urlRelabelConfig={}", path.display()));
        }
        Vmagent {
            process: Process::spawn("vmagent", cmd, port, dir, "/health"),
        }
    }

    pub fn url(&self) -> String {
        self.process.url()
    }

    pub fn write_url(&self) -> String {
        format!("{}/api/v1/write", self.url())
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn process(&self) -> &Process {
        &self.process
    }
}

/// A peer binary: `/usr/bin/NAME`, else on `PATH`; panics pointing at `scripts/setup.sh`.
pub(crate) fn peer_bin(name: &str) -> PathBuf {
    let usr = Path::new("/usr/bin").join(name);
    if usr.is_file() {
        return usr;
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("{name} not installed; run scripts/setup.sh")
}
