//! The server behind the page: an HTTP API, a queue of restoration jobs and the one worker
//! thread that runs them.
//!
//! | request | answer |
//! |---|---|
//! | `GET /` | the page |
//! | `GET /api/info` | the network and the server's limits (JSON) |
//! | `POST /api/jobs?name=FILE&samples=N&ensemble=V` with the file as the body (`samples` 1 to the limit, `ensemble` 1, 2, 4 or 8 views: `RestoreOptions`; both 1 if left out) | `202` and the job's status; `400` unreadable image or bad parameter, `413` too large (bytes or pixels), `415` not an image format the crate reads, `503` queue full — every error as JSON `{"error": "..."}` |
//! | `GET /api/jobs/ID` | the job's status: `queued` (with `ahead`), `running` (`done`/`total` tiles), `done` (the degradation, result URLs) or `failed` (`error`) |
//! | `GET /api/jobs/ID/input.png`, `restored.png`, `uncertainty.png` | the decoded input, the result, the scaled uncertainty map |
//!
//! Uploads are decoded by the crate's own reader ([`read_image`]), so a bad file gets the
//! message the command line prints, with the uploaded file's name in place of a path.

use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use burn::prelude::*;
use dppd::data::{Image, read_image, write_image};
use dppd::model::{DegradationPrediction, Restorer, TileConfig};
use dppd::restore::{ENSEMBLE_VIEWS, RestoreOptions};
use serde_json::{Value, json};

/// The page: one self-contained HTML file (inline CSS and JavaScript, no network).
pub const PAGE: &str = include_str!("page.html");

/// What the server accepts.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest upload in bytes.
    pub max_upload: usize,
    /// Largest image in pixels (`width · height`), checked after decoding.
    pub max_pixels: u64,
    /// Most restorations averaged for an uncertainty map.
    pub max_samples: usize,
    /// Most jobs accepted and not finished (being decoded, waiting or running).
    pub queue: usize,
    /// Finished jobs whose files are kept; older ones are deleted.
    pub keep: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_upload: 64 << 20,
            max_pixels: 50_000_000,
            max_samples: 8,
            queue: 16,
            keep: 32,
        }
    }
}

/// What the worker made of a job.
#[derive(Debug)]
struct Outcome {
    degradation: Option<DegradationPrediction>,
    seconds: f64,
    tiles: Option<TileConfig>,
    /// The standard deviation shown as white in `uncertainty.png`.
    uncertainty_max: Option<f32>,
}

#[derive(Debug)]
enum JobState {
    Queued,
    Running {
        done: usize,
        total: usize,
        started: Instant,
    },
    Done(Outcome),
    Failed(String),
}

#[derive(Debug)]
struct Job {
    /// The uploaded file's name (shown, never used as a path).
    name: String,
    width: usize,
    height: usize,
    samples: usize,
    /// Views of the geometric self-ensemble ([`RestoreOptions::ensemble`]).
    ensemble: usize,
    /// The uploaded file, decoded again by the worker (a queue of decoded images could take
    /// gigabytes), then deleted.
    upload: PathBuf,
    state: JobState,
}

#[derive(Debug, Default)]
struct Jobs {
    next_id: u64,
    map: HashMap<u64, Job>,
    /// Jobs waiting for the worker, first in first out.
    waiting: VecDeque<u64>,
    /// The job the worker is running.
    running: Option<u64>,
    /// Finished jobs, oldest first.
    finished: VecDeque<u64>,
    /// Jobs accepted and not finished, including uploads still being decoded.
    active: usize,
    closed: bool,
}

/// The state shared by the HTTP handlers and the worker.
pub struct Server {
    root: PathBuf,
    limits: Limits,
    info: Value,
    jobs: Mutex<Jobs>,
    wake: Condvar,
}

/// An error answer: HTTP status and the message shown on the page.
type Failure = (StatusCode, String);

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

fn megabytes(bytes: usize) -> String {
    format!("{} MB", bytes >> 20)
}

impl Server {
    /// A server whose files go under `root` (an existing, private directory).
    pub fn new(root: PathBuf, limits: Limits, info: Value) -> Self {
        Self {
            root,
            limits,
            info,
            jobs: Mutex::new(Jobs::default()),
            wake: Condvar::new(),
        }
    }

    fn jobs(&self) -> MutexGuard<'_, Jobs> {
        // A panic while the lock was held cannot leave the job table inconsistent in a way
        // that matters more than stopping the server would.
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn job_dir(&self, id: u64) -> PathBuf {
        self.root.join(format!("job-{id}"))
    }

    /// Stops accepting jobs and lets an idle worker return.
    pub fn close(&self) {
        self.jobs().closed = true;
        self.wake.notify_all();
    }

    /// Reserves a job id, or says why no new job is accepted.
    fn admit(&self) -> Result<u64, Failure> {
        let mut jobs = self.jobs();
        if jobs.closed {
            return Err((
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is stopping".into(),
            ));
        }
        if jobs.active >= self.limits.queue {
            return Err((
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the server is busy: {} photos are waiting or being restored (at most {}); try again when one is done",
                    jobs.active, self.limits.queue
                ),
            ));
        }
        jobs.active += 1;
        jobs.next_id += 1;
        Ok(jobs.next_id)
    }

    /// Gives up a reserved id whose upload was refused, and its files.
    fn reject(&self, id: u64) {
        self.jobs().active -= 1;
        let _ = std::fs::remove_dir_all(self.job_dir(id));
    }

    /// Queues a decoded job for the worker.
    fn enqueue(&self, id: u64, job: Job) -> Value {
        let mut jobs = self.jobs();
        jobs.map.insert(id, job);
        jobs.waiting.push_back(id);
        self.wake.notify_all();
        status_json(&jobs, id).expect("just inserted")
    }

    /// Blocks until a job is waiting (marking it running and returning its id, upload, samples
    /// and ensemble views), or returns
    /// `None` once the server is closed.
    fn next_job(&self) -> Option<(u64, PathBuf, usize, usize)> {
        let mut jobs = self.jobs();
        loop {
            if jobs.closed {
                return None;
            }
            if let Some(id) = jobs.waiting.pop_front() {
                jobs.running = Some(id);
                let job = jobs.map.get_mut(&id).expect("a queued job is in the table");
                job.state = JobState::Running {
                    done: 0,
                    total: 0,
                    started: Instant::now(),
                };
                return Some((id, job.upload.clone(), job.samples, job.ensemble));
            }
            jobs = self.wake.wait(jobs).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn progress(&self, id: u64, done_now: usize, total_now: usize) {
        if let Some(Job {
            state: JobState::Running { done, total, .. },
            ..
        }) = self.jobs().map.get_mut(&id)
        {
            (*done, *total) = (done_now, total_now);
        }
    }

    /// Records a finished job and deletes the oldest finished ones beyond [`Limits::keep`].
    fn finish(&self, id: u64, state: JobState) {
        let mut jobs = self.jobs();
        if let Some(job) = jobs.map.get_mut(&id) {
            job.state = state;
        }
        jobs.running = None;
        jobs.active -= 1;
        jobs.finished.push_back(id);
        while jobs.finished.len() > self.limits.keep {
            let old = jobs.finished.pop_front().expect("not empty");
            jobs.map.remove(&old);
            let _ = std::fs::remove_dir_all(self.job_dir(old));
        }
    }
}

/// The JSON status of job `id`, `None` if there is no such job.
fn status_json(jobs: &Jobs, id: u64) -> Option<Value> {
    let job = jobs.map.get(&id)?;
    let stem = Path::new(&job.name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "photo".into());
    let mut v = json!({
        "id": id,
        "name": job.name,
        "width": job.width,
        "height": job.height,
        "samples": job.samples,
        "ensemble": job.ensemble,
        "input": format!("/api/jobs/{id}/input.png"),
        "download": format!("{stem}-restored.png"),
    });
    match &job.state {
        JobState::Queued => {
            let place = jobs.waiting.iter().position(|&j| j == id).unwrap_or(0);
            v["state"] = "queued".into();
            v["ahead"] = (place + usize::from(jobs.running.is_some())).into();
        }
        JobState::Running {
            done,
            total,
            started,
        } => {
            v["state"] = "running".into();
            v["done"] = (*done).into();
            v["total"] = (*total).into();
            v["elapsed"] = started.elapsed().as_secs_f64().into();
        }
        JobState::Done(o) => {
            v["state"] = "done".into();
            v["seconds"] = o.seconds.into();
            v["restored"] = format!("/api/jobs/{id}/restored.png").into();
            v["degradation"] = o.degradation.as_ref().map_or(Value::Null, |d| {
                json!({
                    "name": d.name,
                    "probability": d.probability,
                    "all": d.all.iter().map(|(n, p)| json!({"name": n, "probability": p})).collect::<Vec<_>>(),
                })
            });
            v["tiles"] = o.tiles.map_or(
                Value::Null,
                |t| json!({"tile": t.tile, "overlap": t.overlap}),
            );
            if let Some(max) = o.uncertainty_max {
                v["uncertainty"] = format!("/api/jobs/{id}/uncertainty.png").into();
                v["uncertainty_max"] = max.into();
            }
        }
        JobState::Failed(message) => {
            v["state"] = "failed".into();
            v["error"] = message.clone().into();
        }
    }
    Some(v)
}

/// Starts the worker thread: it restores queued jobs one at a time, until the server closes.
pub fn spawn_worker(
    server: Arc<Server>,
    model: Restorer,
    device: Device,
    memory_budget: u64,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("restore".into())
        .spawn(move || {
            while let Some((id, upload, samples, ensemble)) = server.next_job() {
                let options = RestoreOptions {
                    memory_budget,
                    samples,
                    ensemble,
                    ..RestoreOptions::default()
                };
                let run = catch_unwind(AssertUnwindSafe(|| {
                    restore_job(&server, id, &upload, &options, &model, &device)
                }));
                let state = match run {
                    Ok(Ok(outcome)) => JobState::Done(outcome),
                    Ok(Err(e)) => JobState::Failed(format!("restoration failed: {e}")),
                    Err(panic) => {
                        let why = panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        JobState::Failed(format!("restoration failed: {why}"))
                    }
                };
                let _ = std::fs::remove_file(&upload);
                server.finish(id, state);
            }
        })
        .expect("cannot start the worker thread")
}

fn restore_job(
    server: &Server,
    id: u64,
    upload: &Path,
    options: &RestoreOptions,
    model: &Restorer,
    device: &Device,
) -> dppd::Result<Outcome> {
    let image = read_image(upload)?;
    let started = Instant::now();
    let r = model.restore_image(&image, options, device, |done, total| {
        server.progress(id, done, total)
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let dir = server.job_dir(id);
    write_image(dir.join("restored.png"), &r.image)?;
    let mut uncertainty_max = None;
    if let Some(std) = &r.uncertainty {
        // Scaled as the command line's --uncertainty: the largest deviation is white.
        let max = std.data.iter().fold(0.0f32, |m, &v| m.max(v));
        let scaled = if max > 0.0 {
            std.map(|v| v / max)
        } else {
            std.clone()
        };
        write_image(dir.join("uncertainty.png"), &scaled)?;
        uncertainty_max = Some(max);
    }
    Ok(Outcome {
        degradation: r.degradation,
        seconds,
        tiles: r.tiles,
        uncertainty_max,
    })
}

/// The uploaded file's name for display: its last path component without control
/// characters, at most 120 characters.
fn display_name(raw: Option<&str>) -> String {
    let base = raw.unwrap_or("").rsplit(['/', '\\']).next().unwrap_or("");
    let name: String = base.chars().filter(|c| !c.is_control()).take(120).collect();
    match name.trim() {
        "" | "." | ".." => "upload".into(),
        n => n.to_string(),
    }
}

/// The name the upload is stored under: `upload` and the original extension (ASCII letters
/// and digits only), which the crate's messages mention.
fn stored_name(name: &str) -> String {
    let ext = Path::new(name)
        .extension()
        .map(|e| e.to_string_lossy().into_owned())
        .filter(|e| !e.is_empty() && e.len() <= 10 && e.chars().all(|c| c.is_ascii_alphanumeric()));
    match ext {
        Some(e) => format!("upload.{e}"),
        None => "upload".into(),
    }
}

/// The status for content the crate could not read: 415 when it is in no image format the
/// `image` crate (as built for dppd) decodes, 400 when it is one but broken.
fn unreadable_status(bytes: &[u8]) -> StatusCode {
    match image::guess_format(bytes) {
        _ if bytes.is_empty() => StatusCode::BAD_REQUEST,
        Ok(format) if format.reading_enabled() => StatusCode::BAD_REQUEST,
        _ => StatusCode::UNSUPPORTED_MEDIA_TYPE,
    }
}

/// Stores and decodes an upload, refuses images beyond the pixel limit and writes the
/// decoded input as `input.png` for the page. The decoded image and the stored file's path.
fn prepare(
    server: &Server,
    id: u64,
    name: &str,
    bytes: &[u8],
) -> Result<(Image, PathBuf), Failure> {
    let internal = |e: &dyn std::fmt::Display| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{name}: could not be stored: {e}"),
        )
    };
    let dir = server.job_dir(id);
    std::fs::create_dir(&dir).map_err(|e| internal(&e))?;
    let file = dir.join(stored_name(name));
    std::fs::write(&file, bytes).map_err(|e| internal(&e))?;
    let image = read_image(&file).map_err(|e| {
        // The crate's message, naming the uploaded file instead of its temporary copy.
        let message = e.to_string().replace(&file.display().to_string(), name);
        (unreadable_status(bytes), message)
    })?;
    let pixels = (image.width * image.height) as u64;
    if pixels > server.limits.max_pixels {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{name}: {}×{} pixels ({:.1} megapixels) is more than this server restores ({} megapixels; start it with --max-megapixels N to allow more)",
                image.width,
                image.height,
                pixels as f64 / 1e6,
                server.limits.max_pixels / 1_000_000
            ),
        ));
    }
    write_image(dir.join("input.png"), &image).map_err(|e| internal(&e))?;
    Ok((image, file))
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn info(State(server): State<Arc<Server>>) -> Response {
    axum::Json(server.info.clone()).into_response()
}

async fn create_job(
    State(server): State<Arc<Server>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return error(StatusCode::BAD_REQUEST, "malformed query string");
    };
    let bytes = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "{}: the file is larger than this server accepts ({}; start it with --max-upload MB to allow more)",
                    display_name(query.get("name").map(String::as_str)),
                    megabytes(server.limits.max_upload)
                ),
            );
        }
        Err(e) => return error(e.status(), e.body_text()),
    };
    let name = display_name(query.get("name").map(String::as_str));
    let samples = match query.get("samples").map(|s| s.parse::<usize>()) {
        None => 1,
        Some(Ok(n)) if (1..=server.limits.max_samples).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "samples must be a whole number from 1 to {}",
                    server.limits.max_samples
                ),
            );
        }
    };
    let ensemble = match query.get("ensemble").map(|s| s.parse::<usize>()) {
        None => 1,
        Some(Ok(n)) if ENSEMBLE_VIEWS.contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "ensemble must be 1, 2, 4 or 8 views of the photo (mirrored, flipped, turned)",
            );
        }
    };
    let id = match server.admit() {
        Ok(id) => id,
        Err((status, message)) => return error(status, message),
    };
    let s = server.clone();
    let job_name = name.clone();
    let prepared = tokio::task::spawn_blocking(move || prepare(&s, id, &job_name, &bytes)).await;
    match prepared {
        Ok(Ok((image, upload))) => {
            let job = Job {
                name,
                width: image.width,
                height: image.height,
                samples,
                ensemble,
                upload,
                state: JobState::Queued,
            };
            (StatusCode::ACCEPTED, axum::Json(server.enqueue(id, job))).into_response()
        }
        Ok(Err((status, message))) => {
            server.reject(id);
            error(status, message)
        }
        Err(e) => {
            server.reject(id);
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{name}: decoding failed: {e}"),
            )
        }
    }
}

fn no_such_job(id: u64) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!(
            "no job {id} (finished jobs are forgotten after a while, and when the server restarts)"
        ),
    )
}

async fn job_status(State(server): State<Arc<Server>>, UrlPath(id): UrlPath<u64>) -> Response {
    match status_json(&server.jobs(), id) {
        Some(v) => axum::Json(v).into_response(),
        None => no_such_job(id),
    }
}

async fn job_file(
    State(server): State<Arc<Server>>,
    UrlPath((id, file)): UrlPath<(u64, String)>,
) -> Response {
    if !["input.png", "restored.png", "uncertainty.png"].contains(&file.as_str()) {
        return error(StatusCode::NOT_FOUND, format!("no file {file}"));
    }
    if !server.jobs().map.contains_key(&id) {
        return no_such_job(id);
    }
    let path = server.job_dir(id).join(&file);
    match tokio::task::spawn_blocking(move || std::fs::read(path)).await {
        Ok(Ok(bytes)) => (
            [
                (header::CONTENT_TYPE, "image/png"),
                // Ids restart with the server: never let a browser reuse an old answer.
                (header::CACHE_CONTROL, "no-store"),
            ],
            Body::from(bytes),
        )
            .into_response(),
        _ => error(
            StatusCode::NOT_FOUND,
            format!("job {id} has no {file} (not restored yet, or no uncertainty map asked for)"),
        ),
    }
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such page")
}

/// The HTTP routes over `server`.
pub fn router(server: Arc<Server>) -> Router {
    let limit = server.limits.max_upload;
    Router::new()
        .route("/", get(page))
        .route("/api/info", get(info))
        .route("/api/jobs", axum::routing::post(create_job))
        .route("/api/jobs/{id}", get(job_status))
        .route("/api/jobs/{id}/{file}", get(job_file))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(server)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;
    use std::time::Duration;
    use tower::ServiceExt;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn server(limits: Limits) -> (Arc<Server>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(Server::new(dir.path().to_path_buf(), limits, json!({})));
        (s, dir)
    }

    /// Sends one request; the status and the body.
    fn call(
        rt: &tokio::runtime::Runtime,
        app: &Router,
        method: &str,
        uri: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Vec<u8>) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body))
            .unwrap();
        rt.block_on(async {
            let res = app.clone().oneshot(req).await.unwrap();
            let status = res.status();
            let body = axum::body::to_bytes(res.into_body(), usize::MAX)
                .await
                .unwrap();
            (status, body.to_vec())
        })
    }

    fn json_of(body: &[u8]) -> Value {
        serde_json::from_slice(body).unwrap_or_else(|_| {
            panic!("not JSON: {}", String::from_utf8_lossy(body));
        })
    }

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x * 5) as u8, (y * 7) as u8, ((x + y) * 3) as u8])
        });
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn serves_the_page_and_404s_as_json() {
        let (s, _dir) = server(Limits::default());
        let (rt, app) = (runtime(), router(s));
        let (status, body) = call(&rt, &app, "GET", "/", vec![]);
        assert_eq!(status, StatusCode::OK);
        let html = String::from_utf8(body).unwrap();
        assert!(
            html.contains("<canvas") && !html.contains("http://") && !html.contains("https://")
        );
        let (status, body) = call(&rt, &app, "GET", "/nothing", vec![]);
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(json_of(&body)["error"].is_string());
        let (status, _) = call(&rt, &app, "GET", "/api/jobs/7", vec![]);
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = call(&rt, &app, "GET", "/api/jobs/7/restored.png", vec![]);
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = call(&rt, &app, "GET", "/api/jobs/7/secret.txt", vec![]);
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn bad_uploads_get_the_crates_messages_and_4xx() {
        let (s, dir) = server(Limits {
            max_upload: 8000,
            max_pixels: 1000,
            ..Limits::default()
        });
        let (rt, app) = (runtime(), router(s.clone()));
        let good = png(40, 24);
        let post = |uri: &str, body: Vec<u8>| {
            let (status, body) = call(&rt, &app, "POST", uri, body);
            (
                status,
                json_of(&body)["error"].as_str().unwrap().to_string(),
            )
        };

        let (status, msg) = post("/api/jobs?name=cat.png", good[..good.len() / 2].to_vec());
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(msg.starts_with("cat.png: truncated PNG"), "{msg}");
        let (status, msg) = post("/api/jobs?name=notes.png", b"just some text".to_vec());
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(msg.starts_with("notes.png: "), "{msg}");
        let (status, msg) = post("/api/jobs?name=dir%2Fempty.jpg", vec![]);
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(msg.starts_with("empty.jpg: empty file"), "{msg}");
        let (status, msg) = post("/api/jobs?name=big.png", vec![0; 9000]);
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(msg.contains("--max-upload"), "{msg}");
        let (status, msg) = post("/api/jobs?name=wide.png", png(50, 30));
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(msg.starts_with("wide.png: 50×30 pixels"), "{msg}");
        for samples in ["0", "9", "x"] {
            let (status, msg) = post(
                &format!("/api/jobs?name=a.png&samples={samples}"),
                good.clone(),
            );
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert!(msg.contains("samples"), "{msg}");
        }
        for ensemble in ["0", "3", "16", "all"] {
            let (status, msg) = post(
                &format!("/api/jobs?name=a.png&ensemble={ensemble}"),
                good.clone(),
            );
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert!(msg.starts_with("ensemble must be 1, 2, 4 or 8"), "{msg}");
        }
        // Nothing was queued and every refused upload's files are gone.
        let jobs = s.jobs();
        assert_eq!((jobs.active, jobs.map.len()), (0, 0));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn queue_places_busy_answer_and_forgetting_old_jobs() {
        let (s, dir) = server(Limits {
            queue: 3,
            keep: 1,
            ..Limits::default()
        });
        let (rt, app) = (runtime(), router(s.clone()));
        let ids: Vec<u64> = (0..3)
            .map(|i| {
                let (status, body) = call(
                    &rt,
                    &app,
                    "POST",
                    &format!("/api/jobs?name={i}.png"),
                    png(16, 16),
                );
                assert_eq!(status, StatusCode::ACCEPTED);
                let v = json_of(&body);
                assert_eq!(
                    (v["state"].as_str(), v["ahead"].as_u64()),
                    (Some("queued"), Some(i))
                );
                v["id"].as_u64().unwrap()
            })
            .collect();
        let (status, body) = call(&rt, &app, "POST", "/api/jobs?name=3.png", png(16, 16));
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(json_of(&body)["error"].as_str().unwrap().contains("busy"));

        let status =
            |id: u64| json_of(&call(&rt, &app, "GET", &format!("/api/jobs/{id}"), vec![]).1);
        // The worker takes the first: it runs, the others move up but still wait behind it.
        let (first, upload, samples, ensemble) = s.next_job().unwrap();
        assert_eq!((first, samples, ensemble), (ids[0], 1, 1));
        assert_eq!(read_image(&upload).unwrap().width, 16);
        assert_eq!(status(ids[0])["state"], "running");
        assert_eq!(status(ids[1])["ahead"], 1);
        assert_eq!(status(ids[2])["ahead"], 2);
        s.finish(first, JobState::Failed("x".into()));
        assert_eq!(status(ids[0])["error"], "x");
        assert_eq!(status(ids[1])["ahead"], 0);
        let (second, ..) = s.next_job().unwrap();
        s.finish(second, JobState::Failed("y".into()));
        // keep = 1: the first finished job and its files are forgotten.
        assert!(!s.jobs().map.contains_key(&ids[0]));
        assert!(!dir.path().join(format!("job-{}", ids[0])).exists());
        assert!(
            dir.path()
                .join(format!("job-{}/input.png", ids[1]))
                .exists()
        );
        s.close();
        assert!(s.next_job().is_none());
    }

    #[test]
    fn restores_an_upload_with_its_uncertainty() {
        let device = Device::flex();
        let model = Restorer::pretrained(&device).unwrap();
        let (s, _dir) = server(Limits::default());
        let worker = spawn_worker(s.clone(), model, device, 2 << 30);
        let (rt, app) = (runtime(), router(s.clone()));
        let (status, body) = call(
            &rt,
            &app,
            "POST",
            "/api/jobs?name=small.png&samples=2&ensemble=2",
            png(40, 24),
        );
        assert_eq!(
            status,
            StatusCode::ACCEPTED,
            "{}",
            String::from_utf8_lossy(&body)
        );
        let id = json_of(&body)["id"].as_u64().unwrap();
        let started = Instant::now();
        let v = loop {
            let v = json_of(&call(&rt, &app, "GET", &format!("/api/jobs/{id}"), vec![]).1);
            if v["state"] == "done" || v["state"] == "failed" {
                break v;
            }
            assert!(started.elapsed() < Duration::from_secs(300), "{v}");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(v["state"], "done", "{v}");
        assert_eq!(v["download"], "small-restored.png");
        assert_eq!(
            (v["samples"].as_u64(), v["ensemble"].as_u64()),
            (Some(2), Some(2))
        );
        let d = &v["degradation"];
        let p = d["probability"].as_f64().unwrap();
        assert!(d["name"].is_string() && (0.0..=1.0).contains(&p), "{v}");
        assert!(v["uncertainty_max"].as_f64().unwrap() >= 0.0);
        for file in ["input.png", "restored.png", "uncertainty.png"] {
            let (status, bytes) = call(&rt, &app, "GET", &format!("/api/jobs/{id}/{file}"), vec![]);
            assert_eq!(status, StatusCode::OK, "{file}");
            let img = image::load_from_memory(&bytes).unwrap();
            assert_eq!((img.width(), img.height()), (40, 24), "{file}");
        }
        s.close();
        worker.join().unwrap();
    }
}
