//! Starts a throwaway PostgreSQL cluster, prints `CLUSTER <port> <dir>`, and holds it until killed.
//! The integration tests SIGKILL this process to prove the server never outlives its owner.

use std::io::Write;

fn main() {
    let cluster = match cantina_notify::pg_cluster::PgCluster::start() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    println!("CLUSTER {} {}", cluster.port(), cluster.dir().display());
    let _ = std::io::stdout().flush();
    // No destructor will run: the point is what happens when this process is killed.
    std::mem::forget(cluster);
    loop {
        std::thread::park();
    }
}
