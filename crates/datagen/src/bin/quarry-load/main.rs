//! `quarry-load`: sends the generator's events to a running Quarry through the
//! Events API batch path, or its spans as OTLP trace exports (gRPC or HTTP), with
//! concurrent clients and reports events per second (and, given the server's pid,
//! its CPU seconds per million events); or writes them as NDJSON for other tools.
//!
//! ```text
//! quarry-load --url http://127.0.0.1:8080 --events 1M --concurrency 4
//! quarry-load --protocol otlp-grpc --otlp-grpc-url http://127.0.0.1:4317 --server-pid 1234
//! quarry-load --to mqtt --mqtt-broker mqtt://127.0.0.1:1883 --events 100k
//! quarry-load --events 10k --ndjson > events.ndjson
//! quarry-load --describe            # the scenario (services, deploys, anomaly) as JSON
//! ```

mod args;
mod cpu;
mod kafka_send;
mod mqtt_send;
mod otlp_send;
mod send;
mod stream_rows;
mod summary;

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use clap::Parser;
use quarry_datagen::{DatagenError, Generator, topology};

use crate::args::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("quarry-load: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), DatagenError> {
    let config = args.generator_config()?;
    let generator = Generator::new(config)?;
    if args.describe {
        return describe(&generator);
    }
    if args.ndjson {
        return write_ndjson(generator);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args::CLIENT_THREADS)
        .enable_all()
        .build()?;
    let summary = match args.protocol {
        args::Protocol::Events => runtime.block_on(send::send_all(args, generator))?,
        args::Protocol::OtlpGrpc | args::Protocol::OtlpHttp => {
            runtime.block_on(otlp_send::send_all(args, generator))?
        }
        args::Protocol::Mqtt => runtime.block_on(mqtt_send::send_all(args, generator))?,
        args::Protocol::Kafka => runtime.block_on(kafka_send::send_all(args, generator))?,
    };
    println!("{}", summary.line());
    if let Some(path) = &args.summary_json {
        let json = serde_json::to_vec_pretty(&summary)
            .map_err(|e| DatagenError::Response(e.to_string()))?;
        std::fs::write(path, json)?;
    }
    if summary.rejected > 0 {
        return Err(DatagenError::Response(format!(
            "{} events were rejected; first error: {}",
            summary.rejected,
            summary.first_rejection.as_deref().unwrap_or("?")
        )));
    }
    Ok(())
}

/// Prints the scenario: services and operations, deploys, the anomaly.
fn describe(generator: &Generator) -> Result<(), DatagenError> {
    let services: Vec<serde_json::Value> = topology::SERVICES
        .iter()
        .map(|s| {
            serde_json::json!({
                "name": s.name,
                "operations": s.operations.iter().map(|o| o.name).collect::<Vec<_>>(),
            })
        })
        .collect();
    let config = generator.config();
    let value = serde_json::json!({
        "seed": config.seed,
        "events": config.events,
        "start_time_ns": config.start_time_ns(),
        "end_time_ns": config.end_time_ns,
        "services": services,
        "deploys": generator.scenario().deploys,
        "anomaly": generator.anomaly(),
    });
    let text =
        serde_json::to_string_pretty(&value).map_err(|e| DatagenError::Response(e.to_string()))?;
    println!("{text}");
    Ok(())
}

/// Writes one NDJSON line per event to stdout; a closed pipe ends quietly.
fn write_ndjson(generator: Generator) -> Result<(), DatagenError> {
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut line = Vec::new();
    for event in generator {
        line.clear();
        event.write_ndjson_line(&mut line);
        match out.write_all(&line) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
