//! Compiles the protobuf schemas with protox (pure Rust): no system `protoc` needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let files = protox::compile(
        ["goalpost/v1/events.proto", "goalpost/v1/internal.proto"],
        ["proto"],
    )?;
    prost_build::Config::new()
        .btree_map(["."])
        .compile_fds(files)?;
    Ok(())
}
