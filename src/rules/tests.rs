//! Unit tests for the rules: pure `decide` calls on hand-built contexts, no database, no I/O.
//!
//! The fixture is one family: client 7 (Ana María Gómez) is responsible for student 21 (Luis Gómez Benítez),
//! who holds card `TAR-0042`. Names carry stray spaces on purpose, as the Cantina tables do: the rules trim them.
//! Unless a test says otherwise, events happen at 2026-11-24T02:00Z, which is 23/11/2026 23:00 in Asunción (UTC-3).

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;

use super::{
    AvisoSaldoBajo, Card, Context, Decision, ManualCompletion, ManualRow, MessageData, NewRequest, Parent, Recharge,
    Recipient, RuleInput, Student, TarjetaSaldoBajo, decide, resolve_recipient,
};
use crate::config::RulesConfig;
use crate::domain::{ChannelKind, EmailAddress, Guaranies, MobilePhone, NotificationType};
use crate::domain::{EventKind, OutboxEvent};

// ---------------------------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------------------------

const CLIENTE: i32 = 7;
const OTRO_CLIENTE: i32 = 99;
const HIJO: i32 = 21;
const TARJETA: &str = "TAR-0042";
const CARGA: i64 = 9001;
const SOLICITUD: i64 = 555;
const EVENTO: i64 = 101;

/// 2026-11-24T02:00Z is still 23 November in Asunción: 23/11/2026 23:00.
const EVENT_AT: &str = "2026-11-24T02:00:00Z";
const EVENT_LOCAL: &str = "23/11/2026 23:00";
const EVENT_LOCAL_DATE: &str = "2026-11-23";

/// The trimmed names the messages must carry.
const PADRE: &str = "Ana María";
const ALUMNO: &str = "Luis Gómez Benítez";

const EMAIL: &str = "ana.gomez@example.com";
const MOBILE: &str = "0981 123456";
const MOBILE_E164: &str = "+595981123456";

use ChannelKind::{Email, Portal, Sms, WhatsApp};

fn ts(rfc3339: &str) -> Timestamp {
    rfc3339.parse().unwrap_or_else(|e| panic!("bad timestamp {rfc3339}: {e}"))
}

fn parent() -> Parent {
    Parent {
        id_cliente: CLIENTE,
        nombres: "  Ana María ".into(),
        apellidos: "Gómez".into(),
        email: Some(EMAIL.into()),
        telefono: Some(MOBILE.into()),
        activo: true,
    }
}

/// A second client, only reachable through `Context::parents` (manual requests naming `id_cliente`).
fn other_parent() -> Parent {
    Parent {
        id_cliente: OTRO_CLIENTE,
        nombres: "Carlos".into(),
        apellidos: "Benítez".into(),
        email: Some("carlos.benitez@example.org".into()),
        telefono: Some("0971 654321".into()),
        activo: true,
    }
}

fn student() -> Student {
    Student { id_hijo: HIJO, nombre: " Luis".into(), apellido: "Gómez Benítez ".into() }
}

/// An `Activa` card below the default threshold (Gs. 3.500 < Gs. 5.000), with low-balance notices on.
fn card() -> Card {
    Card {
        nro_tarjeta: TARJETA.into(),
        saldo_actual: 3_500,
        saldo_alerta: 0,
        estado: "Activa".into(),
        notificar_saldo_bajo: true,
        ultima_notificacion_saldo: None,
        fecha_vencimiento: None,
        student: Some(student()),
        parent: Some(parent()),
    }
}

/// A confirmed Gs. 50.000 recharge at 2026-11-24T01:45Z (23/11/2026 22:45 local).
fn recharge() -> Recharge {
    Recharge {
        id_carga: CARGA,
        nro_tarjeta: TARJETA.into(),
        monto: 50_000,
        estado: "CONFIRMADO".into(),
        fecha: ts("2026-11-24T01:45:00Z"),
        referencia: Some("PAGOPAR-778899".into()),
    }
}

fn manual_row() -> ManualRow {
    ManualRow {
        id_solicitud: SOLICITUD,
        id_cliente: None,
        nro_tarjeta: Some(TARJETA.into()),
        destino: Some("Email".into()),
        estado: "Pendiente".into(),
        clave_dedup: None,
        mensaje: None,
        tipo: None,
    }
}

/// The family, its recharge and its manual request; `parents` holds only the *other* client, so a rule that
/// wrongly reads it instead of the card holder's parent is caught.
fn family() -> Context {
    Context {
        cards: HashMap::from([(TARJETA.to_string(), card())]),
        recharges: HashMap::from([(CARGA, recharge())]),
        manual: HashMap::from([(SOLICITUD, manual_row())]),
        parents: HashMap::from([(OTRO_CLIENTE, other_parent())]),
        turned_off: Default::default(),
    }
}

/// The family with the card changed.
fn family_with_card(change: impl FnOnce(&mut Card)) -> Context {
    let mut ctx = family();
    change(ctx.cards.get_mut(TARJETA).expect("fixture card"));
    ctx
}

fn family_with_recharge(change: impl FnOnce(&mut Recharge)) -> Context {
    let mut ctx = family();
    change(ctx.recharges.get_mut(&CARGA).expect("fixture recharge"));
    ctx
}

fn family_with_manual(change: impl FnOnce(&mut ManualRow)) -> Context {
    let mut ctx = family();
    change(ctx.manual.get_mut(&SOLICITUD).expect("fixture manual row"));
    ctx
}

fn family_with_parent(change: impl FnOnce(&mut Parent)) -> Context {
    family_with_card(|c| change(c.parent.as_mut().expect("fixture parent")))
}

/// A `RulesConfig` builder. Starts from the service defaults: every type by email, Gs. 5.000, only email available.
struct Config(RulesConfig);

impl Config {
    fn new() -> Self {
        Config(RulesConfig {
            channels: NotificationType::ALL.into_iter().map(|t| (t, vec![Email])).collect::<BTreeMap<_, _>>(),
            fallback: Default::default(),
            preference_defaults: Default::default(),
            umbral_saldo_bajo: 5_000,
            saldo_bajo_recordatorio: crate::config::ReminderSchedule::default(),
            dias_aviso_vencimiento: 15,
            available: vec![Email],
            signer: crate::signing::RowSigner::ephemeral(),
            resumen_consumos_schedule: crate::domain::cron::CronSchedule::parse("0 20 * * *").unwrap(),
        })
    }

    fn channels(mut self, tipo: NotificationType, channels: &[ChannelKind]) -> Self {
        self.0.channels.insert(tipo, channels.to_vec());
        self
    }

    fn without(mut self, tipo: NotificationType) -> Self {
        self.0.channels.remove(&tipo);
        self
    }

    fn umbral(mut self, umbral: i64) -> Self {
        self.0.umbral_saldo_bajo = umbral;
        self
    }

    fn available(mut self, channels: &[ChannelKind]) -> Self {
        self.0.available = channels.to_vec();
        self
    }

    fn build(self) -> RulesConfig {
        self.0
    }
}

fn config() -> RulesConfig {
    Config::new().build()
}

fn event(id: i64, kind: EventKind, at: &str) -> OutboxEvent {
    OutboxEvent { id, kind, created_at: ts(at) }
}

fn recarga_event(id_carga: i64) -> OutboxEvent {
    event(EVENTO, EventKind::RecargaConfirmada { id_carga }, EVENT_AT)
}

fn saldo_event_at(saldo_anterior: i64, saldo_nuevo: i64, at: &str) -> OutboxEvent {
    event(EVENTO, EventKind::SaldoBajo { nro_tarjeta: TARJETA.into(), saldo_anterior, saldo_nuevo }, at)
}

/// Gs. 6.000 → Gs. 3.500: crosses the default Gs. 5.000.
fn saldo_event() -> OutboxEvent {
    saldo_event_at(6_000, 3_500, EVENT_AT)
}

fn bloqueo_event(id: i64) -> OutboxEvent {
    event(id, EventKind::TarjetaBloqueada { nro_tarjeta: TARJETA.into() }, EVENT_AT)
}

fn manual_event() -> OutboxEvent {
    event(EVENTO, EventKind::SolicitudManual { id_solicitud: SOLICITUD }, EVENT_AT)
}

fn run(event: &OutboxEvent, ctx: &Context, config: &RulesConfig) -> Decision {
    decide(&RuleInput { event, ctx, config })
}

#[track_caller]
fn created(decision: Decision) -> Vec<NewRequest> {
    match decision {
        Decision::Create(requests) => requests,
        other => panic!("expected Create, got {other:?}"),
    }
}

#[track_caller]
fn ignored(decision: Decision) -> String {
    match decision {
        Decision::Ignore(reason) => reason,
        other => panic!("expected Ignore, got {other:?}"),
    }
}

#[track_caller]
fn manual_sent(decision: Decision) -> NewRequest {
    match decision {
        Decision::CompleteManual { id_solicitud, completion } => match *completion {
            ManualCompletion::Send(request) => {
                assert_eq!(id_solicitud, SOLICITUD);
                request
            }
            other => panic!("expected CompleteManual Send, got {other:?}"),
        },
        other => panic!("expected CompleteManual Send, got {other:?}"),
    }
}

/// `(clave_dedup, channel, reason)` of a failed manual request.
#[track_caller]
fn manual_failed(decision: Decision) -> (String, Option<ChannelKind>, String) {
    match decision {
        Decision::CompleteManual { id_solicitud, completion } => match *completion {
            ManualCompletion::Fail { clave_dedup, channel, reason, .. } => {
                assert_eq!(id_solicitud, SOLICITUD);
                (clave_dedup, channel, reason)
            }
            other => panic!("expected CompleteManual Fail, got {other:?}"),
        },
        other => panic!("expected CompleteManual Fail, got {other:?}"),
    }
}

fn keys(requests: &[NewRequest]) -> Vec<&str> {
    requests.iter().map(|r| r.clave_dedup.as_str()).collect()
}

fn channels(requests: &[NewRequest]) -> Vec<ChannelKind> {
    requests.iter().map(|r| r.channel).collect()
}

fn email(address: &str) -> Recipient {
    Recipient::Email(EmailAddress::parse(Some(address)).expect("valid fixture email"))
}

fn phone(number: &str) -> Recipient {
    Recipient::Phone(MobilePhone::parse(Some(number)).expect("valid fixture phone"))
}

#[track_caller]
fn assert_contains(haystack: &str, needles: &[&str]) {
    for needle in needles {
        assert!(haystack.contains(needle), "expected {needle:?} in {haystack:?}");
    }
}

#[track_caller]
fn assert_lacks(haystack: &str, needles: &[&str]) {
    for needle in needles {
        assert!(!haystack.contains(needle), "{needle:?} must not appear in {haystack:?}");
    }
}

/// The holder chain broken in each possible way, with what the reason must mention.
fn broken_holders() -> Vec<(&'static str, Context, &'static [&'static str])> {
    vec![
        ("card missing", Context { cards: HashMap::new(), ..family() }, &[TARJETA, "no existe"]),
        ("card without student", family_with_card(|c| c.student = None), &[TARJETA, "no tiene alumno"]),
        ("student without parent", family_with_card(|c| c.parent = None), &[TARJETA, "cliente responsable"]),
        ("inactive parent", family_with_parent(|p| p.activo = false), &["cliente 7", "inactivo"]),
    ]
}

// ---------------------------------------------------------------------------------------------------------------
// recarga_exitosa
// ---------------------------------------------------------------------------------------------------------------

mod recarga_exitosa {
    use super::*;

    /// The card after the recharge: Gs. 3.500 + Gs. 50.000.
    fn recharged() -> Context {
        family_with_card(|c| c.saldo_actual = 53_500)
    }

    fn expected_data() -> MessageData {
        MessageData::RecargaExitosa {
            padre: PADRE.into(),
            alumno: ALUMNO.into(),
            nro_tarjeta: TARJETA.into(),
            monto: Guaranies(50_000),
            saldo: Guaranies(53_500),
            fecha: "23/11/2026 22:45".into(),
            referencia: Some("PAGOPAR-778899".into()),
        }
    }

    #[test]
    fn confirmed_recharge_creates_one_email_request_by_default() {
        let requests = created(run(&recarga_event(CARGA), &recharged(), &config()));
        assert_eq!(
            requests,
            vec![NewRequest {
                omitted: None,
                fallback: Vec::new(),
                origin: None,
                tipo: NotificationType::RecargaExitosa,
                channel: Email,
                clave_dedup: "recarga_exitosa:9001:email".into(),
                id_cliente: CLIENTE,
                nro_tarjeta: Some(TARJETA.into()),
                saldo: Some(Guaranies(53_500)),
                recipient: Ok(email(EMAIL)),
                data: expected_data(),
            }]
        );
        assert_eq!(requests[0].recipient.as_ref().map(Recipient::as_str), Ok(EMAIL.to_string()));
    }

    #[test]
    fn one_request_per_configured_channel_each_with_its_own_key() {
        let cfg =
            Config::new().channels(NotificationType::RecargaExitosa, &[Email, Sms]).available(&[Email, Sms]).build();
        let requests = created(run(&recarga_event(CARGA), &recharged(), &cfg));
        assert_eq!(keys(&requests), ["recarga_exitosa:9001:email", "recarga_exitosa:9001:sms"]);
        assert_eq!(channels(&requests), [Email, Sms]);
        assert_eq!(requests[0].recipient, Ok(email(EMAIL)));
        assert_eq!(requests[1].recipient.as_ref().map(Recipient::as_str), Ok(MOBILE_E164.to_string()));
        for r in &requests {
            assert_eq!(r.tipo, NotificationType::RecargaExitosa);
            assert_eq!(r.id_cliente, CLIENTE);
            assert_eq!(r.nro_tarjeta.as_deref(), Some(TARJETA));
            assert_eq!(r.saldo, Some(Guaranies(53_500)));
            assert_eq!(r.data, expected_data());
        }
    }

    #[test]
    fn requests_follow_the_configured_channel_order() {
        let cfg = Config::new()
            .channels(NotificationType::RecargaExitosa, &[WhatsApp, Sms, Email])
            .available(&[Email, Sms, WhatsApp])
            .build();
        let requests = created(run(&recarga_event(CARGA), &recharged(), &cfg));
        assert_eq!(
            keys(&requests),
            ["recarga_exitosa:9001:whatsapp", "recarga_exitosa:9001:sms", "recarga_exitosa:9001:email"]
        );
    }

    #[test]
    fn saldo_is_the_cards_current_balance_not_the_amount() {
        let ctx = family_with_card(|c| c.saldo_actual = 61_250);
        let requests = created(run(&recarga_event(CARGA), &ctx, &config()));
        assert_eq!(requests[0].saldo, Some(Guaranies(61_250)));
        match &requests[0].data {
            MessageData::RecargaExitosa { monto, saldo, .. } => {
                assert_eq!(*monto, Guaranies(50_000));
                assert_eq!(*saldo, Guaranies(61_250));
            }
            other => panic!("wrong data {other:?}"),
        }
    }

    #[test]
    fn is_addressed_to_the_card_holders_parent() {
        // The other client sits in ctx.parents; the recharge must go through tarjetas → hijos → clientes.
        let requests = created(run(&recarga_event(CARGA), &recharged(), &config()));
        assert_eq!(requests[0].id_cliente, CLIENTE);
        assert_eq!(requests[0].recipient, Ok(email(EMAIL)));
    }

    #[test]
    fn date_is_local_asuncion_time_in_dd_mm_yyyy_hh_mm() {
        for (fecha, expected) in [
            // Late evening local time is already the next day in UTC.
            ("2026-11-24T02:30:00Z", "23/11/2026 23:30"),
            // UTC-3 in winter too (no DST since October 2024): 03:30Z is 00:30, not 23:30 of the day before.
            ("2026-07-01T03:30:00Z", "01/07/2026 00:30"),
            ("2026-01-05T12:07:59Z", "05/01/2026 09:07"),
        ] {
            let ctx = family_with_recharge(|r| r.fecha = ts(fecha));
            let requests = created(run(&recarga_event(CARGA), &ctx, &config()));
            match &requests[0].data {
                MessageData::RecargaExitosa { fecha: got, .. } => {
                    assert_eq!(got, expected, "{fecha}")
                }
                other => panic!("wrong data {other:?}"),
            }
        }
    }

    #[test]
    fn blank_or_missing_referencia_is_none() {
        for referencia in [None, Some(""), Some("   "), Some("\t")] {
            let ctx = family_with_recharge(|r| r.referencia = referencia.map(String::from));
            let requests = created(run(&recarga_event(CARGA), &ctx, &config()));
            match &requests[0].data {
                MessageData::RecargaExitosa { referencia: got, .. } => assert_eq!(*got, None, "{referencia:?}"),
                other => panic!("wrong data {other:?}"),
            }
        }
    }

    #[test]
    fn missing_recharge_is_ignored() {
        let reason = ignored(run(&recarga_event(4242), &family(), &config()));
        assert_eq!(reason, "la recarga 4242 no existe");
    }

    #[test]
    fn recharge_no_longer_confirmado_is_ignored() {
        for estado in ["PENDIENTE", "CANCELADO", "ERROR"] {
            let ctx = family_with_recharge(|r| r.estado = estado.into());
            let reason = ignored(run(&recarga_event(CARGA), &ctx, &config()));
            assert_contains(&reason, &["9001", "CONFIRMADO", estado]);
        }
    }

    #[test]
    fn broken_holder_chain_is_ignored_with_a_readable_reason() {
        for (case, ctx, mentions) in broken_holders() {
            let reason = ignored(run(&recarga_event(CARGA), &ctx, &config()));
            assert!(mentions.iter().all(|m| reason.contains(m)), "{case}: {reason:?} should mention {mentions:?}");
        }
    }

    #[test]
    fn missing_card_reason_is_exact() {
        let ctx = Context { cards: HashMap::new(), ..family() };
        assert_eq!(ignored(run(&recarga_event(CARGA), &ctx, &config())), "la tarjeta TAR-0042 no existe");
    }

    #[test]
    fn inactive_parent_reason_is_exact() {
        let ctx = family_with_parent(|p| p.activo = false);
        assert_eq!(ignored(run(&recarga_event(CARGA), &ctx, &config())), "el cliente 7 está inactivo");
    }

    #[test]
    fn a_card_that_is_not_activa_still_gets_its_recharge_notice() {
        for estado in ["Bloqueada", "Vencida"] {
            let ctx = family_with_card(|c| c.estado = estado.into());
            assert_eq!(created(run(&recarga_event(CARGA), &ctx, &config())).len(), 1, "{estado}");
        }
    }

    #[test]
    fn redelivered_event_gives_the_same_keys() {
        let ctx = recharged();
        let first = run(&recarga_event(CARGA), &ctx, &config());
        // Same recharge reported by another outbox row (e.g. re-confirmation): same dedup keys.
        let again =
            run(&event(EVENTO + 50, EventKind::RecargaConfirmada { id_carga: CARGA }, EVENT_AT), &ctx, &config());
        assert_eq!(first, again);
        assert_eq!(keys(&created(first)), ["recarga_exitosa:9001:email"]);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Recipient resolution (through recarga_exitosa, and resolve_recipient directly)
// ---------------------------------------------------------------------------------------------------------------

mod recipient {
    use super::*;

    fn email_and_sms() -> RulesConfig {
        Config::new().channels(NotificationType::RecargaExitosa, &[Email, Sms]).available(&[Email, Sms]).build()
    }

    fn recipients(ctx: &Context, cfg: &RulesConfig) -> Vec<Result<Recipient, String>> {
        created(run(&recarga_event(CARGA), ctx, cfg)).into_iter().map(|r| r.recipient).collect()
    }

    #[test]
    fn parent_without_email_still_gets_a_request_with_an_error_recipient() {
        for missing in [None, Some(""), Some("   ")] {
            let ctx = family_with_parent(|p| p.email = missing.map(String::from));
            let requests = created(run(&recarga_event(CARGA), &ctx, &config()));
            assert_eq!(requests.len(), 1);
            assert_eq!(requests[0].clave_dedup, "recarga_exitosa:9001:email");
            assert_eq!(requests[0].id_cliente, CLIENTE);
            assert_eq!(
                requests[0].recipient,
                Err("cliente 7: sin correo electrónico registrado".into()),
                "{missing:?}"
            );
        }
    }

    #[test]
    fn malformed_email_is_an_error_that_does_not_reveal_the_address() {
        for bad in ["juana.perez@example", "sin correo", "juana.perez@@example.com", "juana perez@example.com"] {
            let ctx = family_with_parent(|p| p.email = Some(bad.into()));
            let [recipient] = recipients(&ctx, &config()).try_into().expect("one request");
            let reason = recipient.expect_err(bad);
            assert_contains(&reason, &["cliente 7", "mal formado"]);
            assert_lacks(&reason, &[bad, "juana.perez", "perez"]);
        }
        let ctx = family_with_parent(|p| p.email = Some("juana.perez@example".into()));
        assert_eq!(
            recipients(&ctx, &config())[0],
            Err("cliente 7: correo electrónico mal formado (j***@example)".into())
        );
    }

    #[test]
    fn email_domain_is_lowercased_and_spaces_trimmed() {
        let ctx = family_with_parent(|p| p.email = Some("  Ana.Gomez@Example.COM ".into()));
        let recipient = recipients(&ctx, &config()).remove(0).expect("valid email");
        assert_eq!(recipient.as_str(), "Ana.Gomez@example.com");
        assert!(matches!(recipient, Recipient::Email(_)));
    }

    #[test]
    fn sms_to_a_local_mobile_is_e164() {
        for raw in ["0981 123456", "0981123456", "0981-123-456", "+595 981 123456"] {
            let ctx = family_with_parent(|p| p.telefono = Some(raw.into()));
            let sms = recipients(&ctx, &email_and_sms()).remove(1).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(sms, phone(MOBILE_E164), "{raw}");
            assert_eq!(sms.as_str(), MOBILE_E164, "{raw}");
        }
    }

    #[test]
    fn sms_to_a_landline_is_an_error_that_does_not_reveal_the_number() {
        let ctx = family_with_parent(|p| p.telefono = Some("021 555 123".into()));
        let all = recipients(&ctx, &email_and_sms());
        // The email request is unaffected by the bad phone.
        assert_eq!(all[0], Ok(email(EMAIL)));
        let reason = all[1].clone().expect_err("landline");
        assert_contains(&reason, &["cliente 7", "no es un número de celular"]);
        assert_lacks(&reason, &["021 555 123", "021555123", "555 123", "555123", "555"]);
    }

    #[test]
    fn sms_without_a_phone_or_with_junk_is_an_error() {
        for (telefono, expected) in [
            (None, "sin número de teléfono"),
            (Some("  "), "sin número de teléfono"),
            (Some("llamar a la oficina"), "mal formado"),
        ] {
            let ctx = family_with_parent(|p| p.telefono = telefono.map(String::from));
            let reason = recipients(&ctx, &email_and_sms())[1].clone().expect_err("no usable phone");
            assert_contains(&reason, &["cliente 7", expected]);
        }
    }

    #[test]
    fn whatsapp_uses_the_phone_too() {
        let cfg = Config::new().channels(NotificationType::RecargaExitosa, &[WhatsApp]).available(&[WhatsApp]).build();
        let requests = created(run(&recarga_event(CARGA), &family(), &cfg));
        assert_eq!(keys(&requests), ["recarga_exitosa:9001:whatsapp"]);
        assert_eq!(requests[0].recipient, Ok(phone(MOBILE)));

        let landline = family_with_parent(|p| p.telefono = Some("021 555 123".into()));
        let reason = created(run(&recarga_event(CARGA), &landline, &cfg)).remove(0).recipient.expect_err("landline");
        assert_contains(&reason, &["no es un número de celular"]);
    }

    #[test]
    fn sms_reason_never_contains_the_full_number_even_when_malformed() {
        let ctx = family_with_parent(|p| p.telefono = Some("0981 12345678901".into()));
        let reason = recipients(&ctx, &email_and_sms())[1].clone().expect_err("too long");
        assert_lacks(&reason, &["0981 12345678901", "098112345678901", "12345678901"]);
    }

    #[test]
    fn resolve_recipient_per_channel() {
        let p = parent();
        assert_eq!(resolve_recipient(Email, &p), Ok(email(EMAIL)));
        assert_eq!(resolve_recipient(Sms, &p), Ok(phone(MOBILE)));
        assert_eq!(resolve_recipient(WhatsApp, &p), Ok(phone(MOBILE)));
        // The portal reaches the client's portal accounts; whether one is active is checked at send time.
        assert_eq!(resolve_recipient(Portal, &p), Ok(Recipient::Portal { id_cliente: 7 }));
        assert_eq!(Recipient::Portal { id_cliente: 7 }.as_str(), "cliente:7");
        assert_eq!(Recipient::parse(Portal, Some("cliente:7")), Ok(Recipient::Portal { id_cliente: 7 }));
        assert!(Recipient::parse(Portal, Some("7")).is_err());
    }

    #[test]
    fn masked_recipients_for_logs() {
        assert_eq!(email(EMAIL).masked(), "a***@example.com");
        assert_eq!(phone(MOBILE).masked(), "+595 98* *** 456");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// saldo_bajo
// ---------------------------------------------------------------------------------------------------------------

mod saldo_bajo {
    use super::*;

    fn key(date: &str) -> String {
        format!("saldo_bajo:{TARJETA}:{date}:email")
    }

    /// The crossing event with the card's last notice at `ultima`.
    fn with_last_notice(ultima: &str) -> Decision {
        let ctx = family_with_card(|c| c.ultima_notificacion_saldo = Some(ts(ultima)));
        run(&saldo_event(), &ctx, &config())
    }

    #[test]
    fn crossing_the_default_threshold_creates_a_request_keyed_by_local_date() {
        let requests = created(run(&saldo_event(), &family(), &config()));
        assert_eq!(
            requests,
            vec![NewRequest {
                omitted: None,
                fallback: Vec::new(),
                origin: None,
                tipo: NotificationType::SaldoBajo,
                channel: Email,
                clave_dedup: "saldo_bajo:TAR-0042:2026-11-23:email".into(),
                id_cliente: CLIENTE,
                nro_tarjeta: Some(TARJETA.into()),
                saldo: Some(Guaranies(3_500)),
                recipient: Ok(email(EMAIL)),
                data: MessageData::SaldoBajo(AvisoSaldoBajo::una(
                    PADRE.into(),
                    TarjetaSaldoBajo {
                        alumno: ALUMNO.into(),
                        nro_tarjeta: TARJETA.into(),
                        saldo: Guaranies(3_500),
                        umbral: Guaranies(5_000),
                    },
                    EVENT_LOCAL.into(),
                )),
            }]
        );
    }

    #[test]
    fn one_request_per_configured_channel() {
        let cfg = Config::new().channels(NotificationType::SaldoBajo, &[Email, Sms]).available(&[Email, Sms]).build();
        let requests = created(run(&saldo_event(), &family(), &cfg));
        assert_eq!(keys(&requests), ["saldo_bajo:TAR-0042:2026-11-23:email", "saldo_bajo:TAR-0042:2026-11-23:sms"]);
        assert_eq!(requests[1].recipient, Ok(phone(MOBILE)));
        assert!(requests.iter().all(|r| r.tipo == NotificationType::SaldoBajo && r.saldo == Some(Guaranies(3_500))));
    }

    #[test]
    fn saldo_is_the_current_balance_not_the_events() {
        // Another sale after the trigger fired: the notice reports what the card holds now.
        let ctx = family_with_card(|c| c.saldo_actual = 1_200);
        let requests = created(run(&saldo_event_at(6_000, 3_500, EVENT_AT), &ctx, &config()));
        assert_eq!(requests[0].saldo, Some(Guaranies(1_200)));
        assert!(matches!(&requests[0].data, MessageData::SaldoBajo(a) if a.primera().saldo == Guaranies(1_200)));
    }

    #[test]
    fn crossing_boundaries_are_exact() {
        // (anterior, nuevo, crosses?) around the default Gs. 5.000.
        for (anterior, nuevo, crosses) in [
            (5_000, 4_999, true),
            (5_001, 4_999, true),
            (100_000, 0, true),
            (6_000, -2_000, true),
            (5_000, 5_000, false),
            (6_000, 5_000, false),
            (4_999, 4_000, false),
            (3_000, 4_000, false),
            (4_000, 6_000, false),
            (9_000, 7_000, false),
        ] {
            let ctx = family_with_card(|c| c.saldo_actual = nuevo);
            let decision = run(&saldo_event_at(anterior, nuevo, EVENT_AT), &ctx, &config());
            if crosses {
                assert_eq!(keys(&created(decision)), [key(EVENT_LOCAL_DATE)], "{anterior} → {nuevo}");
            } else {
                let reason = ignored(decision);
                assert_contains(&reason, &[&anterior.to_string(), &nuevo.to_string(), "5000", TARJETA, "no cruza"]);
            }
        }
    }

    #[test]
    fn already_below_before_is_not_a_crossing() {
        let reason = ignored(run(&saldo_event_at(4_000, 3_500, EVENT_AT), &family(), &config()));
        assert_eq!(reason, "el cambio de saldo 4000 → 3500 no cruza el umbral 5000 de la tarjeta TAR-0042");
    }

    #[test]
    fn cards_own_threshold_overrides_the_default() {
        // Gs. 12.000 → Gs. 8.000 crosses the card's Gs. 10.000 but not the default Gs. 5.000.
        let ctx = family_with_card(|c| {
            c.saldo_alerta = 10_000;
            c.saldo_actual = 8_000;
        });
        let requests = created(run(&saldo_event_at(12_000, 8_000, EVENT_AT), &ctx, &config()));
        assert_eq!(keys(&requests), [key(EVENT_LOCAL_DATE)]);
        assert!(matches!(
            &requests[0].data,
            MessageData::SaldoBajo(a) if a.primera().umbral == Guaranies(10_000) && a.primera().saldo == Guaranies(8_000)
        ));
    }

    #[test]
    fn cards_own_lower_threshold_suppresses_a_default_crossing() {
        // Gs. 6.000 → Gs. 3.500 crosses the default but not the card's Gs. 3.000.
        let ctx = family_with_card(|c| c.saldo_alerta = 3_000);
        let reason = ignored(run(&saldo_event(), &ctx, &config()));
        assert_contains(&reason, &["no cruza", "3000"]);
        // ... and the card's own threshold is crossed at Gs. 2.999.
        let ctx = family_with_card(|c| {
            c.saldo_alerta = 3_000;
            c.saldo_actual = 2_999;
        });
        let requests = created(run(&saldo_event_at(3_500, 2_999, EVENT_AT), &ctx, &config()));
        assert!(matches!(&requests[0].data, MessageData::SaldoBajo(a) if a.primera().umbral == Guaranies(3_000)));
    }

    #[test]
    fn zero_card_threshold_means_the_configured_default() {
        let cfg = Config::new().umbral(7_000).build();
        for saldo_alerta in [0, -1] {
            let ctx = family_with_card(|c| {
                c.saldo_alerta = saldo_alerta;
                c.saldo_actual = 6_500;
            });
            let requests = created(run(&saldo_event_at(8_000, 6_500, EVENT_AT), &ctx, &cfg));
            assert!(
                matches!(&requests[0].data, MessageData::SaldoBajo(a) if a.primera().umbral == Guaranies(7_000)),
                "saldo_alerta {saldo_alerta}"
            );
        }
        // With the configured 7.000, the usual 6.000 → 3.500 is not a crossing.
        let reason = ignored(run(&saldo_event(), &family(), &cfg));
        assert_contains(&reason, &["no cruza", "7000"]);
    }

    #[test]
    fn card_not_activa_is_ignored() {
        for estado in ["Bloqueada", "Vencida"] {
            let ctx = family_with_card(|c| c.estado = estado.into());
            let reason = ignored(run(&saldo_event(), &ctx, &config()));
            assert_eq!(reason, format!("la tarjeta TAR-0042 no está Activa (estado {estado})"));
        }
    }

    #[test]
    fn notices_turned_off_on_the_card_are_ignored() {
        let ctx = family_with_card(|c| c.notificar_saldo_bajo = false);
        let reason = ignored(run(&saldo_event(), &ctx, &config()));
        assert_eq!(reason, "la tarjeta TAR-0042 tiene desactivado el aviso de saldo bajo");
    }

    #[test]
    fn recharged_back_above_the_threshold_before_processing_is_ignored() {
        for saldo_actual in [5_000, 5_001, 80_000] {
            let ctx = family_with_card(|c| c.saldo_actual = saldo_actual);
            let reason = ignored(run(&saldo_event(), &ctx, &config()));
            assert_contains(&reason, &[TARJETA, "recuperó saldo"]);
        }
        let ctx = family_with_card(|c| c.saldo_actual = 80_000);
        assert_eq!(ignored(run(&saldo_event(), &ctx, &config())), "la tarjeta TAR-0042 ya recuperó saldo (Gs. 80.000)");
        // One guaraní short of the threshold is still low.
        let ctx = family_with_card(|c| c.saldo_actual = 4_999);
        assert_eq!(created(run(&saldo_event(), &ctx, &config())).len(), 1);
    }

    #[test]
    fn recovery_is_judged_against_the_cards_own_threshold() {
        // Card threshold Gs. 10.000; now Gs. 7.000: above the default but still below the card's → still low.
        let ctx = family_with_card(|c| {
            c.saldo_alerta = 10_000;
            c.saldo_actual = 7_000;
        });
        assert_eq!(created(run(&saldo_event_at(12_000, 6_000, EVENT_AT), &ctx, &config())).len(), 1);
    }

    #[test]
    fn a_notice_earlier_the_same_local_day_blocks() {
        // 2026-11-23T15:00Z is 12:00 on 23 Nov local; the event (02:00Z on the 24th) is 23:00 on 23 Nov local.
        // A UTC comparison would see 23 ≠ 24 and send again.
        let reason = ignored(with_last_notice("2026-11-23T15:00:00Z"));
        assert_eq!(reason, "la tarjeta TAR-0042 ya recibió un aviso de saldo bajo hoy");
    }

    #[test]
    fn a_notice_the_previous_local_day_does_not_block() {
        let requests = created(with_last_notice("2026-11-22T18:00:00Z"));
        assert_eq!(keys(&requests), [key(EVENT_LOCAL_DATE)]);
    }

    #[test]
    fn start_of_the_local_day_boundary() {
        // Local midnight of 23 Nov is 2026-11-23T03:00Z.
        ignored(with_last_notice("2026-11-23T03:00:00Z"));
        // One second earlier is 22 Nov 23:59:59 local, although it is already the 23rd in UTC.
        let requests = created(with_last_notice("2026-11-23T02:59:59Z"));
        assert_eq!(keys(&requests), [key(EVENT_LOCAL_DATE)]);
    }

    #[test]
    fn end_of_the_local_day_boundary() {
        // 2026-11-24T02:59:59Z is 23 Nov 23:59:59 local: same local day as the event → blocks.
        ignored(with_last_notice("2026-11-24T02:59:59Z"));
        // 2026-11-24T03:00Z and 03:30Z are 24 Nov 00:00 / 00:30 local: a different local day from the event's
        // (23 Nov), although the same UTC day. They do not block; the request is keyed by the event's day.
        for ultima in ["2026-11-24T03:00:00Z", "2026-11-24T03:30:00Z"] {
            let requests = created(with_last_notice(ultima));
            assert_eq!(keys(&requests), [key(EVENT_LOCAL_DATE)], "{ultima}");
        }
    }

    #[test]
    fn the_key_date_is_the_events_local_date() {
        for (at, date) in [
            ("2026-11-24T02:59:59Z", "2026-11-23"),
            ("2026-11-24T03:00:00Z", "2026-11-24"),
            ("2026-11-24T14:00:00Z", "2026-11-24"),
            // Winter: still UTC-3, so 03:30Z on 1 July is 00:30 on 1 July (UTC-4 would make it 30 June).
            ("2026-07-01T03:30:00Z", "2026-07-01"),
            ("2026-07-01T02:30:00Z", "2026-06-30"),
            // New year in UTC, still the old year in Asunción.
            ("2027-01-01T01:00:00Z", "2026-12-31"),
        ] {
            let requests = created(run(&saldo_event_at(6_000, 3_500, at), &family(), &config()));
            assert_eq!(keys(&requests), [key(date)], "{at}");
        }
    }

    #[test]
    fn message_date_is_the_events_local_time() {
        let requests = created(run(&saldo_event_at(6_000, 3_500, "2026-07-01T03:30:00Z"), &family(), &config()));
        assert!(matches!(&requests[0].data, MessageData::SaldoBajo(a) if a.fecha == "01/07/2026 00:30"));
    }

    #[test]
    fn two_crossings_the_same_local_day_share_keys_other_days_do_not() {
        let ctx = family();
        let evening = created(run(&event(1, saldo_event().kind, "2026-11-23T12:00:00Z"), &ctx, &config()));
        let night = created(run(&event(2, saldo_event().kind, "2026-11-24T02:59:00Z"), &ctx, &config()));
        let next_day = created(run(&event(3, saldo_event().kind, "2026-11-24T03:01:00Z"), &ctx, &config()));
        assert_eq!(keys(&evening), keys(&night));
        assert_eq!(keys(&next_day), [key("2026-11-24")]);
    }

    #[test]
    fn broken_holder_chain_is_ignored_with_a_readable_reason() {
        for (case, ctx, mentions) in broken_holders() {
            let reason = ignored(run(&saldo_event(), &ctx, &config()));
            assert!(mentions.iter().all(|m| reason.contains(m)), "{case}: {reason:?} should mention {mentions:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// tarjeta_vencida
// ---------------------------------------------------------------------------------------------------------------

mod tarjeta_vencida {
    use super::*;

    fn vencida_event(id: i64) -> OutboxEvent {
        event(id, EventKind::TarjetaVencida { nro_tarjeta: TARJETA.into() }, EVENT_AT)
    }

    /// Keyed by card and expiry date, not by event: the daily sweep uses the same key, and a second change to
    /// `Vencida` for the same date is the same notice.
    #[test]
    fn an_expired_card_is_keyed_by_its_expiry_date_as_the_sweep_keys_it() {
        let ctx = family_with_card(|c| {
            c.estado = "Vencida".into();
            c.fecha_vencimiento = Some(jiff::civil::date(2026, 12, 20));
        });
        let first = created(run(&vencida_event(314), &ctx, &config()));
        let again = created(run(&vencida_event(315), &ctx, &config()));
        assert_eq!(keys(&first), ["tarjeta_vencida:TAR-0042:2026-12-20:email"]);
        assert_eq!(first, again);
        assert_eq!(
            first[0].data,
            MessageData::TarjetaVencida {
                padre: PADRE.into(),
                alumno: ALUMNO.into(),
                nro_tarjeta: TARJETA.into(),
                vencio: "20/12/2026".into(),
                ademas: Vec::new(),
            }
        );
        assert_eq!(
            crate::rules::expiry_key(NotificationType::TarjetaVencida, TARJETA, "2026-12-20"),
            "tarjeta_vencida:TAR-0042:2026-12-20"
        );
    }
}

// tarjeta_bloqueada
// ---------------------------------------------------------------------------------------------------------------

mod tarjeta_bloqueada {
    use super::*;

    fn blocked() -> Context {
        family_with_card(|c| c.estado = "Bloqueada".into())
    }

    #[test]
    fn blocking_creates_a_request_keyed_by_the_event() {
        let requests = created(run(&bloqueo_event(314), &blocked(), &config()));
        assert_eq!(
            requests,
            vec![NewRequest {
                omitted: None,
                fallback: Vec::new(),
                origin: None,
                tipo: NotificationType::TarjetaBloqueada,
                channel: Email,
                clave_dedup: "tarjeta_bloqueada:TAR-0042:314:email".into(),
                id_cliente: CLIENTE,
                nro_tarjeta: Some(TARJETA.into()),
                saldo: None,
                recipient: Ok(email(EMAIL)),
                data: MessageData::TarjetaBloqueada {
                    padre: PADRE.into(),
                    alumno: ALUMNO.into(),
                    nro_tarjeta: TARJETA.into(),
                    fecha: EVENT_LOCAL.into(),
                },
            }]
        );
    }

    #[test]
    fn two_blockings_get_two_keys_and_a_redelivery_the_same() {
        let ctx = blocked();
        let first = created(run(&bloqueo_event(314), &ctx, &config()));
        let second = created(run(&bloqueo_event(315), &ctx, &config()));
        let redelivered = created(run(&bloqueo_event(314), &ctx, &config()));
        assert_eq!(keys(&first), ["tarjeta_bloqueada:TAR-0042:314:email"]);
        assert_eq!(keys(&second), ["tarjeta_bloqueada:TAR-0042:315:email"]);
        assert_eq!(first, redelivered);
    }

    #[test]
    fn one_request_per_configured_channel() {
        let cfg =
            Config::new().channels(NotificationType::TarjetaBloqueada, &[Sms, Email]).available(&[Email, Sms]).build();
        let requests = created(run(&bloqueo_event(314), &blocked(), &cfg));
        assert_eq!(keys(&requests), ["tarjeta_bloqueada:TAR-0042:314:sms", "tarjeta_bloqueada:TAR-0042:314:email"]);
        assert_eq!(requests[0].recipient, Ok(phone(MOBILE)));
    }

    #[test]
    fn missing_card_is_ignored() {
        let ctx = Context { cards: HashMap::new(), ..family() };
        assert_eq!(ignored(run(&bloqueo_event(314), &ctx, &config())), "la tarjeta TAR-0042 no existe");
    }

    #[test]
    fn broken_holder_chain_is_ignored_with_a_readable_reason() {
        for (case, ctx, mentions) in broken_holders() {
            let reason = ignored(run(&bloqueo_event(314), &ctx, &config()));
            assert!(mentions.iter().all(|m| reason.contains(m)), "{case}: {reason:?} should mention {mentions:?}");
        }
    }

    /// Documents current behaviour: unlike recarga (re-checks CONFIRMADO) and saldo_bajo (re-checks the balance),
    /// the blocking rule does not re-check that the card is still `Bloqueada` when the event is processed.
    #[test]
    fn blocking_notice_is_sent_even_if_the_card_was_unblocked_since() {
        let ctx = family_with_card(|c| c.estado = "Activa".into());
        assert_eq!(created(run(&bloqueo_event(314), &ctx, &config())).len(), 1);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Manual requests (the POS "Notificar" button)
// ---------------------------------------------------------------------------------------------------------------

mod manual {
    use super::*;

    fn run_manual(ctx: &Context, cfg: &RulesConfig) -> Decision {
        run(&manual_event(), ctx, cfg)
    }

    fn email_and_sms() -> RulesConfig {
        Config::new().available(&[Email, Sms]).build()
    }

    #[test]
    fn email_request_for_a_card_goes_to_the_holders_parent() {
        let request = manual_sent(run_manual(&family(), &config()));
        assert_eq!(
            request,
            NewRequest {
                omitted: None,
                fallback: Vec::new(),
                origin: None,
                tipo: NotificationType::SaldoBajo,
                channel: Email,
                clave_dedup: "manual:555".into(),
                id_cliente: CLIENTE,
                nro_tarjeta: Some(TARJETA.into()),
                saldo: Some(Guaranies(3_500)),
                recipient: Ok(email(EMAIL)),
                data: MessageData::SaldoBajo(AvisoSaldoBajo::una(
                    PADRE.into(),
                    TarjetaSaldoBajo {
                        alumno: ALUMNO.into(),
                        nro_tarjeta: TARJETA.into(),
                        saldo: Guaranies(3_500),
                        umbral: Guaranies(5_000),
                    },
                    EVENT_LOCAL.into(),
                )),
            }
        );
    }

    const TEXTO: &str = "Hola, Tomás olvidó su almuerzo…";

    /// The type a failed row is recorded under.
    fn failed_tipo(decision: Decision) -> NotificationType {
        match decision {
            Decision::CompleteManual { completion, .. } => match *completion {
                ManualCompletion::Fail { tipo, .. } => tipo,
                other => panic!("expected CompleteManual Fail, got {other:?}"),
            },
            other => panic!("expected CompleteManual Fail, got {other:?}"),
        }
    }

    #[test]
    fn a_row_with_the_staffs_text_is_a_mensaje_cantina_carrying_it() {
        // Whatever `tipo` says, and even if the parent switched the type off: staff pressed the button.
        for tipo in [None, Some("saldo_bajo"), Some("mensaje_cantina")] {
            let mut ctx = family_with_manual(|m| {
                m.mensaje = Some(format!("  {TEXTO}\n")); // trimmed, not otherwise touched
                m.tipo = tipo.map(String::from);
            });
            ctx.turned_off = [(CLIENTE, NotificationType::MensajeCantina, Email)].into_iter().collect();
            let request = manual_sent(run_manual(&ctx, &config()));
            assert_eq!(
                request,
                NewRequest {
                    omitted: None,
                    fallback: Vec::new(),
                    origin: None,
                    tipo: NotificationType::MensajeCantina,
                    channel: Email,
                    clave_dedup: "manual:555".into(),
                    id_cliente: CLIENTE,
                    nro_tarjeta: Some(TARJETA.into()),
                    saldo: None,
                    recipient: Ok(email(EMAIL)),
                    data: MessageData::MensajeCantina {
                        padre: PADRE.into(),
                        alumno: Some(ALUMNO.into()),
                        mensaje: TEXTO.into(),
                        fecha: EVENT_LOCAL.into(),
                    },
                },
                "{tipo:?}"
            );
        }
    }

    #[test]
    fn the_staffs_text_may_go_to_a_client_without_a_card_and_uses_its_own_channels() {
        let ctx = family_with_manual(|m| {
            m.mensaje = Some(TEXTO.into());
            m.nro_tarjeta = None;
            m.id_cliente = Some(OTRO_CLIENTE);
            m.destino = None;
        });
        let cfg = Config::new()
            .channels(NotificationType::MensajeCantina, &[Sms])
            .channels(NotificationType::SaldoBajo, &[Email])
            .available(&[Email, Sms])
            .build();
        let request = manual_sent(run_manual(&ctx, &cfg));
        assert_eq!(
            (request.tipo, request.channel, request.id_cliente),
            (NotificationType::MensajeCantina, Sms, OTRO_CLIENTE)
        );
        assert_eq!(request.nro_tarjeta, None);
        assert!(
            matches!(&request.data, MessageData::MensajeCantina { padre, alumno: None, mensaje, .. } if padre == "Carlos" && mensaje == TEXTO),
            "{:?}",
            request.data
        );
        // Neither a card nor a client: nobody to write to.
        let ctx = family_with_manual(|m| {
            m.mensaje = Some(TEXTO.into());
            m.nro_tarjeta = None;
        });
        let (_, _, reason) = manual_failed(run_manual(&ctx, &config()));
        assert_eq!(reason, "la solicitud manual no indica nro_tarjeta ni id_cliente");
    }

    #[test]
    fn a_row_naming_a_card_type_gets_that_types_template() {
        let ctx = family_with_manual(|m| m.tipo = Some("tarjeta_bloqueada".into()));
        let request = manual_sent(run_manual(&ctx, &config()));
        assert_eq!(
            (request.tipo, request.channel, request.clave_dedup.as_str()),
            (NotificationType::TarjetaBloqueada, Email, "manual:555")
        );
        assert_eq!(
            request.data,
            MessageData::TarjetaBloqueada {
                padre: PADRE.into(),
                alumno: ALUMNO.into(),
                nro_tarjeta: TARJETA.into(),
                fecha: EVENT_LOCAL.into(),
            }
        );
        assert_eq!(request.omitted, None);
        let ctx = family_with_manual(|m| m.tipo = Some(" saldo_bajo ".into()));
        let request = manual_sent(run_manual(&ctx, &config()));
        assert_eq!(request, manual_sent(run_manual(&family(), &config())));
    }

    #[test]
    fn a_row_with_neither_text_nor_type_keeps_the_low_balance_notice() {
        let ctx = family_with_manual(|m| {
            m.mensaje = Some("   ".into());
            m.tipo = Some("".into());
        });
        let request = manual_sent(run_manual(&ctx, &config()));
        assert_eq!(request.tipo, NotificationType::SaldoBajo);
        assert_eq!(request, manual_sent(run_manual(&family(), &config())));
    }

    #[test]
    fn a_row_naming_a_type_the_pos_cannot_build_is_an_error_saying_why() {
        for (tipo, recorded, reason) in [
            (
                "recarga_exitosa",
                NotificationType::RecargaExitosa,
                "el tipo recarga_exitosa no puede enviarse desde la caja (se espera saldo_bajo o tarjeta_bloqueada, o un mensaje escrito)",
            ),
            (
                "recordatorio_deuda",
                NotificationType::RecordatorioDeuda,
                "el tipo recordatorio_deuda no puede enviarse desde la caja (se espera saldo_bajo o tarjeta_bloqueada, o un mensaje escrito)",
            ),
            (
                "mensaje_cantina",
                NotificationType::MensajeCantina,
                "la solicitud indica tipo mensaje_cantina pero no trae mensaje",
            ),
            (
                "consumo_realizado",
                NotificationType::ConsumoRealizado,
                "el tipo consumo_realizado no puede enviarse desde la caja (se espera saldo_bajo o tarjeta_bloqueada, o un mensaje escrito)",
            ),
            (
                "restriccion_aplicada",
                NotificationType::SaldoBajo,
                "tipo de aviso desconocido 'restriccion_aplicada' (se espera saldo_bajo o tarjeta_bloqueada, o un mensaje escrito)",
            ),
        ] {
            let ctx = family_with_manual(|m| m.tipo = Some(tipo.into()));
            assert_eq!(failed_tipo(run_manual(&ctx, &config())), recorded, "{tipo}");
            let (clave, channel, got) = manual_failed(run_manual(&ctx, &config()));
            assert_eq!((clave.as_str(), channel, got.as_str()), ("manual:555", None, reason), "{tipo}");
        }
    }

    #[test]
    fn id_cliente_on_the_row_wins_over_the_card_holder() {
        let ctx = family_with_manual(|m| m.id_cliente = Some(OTRO_CLIENTE));
        let request = manual_sent(run_manual(&ctx, &config()));
        assert_eq!(request.id_cliente, OTRO_CLIENTE);
        assert_eq!(request.recipient, Ok(email("carlos.benitez@example.org")));
        assert!(
            matches!(&request.data, MessageData::SaldoBajo(a) if a.padre == "Carlos" && a.primera().alumno == ALUMNO)
        );
        assert_eq!(request.nro_tarjeta.as_deref(), Some(TARJETA));
    }

    #[test]
    fn id_cliente_not_loaded_fails_without_falling_back_to_the_holder() {
        let ctx = family_with_manual(|m| m.id_cliente = Some(12_345));
        let (clave, channel, reason) = manual_failed(run_manual(&ctx, &config()));
        assert_eq!(clave, "manual:555");
        assert_eq!(channel, Some(Email));
        assert_eq!(reason, "no se encontró el cliente a notificar para la tarjeta TAR-0042");
    }

    #[test]
    fn no_destino_uses_the_first_channel_configured_for_saldo_bajo() {
        let cfg = Config::new()
            .channels(NotificationType::SaldoBajo, &[Sms, Email])
            .channels(NotificationType::RecargaExitosa, &[Email])
            .available(&[Email, Sms])
            .build();
        for destino in [None, Some(""), Some("   ")] {
            let ctx = family_with_manual(|m| m.destino = destino.map(String::from));
            let request = manual_sent(run_manual(&ctx, &cfg));
            assert_eq!(request.channel, Sms, "{destino:?}");
            assert_eq!(request.clave_dedup, "manual:555");
            assert_eq!(request.recipient, Ok(phone(MOBILE)));
        }
        let ctx = family_with_manual(|m| m.destino = None);
        assert_eq!(manual_sent(run_manual(&ctx, &config())).channel, Email);
    }

    #[test]
    fn no_destino_and_no_saldo_bajo_channel_fails() {
        let ctx = family_with_manual(|m| m.destino = None);
        for cfg in [
            Config::new().channels(NotificationType::SaldoBajo, &[]).build(),
            Config::new().without(NotificationType::SaldoBajo).build(),
        ] {
            let (clave, channel, reason) = manual_failed(run_manual(&ctx, &cfg));
            assert_eq!(clave, "manual:555");
            assert_eq!(channel, None);
            assert_contains(&reason, &["destino", "saldo_bajo"]);
        }
    }

    #[test]
    fn destino_is_parsed_case_insensitively() {
        for (destino, channel) in [("Email", Email), ("email", Email), (" EMAIL ", Email), ("SMS", Sms), ("sms", Sms)] {
            let ctx = family_with_manual(|m| m.destino = Some(destino.into()));
            assert_eq!(manual_sent(run_manual(&ctx, &email_and_sms())).channel, channel, "{destino}");
        }
    }

    #[test]
    fn destino_may_name_any_available_channel_even_if_saldo_bajo_does_not_use_it() {
        // saldo_bajo is email-only, but SMS has a provider.
        let ctx = family_with_manual(|m| m.destino = Some("SMS".into()));
        let request = manual_sent(run_manual(&ctx, &email_and_sms()));
        assert_eq!(request.channel, Sms);
        assert_eq!(request.recipient.as_ref().map(Recipient::as_str), Ok(MOBILE_E164.to_string()));
    }

    #[test]
    fn destino_naming_an_unavailable_channel_fails() {
        for (destino, channel, shown) in
            [("SMS", Sms, "SMS"), ("WhatsApp", WhatsApp, "WhatsApp"), ("Portal", Portal, "Portal")]
        {
            let ctx = family_with_manual(|m| m.destino = Some(destino.into()));
            let (clave, got, reason) = manual_failed(run_manual(&ctx, &config()));
            assert_eq!(clave, "manual:555");
            assert_eq!(got, Some(channel));
            assert_eq!(reason, format!("el canal {shown} no está configurado en el servicio"));
        }
    }

    #[test]
    fn unknown_destino_fails_naming_it() {
        let ctx = family_with_manual(|m| m.destino = Some("Fax".into()));
        let (clave, channel, reason) = manual_failed(run_manual(&ctx, &config()));
        assert_eq!(clave, "manual:555");
        assert_eq!(channel, None);
        assert_contains(&reason, &["Fax", "destino desconocido"]);
    }

    #[test]
    fn no_nro_tarjeta_fails() {
        let ctx = family_with_manual(|m| m.nro_tarjeta = None);
        let (clave, channel, reason) = manual_failed(run_manual(&ctx, &config()));
        assert_eq!((clave.as_str(), channel), ("manual:555", Some(Email)));
        assert_eq!(reason, "la solicitud manual no indica nro_tarjeta");
    }

    #[test]
    fn unknown_card_fails() {
        let ctx = family_with_manual(|m| m.nro_tarjeta = Some("TAR-9999".into()));
        let (clave, channel, reason) = manual_failed(run_manual(&ctx, &config()));
        assert_eq!((clave.as_str(), channel), ("manual:555", Some(Email)));
        assert_eq!(reason, "la tarjeta TAR-9999 no existe");
    }

    #[test]
    fn card_without_parent_and_no_id_cliente_fails() {
        let ctx = family_with_card(|c| c.parent = None);
        let (_, channel, reason) = manual_failed(run_manual(&ctx, &config()));
        assert_eq!(channel, Some(Email));
        assert_eq!(reason, "no se encontró el cliente a notificar para la tarjeta TAR-0042");
    }

    #[test]
    fn card_without_student_names_the_card_instead() {
        let ctx = family_with_card(|c| c.student = None);
        let request = manual_sent(run_manual(&ctx, &config()));
        assert!(matches!(&request.data, MessageData::SaldoBajo(a) if a.primera().alumno == "tarjeta TAR-0042"));
    }

    #[test]
    fn uses_the_cards_own_threshold_in_the_message() {
        let ctx = family_with_card(|c| c.saldo_alerta = 8_000);
        let request = manual_sent(run_manual(&ctx, &config()));
        assert!(matches!(&request.data, MessageData::SaldoBajo(a) if a.primera().umbral == Guaranies(8_000)));
    }

    #[test]
    fn the_button_is_explicit_so_card_state_does_not_stop_it() {
        // Not Activa, notices off, balance above the threshold, already notified today: staff asked, it is sent.
        let ctx = family_with_card(|c| {
            c.estado = "Bloqueada".into();
            c.notificar_saldo_bajo = false;
            c.saldo_actual = 40_000;
            c.ultima_notificacion_saldo = Some(ts("2026-11-23T20:00:00Z"));
        });
        let request = manual_sent(run_manual(&ctx, &config()));
        assert_eq!(request.saldo, Some(Guaranies(40_000)));
    }

    /// Documents current behaviour: the automatic rules skip inactive clients, the manual one does not check.
    #[test]
    fn inactive_holder_parent_is_still_sent() {
        let ctx = family_with_parent(|p| p.activo = false);
        assert_eq!(manual_sent(run_manual(&ctx, &config())).id_cliente, CLIENTE);
    }

    #[test]
    fn recipient_problems_are_recorded_on_the_request() {
        let ctx = family_with_parent(|p| p.email = None);
        let request = manual_sent(run_manual(&ctx, &config()));
        assert_eq!(request.recipient, Err("cliente 7: sin correo electrónico registrado".into()));

        let ctx = {
            let mut ctx = family_with_parent(|p| p.telefono = Some("021 555 123".into()));
            ctx.manual.get_mut(&SOLICITUD).expect("row").destino = Some("SMS".into());
            ctx
        };
        let reason = manual_sent(run_manual(&ctx, &email_and_sms())).recipient.expect_err("landline");
        assert_contains(&reason, &["cliente 7", "no es un número de celular"]);
        assert_lacks(&reason, &["555"]);
    }

    #[test]
    fn already_processed_rows_are_ignored() {
        for (clave_dedup, estado) in [
            (Some("manual:555"), "Pendiente"),
            (None, "Enviado"),
            (None, "Error"),
            (None, "Omitido"),
            (Some("manual:555"), "Enviado"),
        ] {
            let ctx = family_with_manual(|m| {
                m.clave_dedup = clave_dedup.map(String::from);
                m.estado = estado.into();
            });
            let reason = ignored(run_manual(&ctx, &config()));
            assert_eq!(reason, "la solicitud 555 ya fue procesada", "{clave_dedup:?} {estado}");
        }
    }

    #[test]
    fn missing_row_is_ignored() {
        let ctx = Context { manual: HashMap::new(), ..family() };
        assert_eq!(ignored(run_manual(&ctx, &config())), "la solicitud 555 ya no existe");
    }

    #[test]
    fn processed_check_comes_before_validation() {
        // A row that was already processed is left alone even if it would fail now.
        let ctx = family_with_manual(|m| {
            m.estado = "Error".into();
            m.destino = Some("Fax".into());
            m.nro_tarjeta = None;
        });
        ignored(run_manual(&ctx, &config()));
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Across rules: channel configuration, invalid events, determinism
// ---------------------------------------------------------------------------------------------------------------

mod general {
    use super::*;

    /// One event of each automatic kind, with the context in which it would create requests.
    fn automatic_events() -> Vec<(NotificationType, OutboxEvent, Context)> {
        vec![
            (NotificationType::RecargaExitosa, recarga_event(CARGA), family()),
            (NotificationType::SaldoBajo, saldo_event(), family()),
            (NotificationType::TarjetaBloqueada, bloqueo_event(314), family()),
        ]
    }

    #[test]
    fn a_type_configured_with_no_channels_is_ignored() {
        for (tipo, event, ctx) in automatic_events() {
            let cfg = Config::new().channels(tipo, &[]).build();
            assert_eq!(ignored(run(&event, &ctx, &cfg)), format!("ningún canal configurado para {tipo}"));
            // Absent from the map altogether: same.
            let cfg = Config::new().without(tipo).build();
            assert_eq!(ignored(run(&event, &ctx, &cfg)), format!("ningún canal configurado para {tipo}"));
            // Other types' channels do not leak in.
            let cfg =
                Config::new().channels(tipo, &[]).channels(NotificationType::CuentaPendiente, &[Email, Sms]).build();
            ignored(run(&event, &ctx, &cfg));
        }
    }

    #[test]
    fn invalid_event_is_ignored_with_its_reason() {
        let ev = event(7, EventKind::Invalid { reason: "tipo de evento desconocido: consumo".into() }, EVENT_AT);
        assert_eq!(ignored(run(&ev, &family(), &config())), "tipo de evento desconocido: consumo");
        assert_eq!(ignored(run(&ev, &Context::default(), &config())), "tipo de evento desconocido: consumo");
    }

    #[test]
    fn decoded_events_reach_their_rule() {
        let ev = event(
            EVENTO,
            EventKind::decode("saldo_bajo", None, Some(TARJETA.into()), Some(6_000), Some(3_500)),
            EVENT_AT,
        );
        assert_eq!(keys(&created(run(&ev, &family(), &config()))), ["saldo_bajo:TAR-0042:2026-11-23:email"]);
        let ev =
            event(EVENTO, EventKind::decode("saldo_bajo", None, Some(TARJETA.into()), None, Some(3_500)), EVENT_AT);
        assert_eq!(ignored(run(&ev, &family(), &config())), "evento saldo_bajo sin tarjeta o saldos");
    }

    #[test]
    fn deciding_twice_gives_the_same_decision() {
        let cfg = Config::new()
            .channels(NotificationType::RecargaExitosa, &[Email, Sms])
            .channels(NotificationType::SaldoBajo, &[Email, Sms, WhatsApp])
            .channels(NotificationType::TarjetaBloqueada, &[Sms])
            .available(&[Email, Sms, WhatsApp])
            .build();
        let ctx = family();
        let events = [
            recarga_event(CARGA),
            recarga_event(4242),
            saldo_event(),
            saldo_event_at(4_000, 3_500, EVENT_AT),
            bloqueo_event(314),
            manual_event(),
            event(8, EventKind::Invalid { reason: "x".into() }, EVENT_AT),
        ];
        for ev in &events {
            let first = run(ev, &ctx, &cfg);
            let second = run(ev, &ctx.clone(), &cfg);
            assert_eq!(first, second, "{ev:?}");
        }
        // And the keys are exactly the expected ones, every time.
        for _ in 0..3 {
            assert_eq!(
                keys(&created(run(&saldo_event(), &ctx, &cfg))),
                [
                    "saldo_bajo:TAR-0042:2026-11-23:email",
                    "saldo_bajo:TAR-0042:2026-11-23:sms",
                    "saldo_bajo:TAR-0042:2026-11-23:whatsapp"
                ]
            );
        }
    }

    #[test]
    fn dedup_keys_are_unique_within_a_decision() {
        let all = [Email, Sms, WhatsApp];
        let cfg = Config::new()
            .channels(NotificationType::RecargaExitosa, &all)
            .channels(NotificationType::SaldoBajo, &all)
            .channels(NotificationType::TarjetaBloqueada, &all)
            .available(&all)
            .build();
        for (tipo, event, ctx) in automatic_events() {
            let requests = created(run(&event, &ctx, &cfg));
            let mut k = keys(&requests);
            k.sort_unstable();
            k.dedup();
            assert_eq!(k.len(), 3, "{tipo}");
            assert!(requests.iter().all(|r| r.tipo == tipo && r.data.notification_type() == tipo), "{tipo}");
        }
    }
}

mod turned_off {
    use super::*;
    use crate::rules::{OffBy, TurnedOff};

    #[test]
    fn the_reason_says_whether_the_parent_switched_it_off_or_never_switched_it_on() {
        let mut off = TurnedOff::new();
        off.insert(CLIENTE, NotificationType::SaldoBajo, Sms, OffBy::Portal);
        off.insert(CLIENTE, NotificationType::SaldoBajo, WhatsApp, OffBy::Default);
        assert_eq!(
            off.reason(CLIENTE, NotificationType::SaldoBajo, Sms).as_deref(),
            Some(format!("el cliente {CLIENTE} desactivó los avisos saldo_bajo por SMS en el portal").as_str())
        );
        let by_default = off.reason(CLIENTE, NotificationType::SaldoBajo, WhatsApp).unwrap_or_default();
        assert!(by_default.contains("no activó los avisos saldo_bajo por WhatsApp"), "{by_default}");
        assert_eq!(off.reason(CLIENTE, NotificationType::RecargaExitosa, Sms), None);
        assert_eq!(off.reason(CLIENTE + 1, NotificationType::SaldoBajo, Sms), None);
        let collected: TurnedOff = [(CLIENTE, NotificationType::SaldoBajo, Email)].into_iter().collect();
        assert!(collected.reason(CLIENTE, NotificationType::SaldoBajo, Email).is_some_and(|r| r.contains("desactivó")));
    }
}
