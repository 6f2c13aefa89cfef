//! `hb health`: one GET of a health endpoint, for a container's `HEALTHCHECK` or a systemd
//! watchdog script, so the image needs no curl.

use std::process::ExitCode;
use std::time::Duration;

/// The default probe: the liveness endpoint of a server on the image's listen address.
pub const DEFAULT_HEALTH_URL: &str = "http://127.0.0.1:8080/healthz";

/// GETs `url` once (at most `timeout`); exit 0 on a 2xx answer, 1 on any other status, 2 when
/// nothing answers. Prints the status, or why there is none.
pub fn health(url: &str, timeout: Duration) -> ExitCode {
    let client = match reqwest::blocking::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            eprintln!("hb: the HTTP client: {error}");
            return ExitCode::from(2);
        }
    };
    match client.get(url).send() {
        Ok(answer) if answer.status().is_success() => {
            println!("{url}: {}", answer.status());
            ExitCode::SUCCESS
        }
        Ok(answer) => {
            eprintln!("hb: {url}: {}", answer.status());
            ExitCode::from(1)
        }
        Err(error) => {
            eprintln!("hb: {url}: {}", crate::errors::ErrorChain(&error));
            ExitCode::from(2)
        }
    }
}
