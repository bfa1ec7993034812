use super::*;

fn d(s: &str) -> Date {
    s.parse().unwrap()
}

fn parent() -> Parent {
    Parent {
        id_cliente: 42,
        nombres: "Ana".into(),
        apellidos: "Benítez".into(),
        email: Some("ana@example.com".into()),
        telefono: None,
        activo: true,
    }
}

fn facts() -> FamilyFacts {
    FamilyFacts {
        parent: parent(),
        deudas: Vec::new(),
        bajas: Vec::new(),
        vencimientos: Vec::new(),
        ultimo_recordatorio: None,
    }
}

fn deuda(nro: &str, alumno: &str, saldo: i64, desde: &str, primera: i64) -> DebtFact {
    DebtFact { nro_tarjeta: nro.into(), alumno: alumno.into(), saldo, desde: d(desde), primera }
}

fn baja(nro: &str, cruce: Option<&str>) -> LowFact {
    LowFact {
        nro_tarjeta: nro.into(), alumno: "Luis Benítez".into(), saldo: 3_000, umbral: 5_000, cruce: cruce.map(d)
    }
}

fn vence(nro: &str, fecha: &str, vencida: bool) -> ExpiryFact {
    ExpiryFact { nro_tarjeta: nro.into(), alumno: "Sofía Benítez".into(), vencida, vence: d(fecha) }
}

const S: ReminderSchedule = ReminderSchedule { primero: 1, cada: 7 };

fn keys(items: &[Item]) -> Vec<String> {
    items.iter().flat_map(|i| i.keys.iter().map(|(k, _)| k.clone())).collect()
}

/// The level is the highest reached since the family's oldest open authorisation: missed days never lose it,
/// and nothing is due before day 3.
#[test]
fn debt_level_is_the_highest_reached_since_the_oldest_authorisation() {
    let cases = [
        ("2026-12-02", None),
        ("2026-12-03", Some("recordatorio_deuda:42:7:3")),
        ("2026-12-06", Some("recordatorio_deuda:42:7:3")),
        ("2026-12-07", Some("recordatorio_deuda:42:7:7")),
        ("2026-12-14", Some("recordatorio_deuda:42:7:7")),
        ("2026-12-15", Some("recordatorio_deuda:42:7:15")),
        ("2027-01-30", Some("recordatorio_deuda:42:7:15")),
    ];
    let mut f = facts();
    // Two cards; the family's oldest authorisation (id 7, 30/11) is the second card's.
    f.deudas = vec![deuda("T1", "Luis", -12_000, "2026-12-01", 9), deuda("T2", "Sofía", -3_000, "2026-11-30", 7)];
    for (today, want) in cases {
        let today = d(today);
        let items = due_items(&f, today, S, 15, "x");
        assert_eq!(items.first().map(|i| i.key.as_str()), want, "{today}");
    }
}

/// While the family stays in the debt of its last reminder (a card now in debt has been since that reminder's day or
/// before), no level at or below that reminder's is due again, whatever card is now the oldest; a debt that started
/// after the last reminder (everything was paid in between) starts again at the friendly level.
#[test]
fn an_ongoing_debt_never_gets_a_level_at_or_below_its_last_reminder_again() {
    let last = |fecha: &str, nivel: i32| Some(LastDebtReminder { fecha: d(fecha), nivel });
    // (cards in debt as (nro, desde, primera), last reminder, today, the debt key due)
    let sofia = ("T2", "2026-11-03", 8);
    let cases = [
        // Luis (1 Nov, id 7) paid after the level 7 of the 8th; Sofía's debt (3 Nov) goes on.
        (vec![sofia], last("2026-11-08", 7), "2026-11-09", None),
        (vec![sofia], last("2026-11-08", 7), "2026-11-10", None),
        (vec![sofia], last("2026-11-08", 7), "2026-11-17", None),
        (vec![sofia], last("2026-11-08", 7), "2026-11-18", Some("recordatorio_deuda:42:8:15")),
        // The same with Luis still in debt: unchanged (his own levels are above the last one, or sent already).
        (vec![("T1", "2026-11-01", 7), sofia], last("2026-11-08", 7), "2026-11-16", Some("recordatorio_deuda:42:7:15")),
        // A card that went into debt on the reminder's own day counts as ongoing.
        (vec![("T2", "2026-11-08", 8)], last("2026-11-08", 7), "2026-11-15", None),
        // After the critical level nothing more, even once the oldest card is paid.
        (vec![sofia], last("2026-11-16", 15), "2027-01-30", None),
        // Everything paid, then a new debt after the last reminder: the friendly level again, then the others.
        (vec![("T1", "2026-11-09", 9)], last("2026-11-08", 7), "2026-11-12", Some("recordatorio_deuda:42:9:3")),
        (vec![("T1", "2026-11-09", 9)], last("2026-11-08", 15), "2026-11-16", Some("recordatorio_deuda:42:9:7")),
        // No reminder yet: the level reached.
        (vec![sofia], None, "2026-11-09", Some("recordatorio_deuda:42:8:3")),
    ];
    for (cards, ultimo, today, want) in cases {
        let mut f = facts();
        f.deudas = cards.iter().map(|(nro, desde, id)| deuda(nro, "Sofía", -3_000, desde, *id)).collect();
        f.ultimo_recordatorio = ultimo;
        let items = due_items(&f, d(today), S, 15, "x");
        assert_eq!(items.first().map(|i| i.key.as_str()), want, "{today} {cards:?} {ultimo:?}");
    }
}

#[test]
fn the_level_of_a_debt_key() {
    assert_eq!(debt_level("recordatorio_deuda:42:7:15"), Some(15));
    assert_eq!(debt_level("recordatorio_deuda:42:7:3"), Some(3));
    assert_eq!(debt_level("recordatorio_deuda:42:7:3:email"), None);
    assert_eq!(debt_level("recordatorio_deuda:42:7"), None);
    assert_eq!(debt_level("saldo_bajo:T1:2026-12-01"), None);
}

#[test]
fn a_debt_reminder_lists_each_card_with_its_own_date_oldest_first() {
    let mut f = facts();
    f.deudas = vec![deuda("T1", "Luis", -12_000, "2026-12-01", 9), deuda("T2", "Sofía", -3_000, "2026-11-30", 7)];
    let items = due_items(&f, d("2026-12-07"), S, 15, "x");
    assert_eq!(items.len(), 1);
    let MessageData::RecordatorioDeuda(a) = &items[0].data else { panic!("{:?}", items[0].data) };
    assert_eq!(a.dias, 7);
    assert_eq!(a.nivel, NivelRecordatorio::Urgente);
    let cards: Vec<(&str, i64, &str)> =
        a.tarjetas.iter().map(|t| (t.nro_tarjeta.as_str(), t.monto.0, t.desde.as_str())).collect();
    assert_eq!(cards, [("T2", 3_000, "30/11/2026"), ("T1", 12_000, "01/12/2026")]);
    assert_eq!(a.total(), Guaranies(15_000));
}

/// Crossing on day 0 (the trigger's notice, 1 Dec); reminders on day 1, 8, 15… (2, 9, 16 Dec); only the latest due one is keyed, so a
/// missed day sends it late and a deferred one stays the same item.
#[test]
fn low_balance_reminders_follow_the_schedule() {
    let cruce = Some(d("2026-12-01"));
    let cases = [
        ("2026-12-01", S, None),
        ("2026-12-02", S, Some("saldo_bajo:recordatorio:T1:2026-12-02")),
        ("2026-12-05", S, Some("saldo_bajo:recordatorio:T1:2026-12-02")),
        ("2026-12-08", S, Some("saldo_bajo:recordatorio:T1:2026-12-02")),
        ("2026-12-09", S, Some("saldo_bajo:recordatorio:T1:2026-12-09")),
        ("2026-12-16", S, Some("saldo_bajo:recordatorio:T1:2026-12-16")),
        ("2026-12-03", ReminderSchedule { primero: 1, cada: 1 }, Some("saldo_bajo:recordatorio:T1:2026-12-03")),
        ("2026-12-02", ReminderSchedule { primero: 2, cada: 3 }, None),
        ("2026-12-06", ReminderSchedule { primero: 2, cada: 3 }, Some("saldo_bajo:recordatorio:T1:2026-12-06")),
    ];
    for (today, s, want) in cases {
        assert_eq!(low_key("T1", cruce, d(today), s).as_deref(), want, "{today} {s:?}");
    }
    // No crossing on record: the sweep's own crossing, keyed as the trigger's.
    assert_eq!(low_key("T1", None, d("2026-12-05"), S).as_deref(), Some("saldo_bajo:T1:2026-12-05"));
}

#[test]
fn crossing_dates_are_read_from_the_triggers_and_the_sweeps_keys_only() {
    assert_eq!(crossing_date("saldo_bajo:T1:2026-12-01:email", "T1"), Some(d("2026-12-01")));
    assert_eq!(crossing_date("saldo_bajo:T1:2026-12-01", "T1"), Some(d("2026-12-01")));
    assert_eq!(crossing_date("saldo_bajo:recordatorio:T1:2026-12-02", "T1"), None);
    assert_eq!(crossing_date("saldo_bajo:cliente:42:2026-12-01:email", "T1"), None);
    assert_eq!(crossing_date("saldo_bajo:T10:2026-12-01:email", "T1"), None);
}

#[test]
fn a_card_in_debt_gets_no_low_balance_item() {
    let mut f = facts();
    f.deudas = vec![deuda("T1", "Luis", -2_000, "2026-12-06", 1)];
    f.bajas = vec![baja("T1", None)];
    assert!(due_items(&f, d("2026-12-07"), S, 15, "x").is_empty());
}

#[test]
fn expiry_is_due_from_n_days_before_then_expired_from_the_date() {
    let cases = [
        ("2026-12-04", false, None),
        ("2026-12-05", false, Some("tarjeta_por_vencer:T3:2026-12-20")),
        ("2026-12-19", false, Some("tarjeta_por_vencer:T3:2026-12-20")),
        ("2026-12-10", true, Some("tarjeta_vencida:T3:2026-12-20")),
        ("2026-12-20", false, Some("tarjeta_vencida:T3:2026-12-20")),
        ("2027-01-03", false, Some("tarjeta_vencida:T3:2026-12-20")),
        ("2027-01-04", false, None),
    ];
    for (today, vencida, want) in cases {
        let mut f = facts();
        f.vencimientos = vec![vence("T3", "2026-12-20", vencida)];
        let items = due_items(&f, d(today), S, 15, "x");
        assert_eq!(items.first().map(|i| i.key.as_str()), want, "{today}");
    }
}

/// Debt, then expiry, then low balance; a later firing sends only what is more urgent than what went.
#[test]
fn items_come_most_urgent_first_and_later_firings_send_only_more_urgent_ones() {
    let mut f = facts();
    f.bajas = vec![baja("T1", Some("2026-12-01"))];
    f.vencimientos = vec![vence("T3", "2026-12-20", false)];
    f.deudas = vec![deuda("T2", "Luis", -3_000, "2026-12-01", 5)];
    let items = due_items(&f, d("2026-12-05"), S, 15, "x");
    let kinds: Vec<Urgencia> = items.iter().map(|i| i.urgencia).collect();
    assert_eq!(kinds, [Urgencia::Deuda, Urgencia::Vencimiento, Urgencia::SaldoBajo]);
    let cases =
        [(None, 3), (Some(Urgencia::SaldoBajo), 2), (Some(Urgencia::Vencimiento), 1), (Some(Urgencia::Deuda), 0)];
    for (sent, n) in cases {
        assert_eq!(to_send(items.clone(), sent).len(), n, "{sent:?}");
    }
    assert_eq!(
        keys(&items),
        ["recordatorio_deuda:42:5:3", "tarjeta_por_vencer:T3:2026-12-20", "saldo_bajo:recordatorio:T1:2026-12-02"]
    );
}

/// Per channel: only the items whose type is on there; the most urgent leads, the others ride as "Además".
#[test]
fn compose_carries_the_items_on_for_the_channel() {
    let mut f = facts();
    f.bajas = vec![baja("T1", Some("2026-12-01"))];
    f.vencimientos = vec![vence("T3", "2026-12-20", false)];
    f.deudas = vec![deuda("T2", "Luis", -3_000, "2026-12-01", 5)];
    let items = due_items(&f, d("2026-12-05"), S, 15, "x");
    let all = compose(&items, ChannelKind::Email, |_, _| true).unwrap();
    assert_eq!(all.tipo, NotificationType::RecordatorioDeuda);
    assert_eq!(all.data.ademas().len(), 2);
    assert!(all.data.ademas()[0].texto.contains("vence el 20/12/2026"), "{:?}", all.data.ademas());
    let no_debt = compose(&items, ChannelKind::Sms, |t, _| t != NotificationType::RecordatorioDeuda).unwrap();
    assert_eq!(no_debt.tipo, NotificationType::TarjetaPorVencer);
    assert_eq!(no_debt.key, "tarjeta_por_vencer:T3:2026-12-20");
    assert_eq!(no_debt.data.ademas().len(), 1);
    assert!(compose(&items, ChannelKind::Sms, |_, _| false).is_none());
}

/// A low card's line under "Además" reads a balance below zero as a debt, not as money left ("tiene Gs. -1.500").
#[test]
fn a_low_cards_line_reads_a_negative_balance_as_a_debt() {
    let mut f = facts();
    f.bajas.push(LowFact { saldo: -1_500, ..baja("T1", Some("2026-12-01")) });
    f.bajas.push(LowFact {
        nro_tarjeta: "T2".into(),
        alumno: "Sofía Benítez".into(),
        ..baja("T2", Some("2026-12-01"))
    });
    let items = due_items(&f, d("2026-12-02"), S, 15, "02/12/2026 08:00");
    let low = items.iter().find(|i| i.tipo == NotificationType::SaldoBajo).expect("a low-balance item");
    assert_eq!(
        low.resumen.texto,
        "Saldo bajo: Luis Benítez debe Gs. 1.500 y Sofía Benítez tiene Gs. 3.000. Recargue en el portal de padres o en \
         la cantina."
    );
}
