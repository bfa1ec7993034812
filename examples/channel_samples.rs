//! Prints one sample of every notice on every channel as Markdown, or with `--write` puts it into
//! `docs/channels.md` between the `samples` markers (the page's "What parents receive" section).
//!
//! `cargo run --example channel_samples -j 1 [-- --write]`

use std::process::ExitCode;

use cantina_notify::channels::samples;

const PAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/channels.md");
const START: &str = "<!-- samples:start -->\n";
const END: &str = "<!-- samples:end -->";

fn main() -> ExitCode {
    let md = match samples::markdown() {
        Ok(md) => md,
        Err(e) => {
            eprintln!("a sample does not render: {e}");
            return ExitCode::FAILURE;
        }
    };
    if std::env::args().nth(1).as_deref() != Some("--write") {
        print!("{md}");
        return ExitCode::SUCCESS;
    }
    let page = match std::fs::read_to_string(PAGE) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{PAGE}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (Some(a), Some(b)) = (page.find(START), page.find(END)) else {
        eprintln!("{PAGE}: no {START:?} … {END:?} markers");
        return ExitCode::FAILURE;
    };
    let updated = format!("{}{START}\n{md}{}", &page[..a], &page[b..]);
    if let Err(e) = std::fs::write(PAGE, updated) {
        eprintln!("{PAGE}: {e}");
        return ExitCode::FAILURE;
    }
    println!("{PAGE}: samples written");
    ExitCode::SUCCESS
}
