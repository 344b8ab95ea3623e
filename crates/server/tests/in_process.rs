//! A whole server built in-process from a configuration: it listens on the port
//! it reports, acknowledges events only once durable, and a second server over
//! the same data directory answers with them after the first one stopped.

use quarry_server::{Config, Overrides, Server};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_in_process_keeps_what_it_acknowledged_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        Config::load(&Overrides {
            data_dir: Some(dir.path().to_path_buf()),
            http: Some("127.0.0.1:0".into()),
            otlp_grpc: Some("off".into()),
            otlp_http: Some("127.0.0.1:0".into()),
            pg: Some("127.0.0.1:0".into()),
            ..Overrides::default()
        })
        .unwrap()
    };

    let server = Server::start(config(), None).await.unwrap();
    assert_ne!(server.http_address().port(), 0);
    assert!(server.otlp_grpc_address().is_none());
    assert!(
        server
            .pg_address()
            .is_some_and(|address| address.port() != 0)
    );
    assert!(
        server
            .otlp_http_address()
            .is_some_and(|address| address.port() != 0)
    );
    let address = server.http_address().to_string();
    let batch = json!([
        { "data": { "who": "a", "n": 1 }, "time": "2024-05-01T12:00:00Z" },
        { "data": { "who": "b", "n": 2 }, "time": "2024-05-01T12:00:01Z" },
        "not an event"
    ]);
    let (status, statuses) = post(&address, "/1/batch/shop", &batch).await;
    assert_eq!(status, 200, "{statuses}");
    assert_eq!(
        statuses,
        json!([{ "status": 202 }, { "status": 202 }, { "status": 400, "error": statuses[2]["error"] }])
    );
    assert_eq!(count(&address).await, 2);
    server.stop().await.unwrap();
    // Stopped means the port is closed.
    assert!(TcpStream::connect(&address).await.is_err());

    let server = Server::start(config(), None).await.unwrap();
    assert_eq!(count(&server.http_address().to_string()).await, 2);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_busy_port_fails_the_start_with_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(&Overrides {
        data_dir: Some(dir.path().to_path_buf()),
        http: Some(taken.local_addr().unwrap().to_string()),
        otlp_grpc: Some("off".into()),
        otlp_http: Some("off".into()),
        pg: Some("off".into()),
        ..Overrides::default()
    })
    .unwrap();
    let Err(error) = Server::start(config, None).await else {
        panic!("started on a busy port")
    };
    let message = error.to_string();
    assert!(
        message.contains(&taken.local_addr().unwrap().to_string()),
        "{message}"
    );
}

/// `SELECT COUNT(*)` of the `shop` dataset.
async fn count(address: &str) -> i64 {
    let (status, rows) = post(
        address,
        "/api/v1/sql",
        &json!({ "sql": "SELECT COUNT(*) AS n FROM shop" }),
    )
    .await;
    assert_eq!(status, 200, "{rows}");
    rows[0]["n"]
        .as_i64()
        .unwrap_or_else(|| panic!("no count: {rows}"))
}

/// One HTTP/1.1 request with a JSON body; the status and the JSON answer.
async fn post(address: &str, path: &str, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

/// The body of a chunked HTTP/1.1 response.
fn dechunk(mut chunked: &str) -> String {
    let mut body = String::new();
    while let Some((size, rest)) = chunked.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        body.push_str(&rest[..size]);
        chunked = &rest[size + 2..];
    }
    body
}
