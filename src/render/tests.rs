use super::*;
use crate::domain::{Guaranies, NotificationType};
use crate::render::layout::dia_mes;
use crate::rules::test_support::tarjeta;
use crate::rules::{Ademas, AvisoDeuda, AvisoSaldoBajo, NivelRecordatorio, TarjetaDeuda, TarjetaSaldoBajo};

const PORTAL: &str = "https://portal.example/";

fn recarga(alumno: &str) -> MessageData {
    MessageData::RecargaExitosa {
        padre: "Ana".into(),
        alumno: alumno.into(),
        nro_tarjeta: "0001".into(),
        monto: Guaranies(50_000),
        saldo: Guaranies(62_500),
        fecha: "23/11/2026 19:45".into(),
        referencia: Some("caja 2".into()),
    }
}

fn saldo_bajo(alumno: &str) -> MessageData {
    MessageData::SaldoBajo(AvisoSaldoBajo::una(
        "Ana".into(),
        tarjeta(alumno, "0001", 3_000, 5_000),
        "23/11/2026 12:10".into(),
    ))
}

/// The daily sweep's notice: one per parent, all of their low cards.
fn saldo_bajo_varias(tarjetas: Vec<TarjetaSaldoBajo>) -> MessageData {
    MessageData::SaldoBajo(AvisoSaldoBajo::varias("Ana".into(), tarjetas, "23/11/2026 18:00".into()).unwrap())
}

fn dos(alumno: &str) -> MessageData {
    saldo_bajo_varias(vec![tarjeta(alumno, "1001", 3_000, 5_000), tarjeta("Inés Pérez", "1002", 1_500, 5_000)])
}

fn bloqueo(alumno: &str) -> MessageData {
    MessageData::TarjetaBloqueada {
        padre: "Ana".into(),
        alumno: alumno.into(),
        nro_tarjeta: "0001".into(),
        fecha: "23/11/2026 08:05".into(),
    }
}

/// The POS button with the staff's text (no á/í/ó/ú of its own, so the name decides the SMS encoding).
fn mensaje(alumno: &str) -> MessageData {
    MessageData::MensajeCantina {
        padre: "Ana".into(),
        alumno: Some(alumno.into()),
        mensaje: format!("Hola, {alumno} tiene su almuerzo en la cantina.\nPuede pasar a retirarlo hasta las 14:00."),
        fecha: "23/11/2026 11:20".into(),
    }
}

fn consumo(alumno: &str) -> MessageData {
    MessageData::ConsumoRealizado {
        padre: "Ana".into(),
        alumno: alumno.into(),
        nro_tarjeta: "0001".into(),
        // The POS's text decides the SMS encoding like a name does: no á/í/ó/ú here.
        detalle: "Almuerzo completo".into(),
        monto: Guaranies(25_000),
        saldo: Guaranies(40_000),
        fecha: "23/11/2026 12:15".into(),
    }
}

/// A day with two children: two purchases of one, one of the other.
fn resumen(alumno: &str) -> MessageData {
    use crate::rules::{Consumo, ConsumosHijo, ResumenConsumos};
    let c = |hora: &str, detalle: &str, monto: i64| Consumo {
        hora: hora.into(),
        detalle: detalle.into(),
        monto: Guaranies(monto),
    };
    MessageData::ResumenConsumos(ResumenConsumos {
        padre: "Ana".into(),
        fecha: "23/11/2026".into(),
        hijos: vec![
            ConsumosHijo {
                alumno: alumno.into(),
                nro_tarjeta: "0001".into(),
                consumos: vec![c("09:40", "Empanada", 8_000), c("12:15", "Almuerzo del día", 25_000)],
                saldo: Guaranies(40_000),
            },
            ConsumosHijo {
                alumno: "Inés Pérez".into(),
                nro_tarjeta: "0002".into(),
                consumos: vec![c("10:05", "Jugo", 6_000)],
                saldo: Guaranies(12_000),
            },
        ],
    })
}

fn cuenta(cliente: &str) -> MessageData {
    MessageData::CuentaPendiente {
        padre: "Ana".into(),
        cliente: cliente.into(),
        ruc_ci: "4567890-1".into(),
        monto: Guaranies(185_000),
        ventas: 4,
        desde: "09/11/2026".into(),
    }
}

fn deuda(alumno: &str, dias: i32) -> MessageData {
    MessageData::RecordatorioDeuda(AvisoDeuda {
        padre: "Ana".into(),
        tarjetas: vec![TarjetaDeuda {
            alumno: alumno.into(),
            nro_tarjeta: "0001".into(),
            monto: Guaranies(12_500),
            desde: "20/11/2026".into(),
        }],
        dias,
        nivel: NivelRecordatorio::for_days(dias),
        ademas: Vec::new(),
    })
}

/// A family's reminder: two cards, each with its own date, and the other items of the day's message.
fn deuda_familia(alumno: &str) -> MessageData {
    MessageData::RecordatorioDeuda(AvisoDeuda {
        padre: "Ana".into(),
        tarjetas: vec![
            TarjetaDeuda {
                alumno: alumno.into(),
                nro_tarjeta: "0001".into(),
                monto: Guaranies(12_500),
                desde: "20/11/2026".into(),
            },
            TarjetaDeuda {
                alumno: "Inés Pérez".into(),
                nro_tarjeta: "0002".into(),
                monto: Guaranies(3_000),
                desde: "22/11/2026".into(),
            },
        ],
        dias: 7,
        nivel: NivelRecordatorio::Urgente,
        ademas: vec![Ademas {
            texto: format!(
                "La tarjeta 0003 de {alumno} vence el 20/12/2026: renuévela en la cantina antes de esa fecha."
            ),
            breve: format!("tarjeta de {alumno} vence el 20/12"),
        }],
    })
}

fn por_vencer(alumno: &str) -> MessageData {
    MessageData::TarjetaPorVencer {
        padre: "Ana".into(),
        alumno: alumno.into(),
        nro_tarjeta: "0003".into(),
        vence: "20/12/2026".into(),
        dias: 15,
        ademas: Vec::new(),
    }
}

fn vencida(alumno: &str) -> MessageData {
    MessageData::TarjetaVencida {
        padre: "Ana".into(),
        alumno: alumno.into(),
        nro_tarjeta: "0003".into(),
        vencio: "20/12/2026".into(),
        ademas: Vec::new(),
    }
}

/// Each type's cases, named `alumno` where the type names a student. Exhaustive: a new type does not compile
/// until it has its cases here, and every test that loops over [`all`] then renders it.
fn cases(t: NotificationType, alumno: &str) -> Vec<MessageData> {
    match t {
        NotificationType::SaldoBajo => vec![saldo_bajo(alumno), dos(alumno)],
        NotificationType::RecargaExitosa => vec![recarga(alumno)],
        NotificationType::CuentaPendiente => vec![cuenta(alumno)],
        NotificationType::RecordatorioDeuda => {
            vec![deuda(alumno, 3), deuda(alumno, 7), deuda(alumno, 15), deuda_familia(alumno)]
        }
        NotificationType::TarjetaBloqueada => vec![bloqueo(alumno)],
        NotificationType::MensajeCantina => vec![mensaje(alumno)],
        NotificationType::TarjetaPorVencer => vec![por_vencer(alumno)],
        NotificationType::TarjetaVencida => vec![vencida(alumno)],
        NotificationType::ConsumoRealizado => vec![consumo(alumno)],
        NotificationType::ResumenConsumos => vec![resumen(alumno)],
    }
}

/// Every type's cases, following `NotificationType::ALL`.
fn all(alumno: &str) -> Vec<MessageData> {
    NotificationType::ALL.into_iter().flat_map(|t| cases(t, alumno)).collect()
}

#[test]
fn every_type_has_cases_of_its_own_type() {
    for t in NotificationType::ALL {
        let cases = cases(t, "Luis");
        assert!(!cases.is_empty(), "{t}");
        assert!(cases.iter().all(|d| d.notification_type() == t), "{t}");
    }
}

/// What a type's email shows: the amount, the button, its link under the portal, the header colour. Exhaustive
/// like [`cases`].
fn layouts(t: NotificationType) -> Vec<(MessageData, &'static str, &'static str, &'static str, &'static str)> {
    match t {
        NotificationType::RecargaExitosa => {
            vec![(recarga("Luis"), "Gs. 50.000", "Ver Movimientos", "/movimientos", "#1e7e34")]
        }
        NotificationType::SaldoBajo => {
            vec![(saldo_bajo("Luis"), "Gs. 3.000", "Realizar Recarga", "/recargas", "#c82333")]
        }
        NotificationType::TarjetaBloqueada => vec![(bloqueo("Luis"), "Bloqueada", "Ir al portal", "", "#495057")],
        // No amount: the staff's text is what the email shows.
        NotificationType::MensajeCantina => {
            vec![(mensaje("Luis"), "tiene su almuerzo en la cantina.", "Ir al portal", "", "#0b6fa4")]
        }
        NotificationType::CuentaPendiente => {
            vec![(cuenta("Ana Gómez"), "Gs. 185.000", "Ver mi cuenta", "/cuenta", "#f5a300")]
        }
        NotificationType::ConsumoRealizado => {
            vec![(consumo("Luis"), "Gs. 25.000", "Ver Movimientos", "/movimientos", "#0b6fa4")]
        }
        NotificationType::ResumenConsumos => {
            vec![(resumen("Luis"), "Gs. 39.000", "Ver Movimientos", "/movimientos", "#0b6fa4")]
        }
        NotificationType::RecordatorioDeuda => vec![
            (deuda("Luis", 3), "Gs. 12.500", "Realizar Recarga", "/recargas", "#0b6fa4"),
            (deuda("Luis", 7), "Gs. 12.500", "Realizar Recarga", "/recargas", "#f5a300"),
            (deuda("Luis", 15), "Gs. 12.500", "Realizar Recarga", "/recargas", "#b02a37"),
            (deuda_familia("Luis"), "Gs. 15.500", "Realizar Recarga", "/recargas", "#f5a300"),
        ],
        NotificationType::TarjetaPorVencer => vec![(por_vencer("Luis"), "20/12/2026", "Ir al portal", "", "#f5a300")],
        NotificationType::TarjetaVencida => vec![(vencida("Luis"), "Vencida", "Ir al portal", "", "#495057")],
    }
}

/// The shared layout every email has, whatever its type: a whole document, fluid and Outlook-safe, preheader,
/// footer, no images or scripts; the plain text with the portal link on its own line and no HTML.
fn assert_shared_layout(data: &MessageData) {
    let kind = data.notification_type();
    let r = render(data, PORTAL).unwrap();
    let h = &r.html;
    assert!(h.starts_with("<!DOCTYPE html>") && h.trim_end().ends_with("</html>"), "{kind}");
    // Robust layout: fluid 600 px container, ghost table for Outlook, preheader, footer, no images or scripts.
    assert!(h.contains("max-width:600px") && h.contains("<!--[if mso]>"), "{kind}");
    assert!(h.contains("mso-hide:all"), "{kind}: preheader");
    assert!(h.contains("Consultas: administración de la cantina"), "{kind}: footer");
    assert!(h.contains("href=\"https://portal.example/preferencias\""), "{kind}");
    assert!(!h.contains("<img") && !h.contains("<script") && !h.contains("url("), "{kind}");
    // Plain text: the portal link on its own line, the footer; no HTML left over.
    assert!(r.text.lines().any(|l| l.starts_with("https://portal.example")), "{kind}: {}", r.text);
    assert!(r.text.contains("Cantina Tita · Consultas"), "{kind}");
    assert!(!r.text.contains('<') && !r.text.contains("&nbsp;"), "{kind}: {}", r.text);
    assert!(!r.text.contains("\n\n\n") && r.text.ends_with(".example/preferencias\n"), "{kind}: {:?}", r.text);
    assert!(!r.subject.is_empty() && !r.short.is_empty(), "{kind}");
}

/// What `send-test --type` sends renders with the shared layout, for every type (no case to write for it).
#[test]
fn every_types_sample_renders_with_the_shared_layout() {
    for t in NotificationType::ALL {
        assert_shared_layout(&MessageData::sample(t));
    }
}

#[test]
fn recarga_has_amounts_in_guaranies_and_a_portal_button() {
    let r = render(&recarga("Luis Pérez"), PORTAL).unwrap();
    assert_eq!(r.subject, "Recarga exitosa de Gs. 50.000 - Luis Pérez");
    assert!(r.html.contains("Gs. 50.000") && r.html.contains("Gs. 62.500"));
    assert!(r.html.contains("href=\"https://portal.example/movimientos\""));
    assert!(r.html.contains("Ver Movimientos"));
    assert!(r.html.contains("Detalles de la transacción") && r.html.contains("caja 2"));
    assert!(r.text.contains("Monto cargado: Gs. 50.000\n"), "{}", r.text);
    assert!(r.text.contains("- Nuevo saldo: Gs. 62.500\n"));
    assert!(r.text.contains("- Referencia: caja 2\n"));
    assert!(r.text.contains("\nhttps://portal.example/movimientos\n"), "the link on its own line: {}", r.text);
    assert_eq!(r.short, "Cantina Tita: recarga de Gs. 50.000 confirmada para Luis Pérez. Saldo actual: Gs. 62.500.");
}

#[test]
fn every_kind_renders_with_its_amount_button_and_layout() {
    for (data, amount, button, href, colour) in NotificationType::ALL.into_iter().flat_map(layouts) {
        let kind = data.notification_type();
        assert_shared_layout(&data);
        let r = render(&data, PORTAL).unwrap();
        let h = &r.html;
        assert!(h.contains(amount), "{kind}: amount {amount}");
        assert!(h.contains(&format!(">{button}</span>")), "{kind}: button {button}");
        assert!(h.contains(&format!("href=\"https://portal.example{href}\"")), "{kind}: link {href}");
        assert!(h.contains(&format!("bgcolor=\"{colour}\"")), "{kind}: header colour {colour}");
        assert!(r.text.contains(amount), "{kind}: {}", r.text);
    }
}

#[test]
fn font_sizes_are_readable() {
    for data in all("Luis") {
        let r = render(&data, PORTAL).unwrap();
        for size in r.html.split("font-size:").skip(1) {
            let px: u32 = size.split("px").next().unwrap().parse().unwrap();
            assert!(px >= 14 || px == 1, "{}: font-size {px}px", data.notification_type());
        }
    }
}

#[test]
fn names_from_the_database_are_escaped_in_html_only() {
    for data in all("<script>alert(1)</script>") {
        let r = render(&data, "https://p").unwrap();
        let kind = data.notification_type();
        assert!(!r.html.contains("<script>"), "{kind}: {}", r.html);
        assert!(!r.html.contains("alert(1)</"), "{kind}");
        assert!(r.html.contains("&lt;script&gt;"), "{kind}");
        assert!(r.text.contains("<script>alert(1)</script>"), "{kind}: {}", r.text);
    }
    // Quotes cannot break out of an attribute either.
    let r = render(&recarga("x"), "https://p\" onmouseover=\"x").unwrap();
    assert!(!r.html.contains("\" onmouseover"));
}

#[test]
fn recarga_without_reference_has_no_empty_row() {
    let mut d = recarga("Luis");
    if let MessageData::RecargaExitosa { referencia, .. } = &mut d {
        *referencia = None;
    }
    let r = render(&d, PORTAL).unwrap();
    assert!(!r.html.contains("Referencia") && !r.text.contains("Referencia"));
}

#[test]
fn text_parts_carry_the_key_data() {
    let r = render(&saldo_bajo("Luis Benítez"), PORTAL).unwrap();
    assert_eq!(r.subject, "Saldo bajo en la tarjeta de Luis Benítez: Gs. 3.000");
    for needle in ["Hola Ana,", "Saldo actual: Gs. 3.000", "- Tarjeta: 0001", "- Monto de aviso: Gs. 5.000"] {
        assert!(r.text.contains(needle), "{needle}: {}", r.text);
    }
    assert!(r.text.contains("Realizar una recarga en el portal:\nhttps://portal.example/recargas\n"));

    let r = render(&cuenta("Comercial Ñandutí S.A."), PORTAL).unwrap();
    for needle in [
        "Monto adeudado: Gs. 185.000",
        "- Cliente: Comercial Ñandutí S.A.",
        "- RUC / CI: 4567890-1",
        "- Compras pendientes: 4",
        "Formas de pago",
        "podría suspenderse",
    ] {
        assert!(r.text.contains(needle), "{needle}: {}", r.text);
        assert!(r.html.contains(needle.trim_start_matches("- ").split(':').next().unwrap()), "{needle}");
    }
    assert!(r.html.contains("podría suspenderse"));

    let r = render(&bloqueo("Luis"), PORTAL).unwrap();
    assert_eq!(r.subject, "Tarjeta bloqueada - Luis");
    assert!(r.text.contains("- Fecha del bloqueo: 23/11/2026 08:05") && r.text.contains("- Estado: Bloqueada"));
    assert!(r.text.contains("Portal de padres:\nhttps://portal.example\n"), "{}", r.text);
}

#[test]
fn reminder_levels_differ_in_tone_and_colour() {
    let [a, u, c] = [3, 7, 15].map(|d| render(&deuda("Luis", d), PORTAL).unwrap());
    assert_eq!(a.subject, "Recordatorio de saldo pendiente - Luis");
    assert_eq!(u.subject, "Saldo pendiente: recordatorio urgente - Luis");
    assert_eq!(c.subject, "Saldo pendiente: aviso final - Luis");
    assert!(a.text.contains("Le recordamos") && !a.text.contains("Importante"));
    assert!(u.text.contains("después de 7 días"));
    assert!(c.text.contains("lleva 15 días") && c.text.contains("Importante: si el saldo no se regulariza"));
    assert!(c.html.contains("podrá restringirse"));
    for r in [&a, &u, &c] {
        assert!(r.text.contains("Monto adeudado: Gs. 12.500") && r.text.contains("- Días con saldo negativo: "));
    }
    assert_eq!(
        a.short,
        "Cantina Tita: la tarjeta de Luis tiene saldo negativo de Gs. 12.500 desde el 20/11. Cuando pueda, realice una recarga."
    );
    assert!(u.short.starts_with("Cantina Tita, importante: la tarjeta de Luis "), "{}", u.short);
    assert!(c.short.starts_with("Cantina Tita, aviso final: la tarjeta de Luis "), "{}", c.short);
    assert_eq!(dia_mes("05/01/2027 10:00"), "05/01");
    assert_eq!(dia_mes("2027-01-05"), "2027-01-05", "another format is kept whole");
}

#[test]
fn short_texts_fit_one_gsm7_segment_for_typical_names() {
    // é and ñ are GSM-7: such names keep the short text GSM-7 as rendered.
    for data in all("Juan Pérez Ibañez") {
        let r = render(&data, PORTAL).unwrap();
        if !data.ademas().is_empty() {
            // A family's daily message with other items may take a second segment.
            assert_eq!(sms_encoding(&r.short), (Encoding::Gsm7, 2), "{}: {}", data.notification_type(), r.short);
            continue;
        }
        assert!(r.short.chars().count() <= 160, "{}: {}", data.notification_type(), r.short);
        assert_eq!(sms_encoding(&r.short), (Encoding::Gsm7, 1), "{}: {}", data.notification_type(), r.short);
    }
    // A long name with á/í/ó/ú: UCS-2 as rendered, one GSM-7 segment once transliterated for SMS.
    for data in all("María José Giménez Benítez") {
        let r = render(&data, PORTAL).unwrap();
        let named = r.short.contains("María José Giménez Benítez"); // the account notice names no one
        assert_eq!(sms_encoding(&r.short).0 == Encoding::Ucs2, named, "{}", r.short);
        let sms = sms_text(&r.short);
        assert!(!sms.contains('í') && !sms.contains('á'), "{sms}");
        let segments = if data.ademas().is_empty() { 1 } else { 2 };
        assert_eq!(sms_encoding(&sms), (Encoding::Gsm7, segments), "{}: {sms}", data.notification_type());
    }
}

#[test]
fn summary_fits_the_mensaje_column() {
    let long = "x".repeat(400);
    assert!(summary(&recarga(&long)).chars().count() <= 255);
    assert_eq!(
        summary(&recarga("Luis")),
        "Cantina Tita: recarga de Gs. 50.000 confirmada para Luis. Saldo actual: Gs. 62.500."
    );
}

#[test]
fn gsm7_detection_follows_the_03_38_tables() {
    assert_eq!(sms_encoding(""), (Encoding::Gsm7, 1));
    assert_eq!(sms_encoding("Hola Begoña, ¿todo bien? Pérez, Müller, Ñandú"), (Encoding::Ucs2, 1));
    for gsm in ["é", "É", "ñ", "Ñ", "ü", "Ü", "è", "ù", "ì", "ò", "à", "Ç", "¿", "¡", "@", "£", "$", "_", "§", "Δ"]
    {
        assert_eq!(sms_encoding(gsm).0, Encoding::Gsm7, "{gsm} is in the basic table");
    }
    for ucs in ["á", "í", "ó", "ú", "Á", "Í", "Ó", "Ú", "ç", "₲", "😀", "`", "ã", "’"] {
        assert_eq!(sms_encoding(ucs).0, Encoding::Ucs2, "{ucs} is not GSM-7");
    }
    // Extension characters are GSM-7 but take two septets.
    assert_eq!(sms_encoding(&"€".repeat(80)), (Encoding::Gsm7, 1));
    assert_eq!(sms_encoding(&"€".repeat(81)), (Encoding::Gsm7, 2));
    assert_eq!(sms_encoding(&format!("{}€", "a".repeat(159))), (Encoding::Gsm7, 2));
    assert_eq!(sms_encoding("[{}]~|^\\"), (Encoding::Gsm7, 1));
}

#[test]
fn segments_are_153_septets_or_67_units_when_concatenated() {
    assert_eq!(sms_encoding(&"a".repeat(160)), (Encoding::Gsm7, 1));
    assert_eq!(sms_encoding(&"a".repeat(161)), (Encoding::Gsm7, 2));
    assert_eq!(sms_encoding(&"a".repeat(306)), (Encoding::Gsm7, 2));
    assert_eq!(sms_encoding(&"a".repeat(307)), (Encoding::Gsm7, 3));
    // An escape pair is never split: 152 septets + € does not fit the first part's 153.
    assert_eq!(sms_encoding(&format!("{}€{}", "a".repeat(152), "a".repeat(10))), (Encoding::Gsm7, 2));
    assert_eq!(sms_encoding(&format!("{}€{}", "a".repeat(152), "a".repeat(152))), (Encoding::Gsm7, 3));

    assert_eq!(sms_encoding(&"á".repeat(70)), (Encoding::Ucs2, 1));
    assert_eq!(sms_encoding(&"á".repeat(71)), (Encoding::Ucs2, 2));
    assert_eq!(sms_encoding(&"á".repeat(134)), (Encoding::Ucs2, 2));
    assert_eq!(sms_encoding(&"á".repeat(135)), (Encoding::Ucs2, 3));
    // An emoji is two UTF-16 units and is not split across parts.
    assert_eq!(sms_encoding(&format!("{}😀", "a".repeat(68))), (Encoding::Ucs2, 1));
    assert_eq!(sms_encoding(&format!("{}😀", "a".repeat(69))), (Encoding::Ucs2, 2));
    assert_eq!(sms_encoding(&format!("{}😀{}", "a".repeat(66), "a".repeat(5))), (Encoding::Ucs2, 2));
    // A 100-character Spanish text: one GSM-7 segment, two as UCS-2 because of one "á".
    let text = format!("{}á", "a".repeat(99));
    assert_eq!(sms_encoding(&text), (Encoding::Ucs2, 2));
    assert_eq!(sms_encoding(&sms_text(&text)), (Encoding::Gsm7, 1));
}

#[test]
fn sms_text_transliterates_what_gsm7_lacks_and_keeps_what_it_has() {
    assert_eq!(sms_text("María Ángeles Núñez Ibáñez, Óscar Ríos"), "Maria Angeles Nuñez Ibañez, Oscar Rios");
    assert_eq!(sms_text("Pérez Müller ÑANDÚ ¿sí?"), "Pérez Müller ÑANDU ¿si?");
    assert_eq!(sms_text("₲ 50.000 – “pago”…"), "Gs. 50.000 - \"pago\"...");
    assert_eq!(sms_text("Ka\u{2019}a g\u{303}uasu, Avañe\u{2019}ẽ"), "Ka'a guasu, Avañe'e");
    assert_eq!(sms_text("Luis 😀"), "Luis 😀", "no equivalent: kept");
    for data in all("José María Ñúñez") {
        let sms = sms_text(&render(&data, PORTAL).unwrap().short);
        assert_eq!(sms_encoding(&sms).0, Encoding::Gsm7, "{sms}");
    }
}

#[test]
fn saldo_bajo_with_one_card_keeps_its_wording() {
    let r = render(&saldo_bajo("Luis Benítez"), PORTAL).unwrap();
    assert!(r.text.contains("El saldo de la tarjeta de Luis Benítez quedó por debajo de Gs. 5.000."), "{}", r.text);
    assert!(r.html.contains(
        "El saldo de la tarjeta de <strong>Luis Benítez</strong> quedó por debajo de <strong>Gs. 5.000</strong>."
    ));
    assert!(r.text.contains("Saldo actual: Gs. 3.000\n") && r.text.contains("Datos del alumno\n"), "{}", r.text);
    assert_eq!(
        r.short,
        "Cantina Tita: saldo bajo en la tarjeta de Luis Benítez: Gs. 3.000. Recargue en el portal de padres o en la cantina."
    );
}

#[test]
fn saldo_bajo_with_several_cards_lists_each_with_its_balance() {
    let r = render(&dos("Ana Pérez"), PORTAL).unwrap();
    assert_eq!(r.subject, "Saldo bajo en las tarjetas de Ana Pérez y Inés Pérez");
    for needle in [
        "Hola Ana,",
        "El saldo de las tarjetas de Ana Pérez y Inés Pérez quedó por debajo del monto de aviso.",
        "Tarjetas con saldo bajo\n",
        "- Ana Pérez (tarjeta 1001): Gs. 3.000\n",
        "- Inés Pérez (tarjeta 1002): Gs. 1.500\n",
        "- Monto de aviso: Gs. 5.000\n",
        "- Fecha: 23/11/2026 18:00\n",
    ] {
        assert!(r.text.contains(needle), "{needle}: {}", r.text);
    }
    // No single highlighted figure, no "Saldo actual" of one card.
    assert!(!r.text.contains("Saldo actual") && !r.html.contains("class=\"ct-monto\""), "{}", r.text);
    assert!(r.html.contains("de <strong>Ana Pérez</strong> y <strong>Inés Pérez</strong> quedó"), "{}", r.html);
    assert!(r.html.contains("Ana Pérez (tarjeta 1001)") && r.html.contains("Gs. 1.500"));
    assert!(r.html.contains("Las tarjetas de Ana Pérez y Inés Pérez tienen saldo bajo."), "preheader");
    assert_eq!(
        r.short,
        "Cantina Tita: saldo bajo en las tarjetas de Ana Pérez (Gs. 3.000) y Inés Pérez (Gs. 1.500). Recargue en el portal de padres o en la cantina."
    );
}

#[test]
fn saldo_bajo_cards_with_their_own_thresholds_say_each() {
    let r = render(
        &saldo_bajo_varias(vec![
            tarjeta("Luis", "1", 3_000, 5_000),
            tarjeta("Sofía", "2", 8_000, 10_000),
            tarjeta("Tomás", "3", 0, 5_000),
        ]),
        PORTAL,
    )
    .unwrap();
    assert_eq!(r.subject, "Saldo bajo en las tarjetas de Luis, Sofía y Tomás");
    assert!(r.text.contains("- Sofía (tarjeta 2): Gs. 8.000 (monto de aviso Gs. 10.000)\n"), "{}", r.text);
    assert!(r.text.contains("- Tomás (tarjeta 3): Gs. 0 (monto de aviso Gs. 5.000)\n"), "{}", r.text);
    assert!(!r.text.contains("- Monto de aviso:"), "{}", r.text);
    assert!(r.text.contains("tarjetas de Luis, Sofía y Tomás quedó"), "{}", r.text);
}

#[test]
fn saldo_bajo_short_text_for_several_cards_stays_one_sms_segment() {
    let nombres = ["María José Giménez Benítez", "Juan Pablo Giménez Benítez", "Ana Sofía Giménez Benítez"];
    // Two names with their balances fit.
    let short_names = saldo_bajo_varias(vec![
        tarjeta("María José Giménez", "1", 3_000, 5_000),
        tarjeta("Juan Giménez", "2", 0, 5_000),
    ]);
    assert_eq!(
        render(&short_names, PORTAL).unwrap().short,
        "Cantina Tita: saldo bajo en las tarjetas de María José Giménez (Gs. 3.000) y Juan Giménez (Gs. 0). Recargue en el portal de padres o en la cantina."
    );
    // Two long names: the balances go (they are in the email and the portal), the names stay.
    let two = saldo_bajo_varias(nombres[..2].iter().map(|n| tarjeta(n, "1", 3_000, 5_000)).collect());
    assert_eq!(
        render(&two, PORTAL).unwrap().short,
        "Cantina Tita: saldo bajo en las tarjetas de María José Giménez Benítez y Juan Pablo Giménez Benítez. Recargue en el portal de padres o en la cantina."
    );
    // Too long even for the names: how many, and where to look.
    let three = saldo_bajo_varias(nombres.iter().map(|n| tarjeta(n, "1", 3_000, 5_000)).collect());
    let five = saldo_bajo_varias((0..5).map(|i| tarjeta(nombres[i % 3], "1", 3_000, 5_000)).collect());
    assert_eq!(
        render(&three, PORTAL).unwrap().short,
        "Cantina Tita: saldo bajo en 3 tarjetas de sus hijos. Vea el detalle y recargue en el portal de padres o en la cantina."
    );
    assert_eq!(
        render(&five, PORTAL).unwrap().short,
        "Cantina Tita: saldo bajo en 5 tarjetas de sus hijos. Vea el detalle y recargue en el portal de padres o en la cantina."
    );
    for data in [short_names, two, three, five] {
        let sms = sms_text(&render(&data, PORTAL).unwrap().short);
        assert_eq!(sms_encoding(&sms), (Encoding::Gsm7, 1), "{sms}");
    }
}

#[test]
fn mensaje_cantina_carries_the_staffs_text_escaped_with_its_line_breaks() {
    let data = MessageData::MensajeCantina {
        padre: "Ana".into(),
        alumno: Some("Tomás Benítez".into()),
        mensaje: "  Hola, Tomás olvidó su almuerzo <b>& la mochila</b>.\r\nPuede retirarlo \"hoy\".\n\nGracias  "
            .into(),
        fecha: "23/11/2026 11:20".into(),
    };
    let r = render(&data, PORTAL).unwrap();
    assert_eq!(r.subject, "Mensaje de la cantina - Tomás Benítez");
    // HTML: escaped (nothing the staff type is markup), each line break a <br> (the shared layout is checked with
    // the other types in `every_kind_renders_with_its_amount_button_and_layout`).
    assert!(
        r.html.contains(
            "Hola, Tomás olvidó su almuerzo &lt;b&gt;&amp; la mochila&lt;/b&gt;.<br>Puede retirarlo &quot;hoy&quot;.<br><br>Gracias</td>"
        ),
        "{}",
        r.html
    );
    assert!(!r.html.contains("<b>"));
    assert!(r.html.contains("Hola Ana,") && r.html.contains("Tomás Benítez"));
    assert!(!r.html.contains("saldo") && !r.html.contains("Recargue"));
    // Plain text: the text as written, its lines kept.
    assert!(
        r.text.contains("Hola, Tomás olvidó su almuerzo <b>& la mochila</b>.\nPuede retirarlo \"hoy\".\n\nGracias\n"),
        "{}",
        r.text
    );
    assert!(r.text.contains("- Alumno: Tomás Benítez") && r.text.contains("Cantina Tita"), "{}", r.text);
    // SMS / WhatsApp fallback / portal: the text as is (trimmed), after the sender's name that every SMS starts with
    // (a parent must know who writes before reading "Tomás olvidó…" from an unknown number).
    assert_eq!(
        r.short,
        "Cantina Tita: Hola, Tomás olvidó su almuerzo <b>& la mochila</b>.\r\nPuede retirarlo \"hoy\".\n\nGracias"
    );
    assert_eq!(
        data.template_parameters(),
        [
            "Ana",
            "Hola, Tomás olvidó su almuerzo <b>& la mochila</b>. Puede retirarlo \"hoy\". Gracias",
            "23/11/2026 11:20"
        ]
    );
}

#[test]
fn mensaje_cantina_without_a_card_names_no_student_and_a_long_text_is_sent_whole() {
    // The longest text the `mensaje` column holds: 255 characters, with accents.
    let texto: String =
        "Buenos días, mañana no habrá almuerzo por la jornada pedagógica. ".repeat(4).chars().take(255).collect();
    let data = MessageData::MensajeCantina {
        padre: "Ana".into(),
        alumno: None,
        mensaje: texto.clone(),
        fecha: "23/11/2026 11:20".into(),
    };
    let r = render(&data, PORTAL).unwrap();
    assert_eq!(r.subject, "Mensaje de la cantina");
    assert!(!r.text.contains("Alumno") && !r.html.contains("Alumno"));
    // Never cut: the whole text, in two concatenated GSM-7 segments once transliterated for SMS.
    assert_eq!(r.short, format!("Cantina Tita: {}", texto.trim()));
    // The `mensaje` column's copy is cut at its 255 characters (a POS row keeps the staff's own text there anyway).
    assert_eq!(summary(&data), r.short.chars().take(255).collect::<String>());
    assert_eq!(sms_encoding(&sms_text(&r.short)), (Encoding::Gsm7, 2));
}

#[test]
fn consumo_realizado_says_what_was_bought_for_how_much_and_the_balance_left() {
    let r = render(&consumo("Luis Pérez"), PORTAL).unwrap();
    assert_eq!(r.subject, "Consumo de Gs. 25.000 - Luis Pérez");
    assert!(r.html.contains("Almuerzo completo") && r.html.contains("Gs. 40.000"), "{}", r.html);
    assert!(r.text.contains("- Detalle: Almuerzo completo\n"), "{}", r.text);
    assert!(r.text.contains("- Fecha y hora: 23/11/2026 12:15\n"), "{}", r.text);
    assert!(r.text.contains("- Saldo de la tarjeta: Gs. 40.000\n"), "{}", r.text);
    assert_eq!(
        r.short,
        "Cantina Tita, compra de Luis Pérez: Almuerzo completo por Gs. 25.000 (23/11 12:15). Saldo: Gs. 40.000."
    );
    // A long `detalle` is cut in the short text, whole in the email.
    let long = "Combo almuerzo: milanesa con puré, ensalada mixta, jugo de naranja y postre";
    let MessageData::ConsumoRealizado { padre, alumno, nro_tarjeta, monto, saldo, fecha, .. } = consumo("Luis") else {
        unreachable!()
    };
    let data = MessageData::ConsumoRealizado { padre, alumno, nro_tarjeta, detalle: long.into(), monto, saldo, fecha };
    let r = render(&data, PORTAL).unwrap();
    assert!(r.text.contains(long));
    assert!(r.short.contains("Luis: Combo almuerzo: milanesa con puré, ensa… por"), "{}", r.short);
    assert!(sms_encoding(&sms_text(&r.short)).1 <= 2, "{}", r.short);
}

#[test]
fn resumen_consumos_lists_every_purchase_with_time_and_each_cards_balance() {
    let r = render(&resumen("Luis Pérez"), PORTAL).unwrap();
    assert_eq!(r.subject, "Consumos del 23/11/2026 en la cantina");
    let rows = [
        "- Luis Pérez · 09:40: Empanada · Gs. 8.000\n",
        "- Luis Pérez · 12:15: Almuerzo del día · Gs. 25.000\n",
        "- Saldo de Luis Pérez: Gs. 40.000\n",
        "- Inés Pérez · 10:05: Jugo · Gs. 6.000\n",
        "- Saldo de Inés Pérez: Gs. 12.000\n",
    ];
    let mut at = 0;
    for row in rows {
        let found = r.text[at..].find(row).unwrap_or_else(|| panic!("{row:?} in order in {}", r.text));
        at += found + row.len();
    }
    assert!(r.text.contains("Total del día: Gs. 39.000\n"), "{}", r.text);
    assert!(r.html.contains("Almuerzo del día") && r.html.contains("Saldo de Inés Pérez"));
    assert_eq!(
        r.short,
        "Cantina Tita: consumos del 23/11: Luis Pérez Gs. 33.000 (2 compras, saldo: Gs. 40.000); \
         Inés Pérez Gs. 6.000 (1 compra, saldo: Gs. 12.000)."
    );
    assert_eq!(
        resumen("Luis").template_parameters(),
        [
            "Ana",
            "23/11/2026",
            "Gs. 39.000",
            "Luis: 2 compras, Gs. 33.000 (saldo: Gs. 40.000); Inés Pérez: 1 compra, Gs. 6.000 (saldo: Gs. 12.000)"
        ]
    );
}

/// A family's daily message: the debt reminder lists each card with its own date and amount, the total as the
/// amount, and the other item under "Además" in the HTML, the text and (briefly) the short text.
#[test]
fn a_family_message_lists_each_card_and_the_other_items() {
    let r = render(&deuda_familia("Luis Pérez"), PORTAL).unwrap();
    assert_eq!(r.subject, "Saldo pendiente: recordatorio urgente - Luis Pérez y Inés Pérez (y 1 aviso más)");
    assert!(r.html.contains("Gs. 15.500") && r.html.contains("Monto adeudado en total"), "{}", r.html);
    assert!(r.text.contains("- Luis Pérez (tarjeta 0001): Gs. 12.500, desde el 20/11/2026\n"), "{}", r.text);
    assert!(r.text.contains("- Inés Pérez (tarjeta 0002): Gs. 3.000, desde el 22/11/2026\n"), "{}", r.text);
    assert!(
        r.text.contains(
            "Las tarjetas de Luis Pérez y Inés Pérez siguen con saldo negativo, la primera desde hace 7 días."
        ),
        "{}",
        r.text
    );
    assert!(r.html.contains("<strong>Además:</strong>") && r.html.contains("vence el 20/12/2026"), "{}", r.html);
    assert!(r.text.contains("Además:\n- La tarjeta 0003 de Luis Pérez vence el 20/12/2026"), "{}", r.text);
    assert_eq!(
        r.short,
        "Cantina Tita, importante: 2 tarjetas de sus hijos tienen saldo negativo de Gs. 15.500 en total desde el 20/11. Por favor, regularice a la brevedad. También: tarjeta de Luis Pérez vence el 20/12."
    );
    // Without other items, no "Además".
    let single = render(&deuda("Luis", 7), PORTAL).unwrap();
    assert!(!single.html.contains("Además") && !single.text.contains("Además") && !single.short.contains("También"));
}

#[test]
fn expiry_notices_say_when_and_what_to_do() {
    let p = render(&por_vencer("Luis Pérez"), PORTAL).unwrap();
    assert_eq!(p.subject, "Tarjeta por vencer - Luis Pérez");
    assert!(
        p.text.contains("La tarjeta de Luis Pérez vence el 20/12/2026.")
            && p.text.contains("renueve la tarjeta en la administración de la cantina"),
        "{}",
        p.text
    );
    assert_eq!(
        p.short,
        "Cantina Tita: la tarjeta 0003 de Luis Pérez vence el 20/12/2026. Renuévela en la cantina antes de esa fecha."
    );
    let v = render(&vencida("Luis Pérez"), PORTAL).unwrap();
    assert_eq!(v.subject, "Tarjeta vencida - Luis Pérez");
    assert!(
        v.text.contains("venció el 20/12/2026 y ya no puede usarse")
            && v.text.contains("Para volver a usarla, renueve"),
        "{}",
        v.text
    );
    assert_eq!(
        v.short,
        "Cantina Tita: la tarjeta 0003 de Luis Pérez ya no puede usarse: vencida el 20/12/2026. Renuévela en la cantina."
    );
}

/// A low-balance reminder (the family's daily message, while the card stays low) says since when, so it does not
/// read as a new drop: the crossing's own notice says the balance fell under the threshold.
#[test]
fn a_low_balance_reminder_says_since_when_the_card_is_low() {
    let mut aviso = AvisoSaldoBajo::una(
        "Ana".into(),
        TarjetaSaldoBajo {
            alumno: "Luis Benítez".into(),
            nro_tarjeta: "0001".into(),
            saldo: Guaranies(3_000),
            umbral: Guaranies(5_000),
        },
        "02/12/2026 08:00".into(),
    );
    aviso.desde = Some("01/12/2026".into());
    let data = MessageData::SaldoBajo(aviso);
    let r = render(&data, PORTAL).unwrap();
    assert_eq!(r.subject, "Recordatorio: saldo bajo en la tarjeta de Luis Benítez: Gs. 3.000");
    assert!(
        r.text.contains(
            "La tarjeta de Luis Benítez sigue con saldo bajo desde el 01/12/2026: quedó por debajo de Gs. 5.000."
        ),
        "{}",
        r.text
    );
    assert!(r.text.contains("- Saldo bajo desde: 01/12/2026\n") && !r.text.contains("- Fecha:"), "{}", r.text);
    assert!(r.html.contains("sigue con saldo bajo desde el <strong>01/12/2026</strong>"), "{}", r.html);
    assert_eq!(
        r.short,
        "Cantina Tita: saldo bajo en la tarjeta de Luis Benítez desde el 01/12: Gs. 3.000. Recargue en el portal de padres o en la cantina."
    );
    // Stored and read back with its date (a retry renders the same reminder).
    let back: MessageData = serde_json::from_value(serde_json::to_value(&data).unwrap()).unwrap();
    assert_eq!(back, data);
}
