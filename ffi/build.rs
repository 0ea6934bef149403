// Gives libping32dlp.so its SONAME, `libping32dlp.so.<major>`, so that programs linked against
// one major version keep loading that version after an upgrade.
fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libping32dlp.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
