use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};

use super::*;
use tokio_postgres::NoTls;

async fn start() -> PgCluster {
    tokio::task::spawn_blocking(PgCluster::start).await.expect("start task panicked").expect("start cluster")
}

async fn stop(mut cluster: PgCluster) {
    tokio::task::spawn_blocking(move || cluster.stop()).await.expect("stop task panicked");
}

async fn query_one(url: &str) -> i32 {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(conn);
    client.query_one("SELECT 1", &[]).await.expect("SELECT 1").get(0)
}

fn port_closed(port: u16) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), Duration::from_millis(500)).is_err()
}

#[tokio::test]
async fn start_query_create_database_stop() {
    let cluster = start().await;
    let port = cluster.port();
    let dir = cluster.dir.clone();
    assert!(dir.join("data").is_dir());
    assert_eq!(cluster.url("postgres"), format!("postgres://postgres@127.0.0.1:{port}/postgres"));

    let (client, conn) = tokio_postgres::connect(&cluster.url("postgres"), NoTls).await.expect("connect");
    let conn = tokio::spawn(conn);
    let one: i32 = client.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    client.batch_execute("CREATE DATABASE fresh_db").await.expect("create database");
    assert_eq!(query_one(&cluster.url("fresh_db")).await, 1);
    drop(client);
    let _ = conn.await;

    stop(cluster).await;
    assert!(port_closed(port), "port {port} still accepts connections");
    assert!(!dir.exists(), "{} still exists", dir.display());
}

#[tokio::test]
async fn two_clusters_at_once() {
    let (a, b) = tokio::join!(start(), start());
    assert_ne!(a.port(), b.port());
    assert_ne!(a.dir, b.dir);
    assert_eq!(query_one(&a.url("postgres")).await, 1);
    assert_eq!(query_one(&b.url("postgres")).await, 1);
    let (a_port, b_port) = (a.port(), b.port());
    tokio::join!(stop(a), stop(b));
    assert!(port_closed(a_port) && port_closed(b_port));
}

#[tokio::test]
async fn restart_fast_ends_sessions_and_keeps_data_and_port() {
    let cluster = start().await;
    let (port, dir) = (cluster.port(), cluster.dir.clone());
    let (client, conn) = tokio_postgres::connect(&cluster.url("postgres"), NoTls).await.expect("connect");
    let conn = tokio::spawn(conn);
    client.batch_execute("CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)").await.expect("write");

    let cluster = tokio::task::spawn_blocking(move || {
        let mut cluster = cluster;
        cluster.restart_fast().map(|()| cluster)
    })
    .await
    .expect("restart task panicked")
    .expect("restart");
    assert!(client.batch_execute("SELECT 1").await.is_err(), "the old session survived the restart");
    let _ = conn.await;
    assert_eq!(cluster.port(), port);
    let (client, conn) = tokio_postgres::connect(&cluster.url("postgres"), NoTls).await.expect("reconnect");
    let conn = tokio::spawn(conn);
    let v: i32 = client.query_one("SELECT v FROM kept", &[]).await.expect("read").get(0);
    assert_eq!(v, 7);
    drop(client);
    let _ = conn.await;

    // The lifeline still stops the restarted server and removes the directory.
    stop(cluster).await;
    assert!(port_closed(port), "port {port} still accepts connections");
    assert!(!dir.exists(), "{} still exists", dir.display());
}

#[tokio::test]
async fn stop_is_idempotent() {
    let mut cluster = start().await;
    let port = cluster.port();
    tokio::task::spawn_blocking(move || {
        cluster.stop();
        cluster.stop();
        drop(cluster);
    })
    .await
    .unwrap();
    assert!(port_closed(port));
}

#[tokio::test]
async fn reports_server_log_when_port_is_taken() {
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = tokio::task::spawn_blocking(move || {
        let bins = Binaries::find().unwrap();
        PgCluster::start_once(&bins, server_user().unwrap(), &ClusterOptions::default(), || Ok(port))
    })
    .await
    .unwrap()
    .expect_err("port is taken");
    let ClusterError::ServerExited { log, .. } = &err else {
        panic!("unexpected error: {err}");
    };
    assert!(port_was_taken(log), "{err}");
    drop(taken);
}

#[test]
fn url_encodes_database_name() {
    let cluster = PgCluster { port: 5555, dir: PathBuf::new(), watchdog: None };
    assert_eq!(cluster.url("a b/ü"), "postgres://postgres@127.0.0.1:5555/a%20b%2F%C3%BC");
}

#[test]
fn recognizes_port_conflicts() {
    assert!(port_was_taken("LOG:  could not bind IPv4 address \"127.0.0.1\": Address already in use"));
    assert!(!port_was_taken("FATAL:  data directory has wrong ownership"));
}
