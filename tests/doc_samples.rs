//! The channels page shows what each template renders today: the text between its `samples` markers is exactly
//! what `cargo run --example channel_samples` prints. A template changed without re-running it fails here.

const PAGE: &str = include_str!("../docs/channels.md");

#[test]
fn the_channels_page_shows_the_samples_the_templates_render() {
    let start = PAGE.find("<!-- samples:start -->\n").expect("docs/channels.md has a samples:start marker");
    let end = PAGE.find("<!-- samples:end -->").expect("docs/channels.md has a samples:end marker");
    let shown = PAGE[start..end].trim_start_matches("<!-- samples:start -->\n").trim_start_matches('\n');
    let rendered = cantina_notify::channels::samples::markdown().expect("every sample renders");
    assert!(
        shown == rendered,
        "docs/channels.md's samples are not what the templates render: run `cargo run --example channel_samples -- --write`"
    );
}
