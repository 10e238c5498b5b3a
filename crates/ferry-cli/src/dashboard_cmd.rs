//! `ferry dashboard`: print a one-time login link to the running daemon's web dashboard.

use anyhow::{bail, Result};
use serde_json::json;

pub fn run(json_out: bool) -> Result<u8> {
    let library = ferry_core::library::library_dir()?;
    let running = crate::api_client::get(&library, "/api/status")?;
    let (Some(status), Some(info), Some(token)) = (
        running,
        ferry_daemon::discovery::read_info(&library),
        ferry_daemon::discovery::read_token(&library)?,
    ) else {
        bail!("no daemon is running for this library: start one with `ferry daemon`, then run `ferry dashboard` again");
    };
    if status["daemon"]["pid"].as_u64() != Some(u64::from(info.pid)) {
        bail!("the daemon changed while asking it; run `ferry dashboard` again");
    }
    let link = ferry_daemon::dashboard::login_link(&token, &info);
    if json_out {
        crate::output::print(json!({
            "url": format!("http://127.0.0.1:{}/", info.port),
            "login_link": link,
            "expires_in_seconds": ferry_daemon::dashboard::auth::LINK_LIFETIME_SECS,
            "schema_version": ferry_core::JSON_SCHEMA_VERSION,
        }))?;
    } else {
        println!("Dashboard: http://127.0.0.1:{}/", info.port);
        println!(
            "Open this link to log in (it works once, for {} minutes):",
            ferry_daemon::dashboard::auth::LINK_LIFETIME_SECS / 60
        );
        println!("{link}");
    }
    Ok(crate::commands::EXIT_OK)
}
