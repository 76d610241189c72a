//! Hands the target triple the crate is built for to `src/version.rs` (cargo tells build
//! scripts, not the crate): `dokku-image --version` names it.
fn main() {
    let target = std::env::var("TARGET").expect("cargo sets TARGET for build scripts");
    println!("cargo:rustc-env=DOKKU_IMAGE_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
