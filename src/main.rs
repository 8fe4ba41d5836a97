//! The `featurestore` binary: everything is in the library's `cli` module.

fn main() -> anyhow::Result<()> {
    featurestore::cli::main()
}
