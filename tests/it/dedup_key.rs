//! The dedup key's SQL spellings (`requests::key`) evaluated by PostgreSQL and compared with the Rust ones.

use cantina_notify::domain::{ChannelKind, NotificationType};
use cantina_notify::requests::key::{DedupKey, NEXT_KEY_SQL};

use crate::helpers::TestDb;

/// `canales_respaldo` as the fallback writes it: the channels' names joined by `,`.
fn chain(channels: &[ChannelKind]) -> String {
    channels.iter().map(ChannelKind::to_string).collect::<Vec<_>>().join(",")
}

#[tokio::test]
async fn the_sql_next_link_key_is_the_rust_one_for_every_channel_pair_and_manual_keys() {
    let db = TestDb::empty().await;
    let c = db.client().await;
    let sql = format!("SELECT {NEXT_KEY_SQL} FROM (VALUES ($1::text, $2::text)) AS s(clave_dedup, canales_respaldo)");
    let next_in_sql = |key: DedupKey, chain: String| {
        let (c, sql) = (&c, &sql);
        async move {
            let got: Option<String> =
                c.query_one(sql.as_str(), &[&key.as_str(), &chain]).await.expect("next key").get(0);
            got
        }
    };
    let mut compared = 0;
    // The family's daily message keys too: more parts, still `<prefix>:<channel>`.
    let prefixes = [
        "recarga_exitosa:12",
        "saldo_bajo:T0001:2026-11-24",
        "saldo_bajo:cliente:7:2026-11-24",
        "recordatorio_deuda:7:345:15",
        "saldo_bajo:recordatorio:T0001:2026-12-02",
        "tarjeta_por_vencer:T0001:2026-12-20",
        "tarjeta_vencida:T0001:2026-12-20",
    ];
    for prefix in prefixes {
        for from in ChannelKind::ALL {
            for next in ChannelKind::ALL {
                let key = DedupKey::for_channel(prefix, from);
                let rest: Vec<ChannelKind> = ChannelKind::ALL.into_iter().filter(|&c| c != next).collect();
                let expected = key.next_link(next);
                assert_eq!(expected.as_str(), format!("{prefix}:{next}"));
                // The next channel first, then the others; also with the spaces a hand-edited list may have.
                let mut chains = vec![chain(&[next]), format!("{},{}", next, chain(&rest))];
                chains.push(format!(" {next} , {}", chain(&rest)));
                for ch in chains {
                    let got = next_in_sql(key.clone(), ch.clone()).await;
                    assert_eq!(got.as_deref(), Some(expected.as_str()), "{key} with chain '{ch}'");
                    compared += 1;
                }
            }
        }
    }
    // A POS row the service took has no channel part: SQL and Rust both replace its id.
    for next in ChannelKind::ALL {
        let key = DedupKey::manual(42);
        let got = next_in_sql(key.clone(), chain(&[next])).await;
        assert_eq!(got.as_deref(), Some(key.next_link(next).as_str()));
        assert_eq!(got, Some(format!("manual:{next}")));
        compared += 1;
    }
    assert_eq!(compared, prefixes.len() * 16 * 3 + 4);
}

#[tokio::test]
async fn the_sweep_day_pattern_matches_the_day_s_keys_only() {
    let db = TestDb::empty().await;
    let c = db.client().await;
    let pattern = DedupKey::day_pattern(NotificationType::SaldoBajo, "2026-11-24");
    for channel in ChannelKind::ALL {
        for (prefix, matches) in [
            ("saldo_bajo:T0001:2026-11-24", true),
            ("saldo_bajo:cliente:7:2026-11-24", true),
            ("saldo_bajo:T0001:2026-11-23", false),
            // `_` is escaped: it matches itself only.
            ("saldoXbajo:T0001:2026-11-24", false),
            ("recarga_exitosa:T0001:2026-11-24", false),
        ] {
            let key = DedupKey::for_channel(prefix, channel);
            let got: bool =
                c.query_one("SELECT $1::text LIKE $2::text", &[&key.as_str(), &pattern]).await.expect("like").get(0);
            assert_eq!(got, matches, "{key} LIKE {pattern}");
        }
    }
}
