//! Where preferences live (issue 18): the explicit choices (`cantina_notify_preferencias_cliente`) first, then the
//! portal's `preferencia_notificacion`, then the configured defaults; opt-in types only with an explicit row on.
//! Read through the drain's query by card and the sweeps' query by client, and set with `cantina-notify preferences`.

use std::process::{Command, Output};

use cantina_notify::cantina::preferences;
use cantina_notify::config::PreferenceDefaults;
use cantina_notify::domain::{ChannelKind, NotificationType};
use cantina_notify::rules::TurnedOff;
use deadpool_postgres::Pool;
use tokio_postgres::Client;

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_cantina-notify");

const ON: PreferenceDefaults = PreferenceDefaults { email: true, sms: true, whatsapp: true, portal: true };

async fn setup() -> (TestDb, Client, Pool) {
    let db = TestDb::new().await;
    let c = db.client().await;
    let pool = cantina_notify::db::pool(&db.url, 2, std::time::Duration::from_secs(5)).unwrap();
    (db, c, pool)
}

/// A portal account of the client with `email_activo` set for `tipo`.
async fn portal_email(c: &Client, id_cliente: i32, tipo: &str, email_activo: bool) {
    c.execute(
        "WITH u AS (INSERT INTO usuario_portal (id_cliente, email) VALUES ($1, 'p' || $1::int4 || '@example.com')
                    RETURNING id_usuario_portal)
         INSERT INTO preferencia_notificacion (id_usuario_portal, tipo_notificacion, email_activo)
         SELECT id_usuario_portal, $2, $3 FROM u",
        &[&id_cliente, &tipo, &email_activo],
    )
    .await
    .unwrap();
}

/// An explicit row, as the tests of the issue set them (directly).
async fn explicit(c: &Client, id_cliente: i32, tipo: &str, canal: &str, activo: bool) {
    c.execute(
        "INSERT INTO cantina_notify_preferencias_cliente (id_cliente, tipo, canal, activo, cambiado_en, cambiado_por)
         VALUES ($1, $2, $3, $4, '2026-12-08 15:00:00-03', 'secretaría')",
        &[&id_cliente, &tipo, &canal, &activo],
    )
    .await
    .unwrap();
}

/// What the sweeps read (by client) and what the drain reads (by the card, beside the cards): both must agree.
async fn both(pool: &Pool, fam: &Family, defaults: &PreferenceDefaults) -> TurnedOff {
    let conn = pool.get().await.unwrap();
    let by_client = preferences::turned_off(&conn, &[fam.id_cliente], defaults).await.unwrap();
    let rows = preferences::by_card(&conn, std::slice::from_ref(&fam.nro_tarjeta), defaults).await.unwrap();
    let mut by_card = TurnedOff::new();
    preferences::fold_preferences(&rows, &[fam.id_cliente], defaults, &mut by_card);
    assert_eq!(by_client, by_card, "the drain's query and the sweeps' agree");
    by_client
}

const EMAIL: ChannelKind = ChannelKind::Email;

#[tokio::test]
async fn an_explicit_off_beats_a_portal_on_and_says_who_and_when() {
    let (_db, c, pool) = setup().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 50_000).await;
    portal_email(&c, fam.id_cliente, "recarga_exitosa", true).await;
    assert_eq!(both(&pool, &fam, &ON).await.reason(fam.id_cliente, NotificationType::RecargaExitosa, EMAIL), None);

    explicit(&c, fam.id_cliente, "recarga_exitosa", "Email", false).await;
    let off = both(&pool, &fam, &ON).await;
    assert_eq!(
        off.reason(fam.id_cliente, NotificationType::RecargaExitosa, EMAIL).as_deref(),
        Some(&*format!(
            "el cliente {} desactivó los avisos recarga_exitosa por Email (cambiado por secretaría el 08/12/2026)",
            fam.id_cliente
        ))
    );
    // Only that type and channel.
    assert_eq!(off.reason(fam.id_cliente, NotificationType::SaldoBajo, EMAIL), None);
    assert_eq!(off.reason(fam.id_cliente, NotificationType::RecargaExitosa, ChannelKind::Sms), None);
}

#[tokio::test]
async fn an_explicit_on_beats_a_default_off_and_a_portal_off() {
    let (_db, c, pool) = setup().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 50_000).await;
    let email_off = PreferenceDefaults { email: false, ..ON };
    // No portal account: the default decides.
    let off = both(&pool, &fam, &email_off).await;
    assert!(off.reason(fam.id_cliente, NotificationType::SaldoBajo, EMAIL).is_some());
    explicit(&c, fam.id_cliente, "saldo_bajo", "Email", true).await;
    assert_eq!(both(&pool, &fam, &email_off).await.reason(fam.id_cliente, NotificationType::SaldoBajo, EMAIL), None);
    // A portal off for the same type: the explicit on still wins.
    portal_email(&c, fam.id_cliente, "saldo_bajo", false).await;
    assert_eq!(both(&pool, &fam, &email_off).await.reason(fam.id_cliente, NotificationType::SaldoBajo, EMAIL), None);
}

#[tokio::test]
async fn without_an_explicit_row_the_portal_then_the_default_decides() {
    let (_db, c, pool) = setup().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 50_000).await;
    let id = fam.id_cliente;
    // Nothing anywhere: defaults (on, then off).
    assert_eq!(both(&pool, &fam, &ON).await.reason(id, NotificationType::SaldoBajo, EMAIL), None);
    let email_off = PreferenceDefaults { email: false, ..ON };
    assert_eq!(
        both(&pool, &fam, &email_off).await.reason(id, NotificationType::SaldoBajo, EMAIL).as_deref(),
        Some(&*format!(
            "el cliente {id} no activó los avisos saldo_bajo por Email (desactivados salvo que el cliente los active en el portal)"
        ))
    );
    // A portal row off: the portal's reason.
    portal_email(&c, id, "saldo_bajo", false).await;
    assert_eq!(
        both(&pool, &fam, &ON).await.reason(id, NotificationType::SaldoBajo, EMAIL).as_deref(),
        Some(&*format!("el cliente {id} desactivó los avisos saldo_bajo por Email en el portal"))
    );
    // An explicit row of another type or channel changes nothing here.
    explicit(&c, id, "saldo_bajo", "SMS", true).await;
    explicit(&c, id, "recarga_exitosa", "Email", true).await;
    assert!(both(&pool, &fam, &ON).await.reason(id, NotificationType::SaldoBajo, EMAIL).is_some());
}

#[tokio::test]
async fn an_opt_in_type_is_on_only_with_an_explicit_row_saying_so() {
    let (_db, c, pool) = setup().await;
    let fam = seed_family(&c, Some("ana@example.com"), None, 50_000).await;
    let id = fam.id_cliente;
    let opt_in_off =
        format!("el cliente {id} no activó los avisos consumo_realizado por Email (se envían solo a quien los activa)");
    // No row anywhere, every default on: off.
    let off = both(&pool, &fam, &ON).await;
    for t in [NotificationType::ConsumoRealizado, NotificationType::ResumenConsumos] {
        for ch in ChannelKind::ALL {
            assert!(off.reason(id, t, ch).is_some(), "{t} {ch}");
        }
    }
    assert_eq!(off.reason(id, NotificationType::ConsumoRealizado, EMAIL), Some(opt_in_off.clone()));
    // A portal row saying true does not switch it on.
    portal_email(&c, id, "consumo_realizado", true).await;
    assert_eq!(both(&pool, &fam, &ON).await.reason(id, NotificationType::ConsumoRealizado, EMAIL), Some(opt_in_off));
    // An explicit row on does, for that channel only.
    explicit(&c, id, "consumo_realizado", "Email", true).await;
    let on = both(&pool, &fam, &ON).await;
    assert_eq!(on.reason(id, NotificationType::ConsumoRealizado, EMAIL), None);
    assert!(on.reason(id, NotificationType::ConsumoRealizado, ChannelKind::Sms).is_some());
    assert!(on.reason(id, NotificationType::ResumenConsumos, EMAIL).is_some());
    // An explicit off is recorded as the client's choice.
    explicit(&c, id, "resumen_consumos", "Email", false).await;
    let reason = both(&pool, &fam, &ON).await.reason(id, NotificationType::ResumenConsumos, EMAIL).unwrap();
    assert!(reason.ends_with("(cambiado por secretaría el 08/12/2026)"), "{reason}");
}

/// Runs `cantina-notify preferences …` against `db` as OS user `ops-tester`.
async fn cli(db: &TestDb, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("preferences")
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("USER", "ops-tester")
        .env_remove("SUDO_USER")
        .env("RUST_LOG", "warn")
        .current_dir(std::env::temp_dir());
    tokio::task::spawn_blocking(move || cmd.output()).await.expect("join").expect("run cantina-notify")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The `list` line of a type and channel, its columns split.
fn line(list: &str, tipo: &str, canal: &str) -> Vec<String> {
    let l = list
        .lines()
        .find(|l| l.split_whitespace().take(2).eq([tipo, canal]))
        .unwrap_or_else(|| panic!("no line {tipo} {canal} in\n{list}"));
    let cols: Vec<&str> = l.split_whitespace().collect();
    vec![cols[2].to_string(), cols[3..].join(" ")]
}

#[tokio::test]
async fn the_cli_sets_lists_and_unsets_explicit_choices() {
    let (db, c, _pool) = setup().await;
    let fam = seed_family(&c, Some("ana.benitez@example.com"), Some("0981 123456"), 50_000).await;
    let id = fam.id_cliente.to_string();
    portal_email(&c, fam.id_cliente, "saldo_bajo", false).await;

    let list = cli(&db, &["list", "--cliente", &id]).await;
    assert!(list.status.success(), "{}", err(&list));
    let text = out(&list);
    assert!(text.starts_with(&format!("Cliente {id}: Ana Benítez (correo ")), "{text}");
    assert!(!text.contains("ana.benitez@") && !text.contains("123456"), "addresses masked: {text}");
    // Every type × channel.
    assert_eq!(text.lines().count(), 2 + NotificationType::ALL.len() * 4, "{text}");
    assert_eq!(line(&text, "saldo_bajo", "Email"), ["no", "portal"]);
    assert_eq!(line(&text, "saldo_bajo", "SMS"), ["sí", "predeterminado"]);
    assert_eq!(line(&text, "consumo_realizado", "Email"), ["no", "opt-in: apagado sin elección explícita"]);

    let set = cli(&db, &["set", "--cliente", &id, "--tipo", "consumo_realizado", "--canal", "email", "on"]).await;
    assert!(set.status.success(), "{}", err(&set));
    assert!(out(&set).contains("consumo_realizado por Email: activado (antes: no, opt-in"), "{}", out(&set));
    let row = c
        .query_one(
            "SELECT activo, cambiado_por FROM cantina_notify_preferencias_cliente
             WHERE id_cliente = $1 AND tipo = 'consumo_realizado' AND canal = 'Email'",
            &[&fam.id_cliente],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, bool>(0), row.get::<_, String>(1)), (true, "ops-tester".to_string()));
    let set =
        cli(&db, &["set", "--cliente", &id, "--tipo", "saldo_bajo", "--canal", "Email", "on", "--por", "Marta"]).await;
    assert!(set.status.success(), "{}", err(&set));

    let text = out(&cli(&db, &["list", "--cliente", &id]).await);
    let [valor, origen] = <[String; 2]>::try_from(line(&text, "consumo_realizado", "Email")).unwrap();
    assert_eq!(valor, "sí");
    assert!(origen.starts_with("explícito (ops-tester, "), "{origen}");
    let [valor, origen] = <[String; 2]>::try_from(line(&text, "saldo_bajo", "Email")).unwrap();
    assert_eq!(valor, "sí", "the explicit on beats the portal off");
    assert!(origen.starts_with("explícito (Marta, "), "{origen}");

    let unset = cli(&db, &["unset", "--cliente", &id, "--tipo", "saldo_bajo", "--canal", "email"]).await;
    assert!(unset.status.success(), "{}", err(&unset));
    assert!(
        out(&unset).contains("saldo_bajo por Email: elección explícita borrada; ahora: no (portal)"),
        "{}",
        out(&unset)
    );
    let text = out(&cli(&db, &["list", "--cliente", &id]).await);
    assert_eq!(line(&text, "saldo_bajo", "Email"), ["no", "portal"]);
    assert_eq!(line(&text, "consumo_realizado", "Email")[0], "sí");

    // Clear errors, exit 1, nothing written.
    for (args, expected) in [
        (
            vec!["set", "--cliente", &id, "--tipo", "consumos", "--canal", "email", "on"],
            "tipo de aviso desconocido 'consumos' (se espera saldo_bajo,",
        ),
        (
            vec!["set", "--cliente", &id, "--tipo", "saldo_bajo", "--canal", "telegram", "on"],
            "canal desconocido 'telegram' (se espera email, sms, whatsapp o portal)",
        ),
        (
            vec!["set", "--cliente", &id, "--tipo", "saldo_bajo", "--canal", "sms", "tal vez"],
            "valor 'tal vez' no válido",
        ),
        (
            vec!["set", "--cliente", "999999", "--tipo", "saldo_bajo", "--canal", "sms", "off"],
            "el cliente 999999 no existe",
        ),
        (
            vec!["set", "--cliente", &id, "--tipo", "mensaje_cantina", "--canal", "sms", "off"],
            "mensaje_cantina es el texto que escribe la caja y se envía siempre",
        ),
    ] {
        let o = cli(&db, &args).await;
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(err(&o).contains(expected), "{args:?}: {}", err(&o));
    }
    assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_preferencias_cliente").await, 1);
}

/// `--por` is one printable line of at most 100 characters: a newline or an ANSI escape would break `list`'s
/// table or drive the staff's terminal.
#[tokio::test]
async fn the_cli_refuses_control_characters_and_a_long_por() {
    let (db, c, _pool) = setup().await;
    let fam = seed_family(&c, Some("ana.benitez@example.com"), None, 50_000).await;
    let id = fam.id_cliente.to_string();
    let long = "a".repeat(5_000);
    for (por, expected) in [
        ("Marta\nsaldo_bajo  Email  sí  falso", "--por no puede contener caracteres de control"),
        ("\u{1b}[31mMarta\u{1b}[0m", "--por no puede contener caracteres de control"),
        ("Marta\u{202E}atraM", "--por no puede contener caracteres de control"),
        (long.as_str(), "--por admite hasta 100 caracteres (tiene 5000)"),
    ] {
        let o =
            cli(&db, &["set", "--cliente", &id, "--tipo", "saldo_bajo", "--canal", "email", "on", "--por", por]).await;
        assert_eq!(o.status.code(), Some(1), "{por:?}");
        assert!(err(&o).contains(expected), "{por:?}: {}", err(&o));
    }
    assert_eq!(count(&c, "SELECT count(*) FROM cantina_notify_preferencias_cliente").await, 0);
}

/// Type and channel names in any case; `--por` of 100 characters exactly is whole in `list`.
#[tokio::test]
async fn the_cli_takes_names_in_any_case() {
    let (db, c, _pool) = setup().await;
    let fam = seed_family(&c, Some("ana.benitez@example.com"), None, 50_000).await;
    let id = fam.id_cliente.to_string();
    let hundred = "M".repeat(100);
    let o =
        cli(&db, &["set", "--cliente", &id, "--tipo", "SALDO_BAJO", "--canal", "EMAIL", "on", "--por", &hundred]).await;
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("saldo_bajo por Email: activado"), "{}", out(&o));
    let text = out(&cli(&db, &["list", "--cliente", &id]).await);
    let origen = &line(&text, "saldo_bajo", "Email")[1];
    assert!(origen.starts_with(&format!("explícito ({hundred}, ")), "{origen}");
}

/// A row written by other means (SQL, an older version): `list` prints it with its control characters replaced.
#[tokio::test]
async fn the_cli_never_prints_control_characters_from_the_database() {
    let (db, c, _pool) = setup().await;
    let fam = seed_family(&c, Some("ana.benitez@example.com"), None, 50_000).await;
    let id = fam.id_cliente.to_string();
    explicit(&c, fam.id_cliente, "consumo_realizado", "Email", true).await;
    c.execute(
        "UPDATE cantina_notify_preferencias_cliente SET cambiado_por = E'Marta\\nfalso\\u001b[2J\\r'
         WHERE id_cliente = $1 AND tipo = 'consumo_realizado'",
        &[&fam.id_cliente],
    )
    .await
    .unwrap();
    let stored = count(
        &c,
        "SELECT count(*) FROM cantina_notify_preferencias_cliente WHERE cambiado_por LIKE '%' || chr(27) || '%'",
    );
    assert_eq!(stored.await, 1, "the row holds an ESC");
    let text = out(&cli(&db, &["list", "--cliente", &id]).await);
    assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text:?}");
    assert_eq!(text.lines().count(), 2 + NotificationType::ALL.len() * 4, "{text}");
    let origen = &line(&text, "consumo_realizado", "Email")[1];
    assert!(origen.starts_with("explícito (Marta\u{FFFD}falso\u{FFFD}[2J, "), "{origen}");
}
