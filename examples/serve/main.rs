//! A restoration web page on the built-in weights, offline: drop or choose photos, see the
//! degradation the network recognised, compare before and after with a slider and zoom, show
//! the uncertainty map, download the result.
//!
//! ```text
//! cargo run --release --example serve [-- --port 8000]
//! ```
//! then open <http://127.0.0.1:8000/>. Options:
//! - `--port N`: the port (default 8000; `0` picks a free one, printed at start);
//! - `--bind ADDR`: the address to listen on (default `127.0.0.1`, this machine only; the page
//!   has no authentication, so think twice before `0.0.0.0`);
//! - `--device NAME`: `flex` (default), `ndarray`, `wgpu`, `cuda` — those enabled at build time;
//! - `--max-upload MB` (default 64): larger uploads are refused (HTTP 413);
//! - `--max-megapixels N` (default 50): larger images are refused after decoding (HTTP 413);
//! - `--memory-budget MB` (default 2048): one restoration's memory, tiles chosen to fit;
//! - `--queue N` (default 16): photos accepted and not yet restored; more get HTTP 503.
//!
//! One photo is restored at a time, on one worker thread (which uses every core); the others
//! wait in a queue, and the page shows their place in it. Uploads, decoded inputs and results
//! live in a private temporary directory that is removed when the server stops (Ctrl-C or
//! SIGTERM); nothing is written anywhere else. The HTTP API the page uses, and its tests, are
//! in `app.rs`; the page is `page.html`, embedded in the binary.

mod app;

use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::prelude::*;
use dppd::device_from_name;
use dppd::model::Restorer;

const USAGE: &str = "usage: serve [--port N] [--bind ADDR] [--device flex|ndarray|wgpu|cuda] \
[--max-upload MB] [--max-megapixels N] [--memory-budget MB] [--queue N]";

struct Args {
    port: u16,
    bind: IpAddr,
    device: String,
    max_upload_mb: usize,
    max_megapixels: u64,
    budget_mb: u64,
    queue: usize,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        port: 8000,
        bind: IpAddr::from([127, 0, 0, 1]),
        device: "flex".into(),
        max_upload_mb: 64,
        max_megapixels: 50,
        budget_mb: 2048,
        queue: 16,
    };
    fn number<T: std::str::FromStr>(v: String, what: &str) -> Result<T, String> {
        v.parse()
            .map_err(|_| format!("{what} needs a non-negative integer, got {v:?}"))
    }
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--port" => a.port = number(value()?, "--port")?,
            "--bind" => {
                let v = value()?;
                a.bind = v
                    .parse()
                    .map_err(|_| format!("--bind needs an IP address, got {v:?}"))?;
            }
            "--device" => a.device = value()?,
            "--max-upload" => a.max_upload_mb = number(value()?, "--max-upload")?,
            "--max-megapixels" => a.max_megapixels = number(value()?, "--max-megapixels")?,
            "--memory-budget" => a.budget_mb = number(value()?, "--memory-budget")?,
            "--queue" => a.queue = number(value()?, "--queue")?,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if a.max_upload_mb == 0 || a.max_megapixels == 0 || a.queue == 0 {
        return Err("--max-upload, --max-megapixels and --queue must be at least 1".into());
    }
    Ok(a)
}

/// Waits for Ctrl-C or (on Unix) SIGTERM.
async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn run(a: Args) -> Result<(), String> {
    let device = device_from_name(&a.device).map_err(|e| e.to_string())?;
    let t = Instant::now();
    let model = Restorer::pretrained(&device).map_err(|e| e.to_string())?;
    let params = model.num_params();
    let degradations = model.config().degradations.clone();
    println!(
        "loaded the built-in default weights: {params} parameters, on {} in {:.2} s",
        a.device,
        t.elapsed().as_secs_f64()
    );
    // Every file the server writes goes under this directory; dropping it removes them all.
    let dir = tempfile::Builder::new()
        .prefix("dppd-serve-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let limits = app::Limits {
        max_upload: a.max_upload_mb << 20,
        max_pixels: a.max_megapixels * 1_000_000,
        queue: a.queue,
        ..app::Limits::default()
    };
    let info = serde_json::json!({
        "weights": "built-in default weights",
        "parameters": params,
        "device": a.device,
        "degradations": degradations,
        "max_upload": limits.max_upload,
        "max_pixels": limits.max_pixels,
        "max_samples": limits.max_samples,
    });
    let server = Arc::new(app::Server::new(dir.path().to_path_buf(), limits, info));
    app::spawn_worker(server.clone(), model, device, a.budget_mb << 20);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // Decoding uploads: at most two at once, next to the restoration worker.
        .max_blocking_threads(2)
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let served = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind((a.bind, a.port))
            .await
            .map_err(|e| format!("cannot listen on {}:{}: {e}", a.bind, a.port))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        if !a.bind.is_loopback() {
            println!("warning: listening on {addr}, reachable from other machines, without authentication");
        }
        println!(
            "serving http://{addr}/  (temporary files in {}; Ctrl-C stops)",
            dir.path().display()
        );
        axum::serve(listener, app::router(server.clone()))
            .with_graceful_shutdown(stop_signal())
            .await
            .map_err(|e| format!("server error: {e}"))
    });
    server.close();
    rt.shutdown_timeout(Duration::from_secs(2));
    // A restoration still running on the worker thread ends with the process.
    let path = dir.path().display().to_string();
    match dir.close() {
        Ok(()) => println!("stopped; removed {path}"),
        Err(e) => eprintln!("stopped; could not remove {path}: {e}"),
    }
    served
}

fn main() -> ExitCode {
    dppd::retain_freed_memory();
    let args = match parse() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
