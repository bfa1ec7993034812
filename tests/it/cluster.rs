//! The throwaway cluster of the demo and the tests never outlives the process that started it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::*;

fn example(name: &str) -> PathBuf {
    // target/<profile>/deps/it-… → target/<profile>/examples/<name>
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent().and_then(|d| d.parent()).map(|d| d.join("examples").join(name)).expect("examples dir")
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

#[tokio::test]
async fn a_killed_owner_takes_its_server_and_directory_with_it() {
    let mut child =
        Command::new(example("hold_cluster")).stdout(Stdio::piped()).spawn().expect("run the hold_cluster example");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout).lines().map_while(Result::ok).find(|l| l.starts_with("CLUSTER "))
    })
    .await
    .unwrap()
    .expect("the example reports its cluster");
    let mut parts = line.split_whitespace().skip(1);
    let port: u16 = parts.next().and_then(|p| p.parse().ok()).expect("port");
    let dir = PathBuf::from(parts.next().expect("dir"));
    assert!(port_open(port) && dir.exists());

    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    poll_until("server and directory gone", SHORT, || {
        let dir = dir.clone();
        async move { (!port_open(port) && !dir.exists()).then_some(()) }
    })
    .await;
}
