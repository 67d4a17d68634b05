//! `other-world`: a plain WASI command (it exports `wasi:cli/run`, not the job-plugin world),
//! used to check that the host rejects components of another world.

fn main() {
    println!("I am not a job plugin");
}
