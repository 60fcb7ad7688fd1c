//! Compiles the schemas in `proto/` with `protox` (a pure-Rust protobuf compiler), so a fresh
//! machine needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "prometheus/remote.proto",
        "io/prometheus/write/v2/types.proto",
        "io/prometheus/client/metrics.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed=proto/{f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    prost_build::Config::new()
        .btree_map(["."])
        .type_attribute("prometheus.Label", "#[derive(PartialOrd, Ord)]")
        .compile_fds(fds)?;
    Ok(())
}
