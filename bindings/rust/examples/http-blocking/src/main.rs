// The original use case: a multi-thread tokio runtime with 2 workers serving
// /fast and /slow over hyper, where /slow blocks its worker in
// std::thread::sleep for 5 s. Watched by stallwatch through the table this
// crate writes: `stallwatch run -- target/debug/http-blocking [PORT]`.
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::service::{make_service_fn, service_fn};
use hyper::{Body, Request, Response, Server};
use stallwatch::tokio_runtime::BuilderExt;

async fn handle(req: Request<Body>) -> Result<Response<Body>, Infallible> {
    match req.uri().path() {
        "/slow" => {
            // A blocking call inside an async handler: the bug this catches.
            std::thread::sleep(Duration::from_secs(5));
            Ok(Response::new(Body::from("slow\n")))
        }
        _ => Ok(Response::new(Body::from("fast\n"))),
    }
}

#[derive(Clone, Copy)]
struct Instrumented;

impl<F> hyper::rt::Executor<F> for Instrumented
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        stallwatch::tokio_runtime::spawn(fut);
    }
}

fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(3000);
    if let Err(e) = stallwatch::init("http-blocking", 0) {
        eprintln!("http-blocking: no stallwatch table: {e}");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .stallwatch("tokio-worker")
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let make = make_service_fn(|_| async { Ok::<_, Infallible>(service_fn(handle)) });
        let server = Server::bind(&addr).executor(Instrumented).serve(make);
        println!("listening on {}", server.local_addr());
        if let Err(e) = server.await {
            eprintln!("http-blocking: {e}");
        }
    });
}
