use super::*;

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn data() -> SummaryData {
    let c = |tipo: Option<&str>, destino: Option<&str>, estado: &str, n: i64| Conteo {
        tipo: tipo.map(String::from),
        destino: destino.map(String::from),
        estado: estado.into(),
        n,
    };
    SummaryData {
        dia: Date::constant(2026, 11, 23),
        corte: at("2026-11-25T00:00:00Z"), // 24/11 21:00 local
        conteos: vec![
            c(Some("recarga_exitosa"), Some("Email"), "Enviado", 1250),
            c(Some("recarga_exitosa"), Some("Email"), "Error", 2),
            c(Some("recarga_exitosa"), Some("SMS"), "Enviado", 40),
            c(Some("recarga_exitosa"), Some("SMS"), "Pendiente", 1),
            c(Some("saldo_bajo"), Some("WhatsApp"), "Omitido", 3),
            c(Some("saldo_bajo"), Some("WhatsApp"), "Error", 1),
            c(None, Some("Email"), "Enviado", 2),
        ],
        motivos: vec![
            Motivo {
                motivo: "SMTP 550 de smtp.example.com:587: 5.1.1 <a***@example.com> no existe".into(),
                n: 2,
                destinos: vec!["Email".into()],
                ejemplos: vec![101, 107],
            },
            Motivo {
                motivo: "Meta 131026: mensaje no entregable".into(),
                n: 1,
                destinos: vec!["WhatsApp".into()],
                ejemplos: vec![130],
            },
        ],
        motivos_total: 2,
        recibos_fallidos: 0,
        pausas: Some(vec![Pausa {
            destino: "SMS".into(),
            motivo: "saldo de Tigo agotado".into(),
            pausado_por: "rocio".into(),
            pausado_en: at("2026-11-24T11:10:00Z"),
        }]),
        alertas: vec![Alerta {
            tipo: "SISTEMA".into(),
            estado: "Pendiente".into(),
            mensaje: "cantina-notify: canal SMS pausado".into(),
            creada: Some(at("2026-11-24T11:10:30Z")),
        }],
        alertas_total: 1,
        tarjetas: vec![
            TarjetaBaja {
                alumno: Some("Luis Benítez".into()), nro_tarjeta: "0001".into(), saldo: -1500, umbral: 5000
            },
            TarjetaBaja { alumno: None, nro_tarjeta: "0099".into(), saldo: 3000, umbral: 10000 },
        ],
        tarjetas_total: 30,
        umbral_defecto: 5000,
    }
}

const EXPECTED_TEXT: &str = "\
Resumen de notificaciones del lunes 23/11/2026
Período: lunes 23/11/2026, de 00:00 a 24:00 (hora de Asunción); estado actual de las solicitudes creadas ese día.

SOLICITUDES DEL DÍA: 1299
Enviado: 1292 · Pendiente: 1 · Error: 3 · Omitido: 3

Tipo             Canal     Enviado  Pendiente  Error  Omitido  Total
Manual (POS)     Email           2          0      0        0      2
Recarga exitosa  Email        1250          0      2        0   1252
Recarga exitosa  SMS            40          1      0        0     41
Saldo bajo       WhatsApp        0          0      1        3      4

FALLOS: 3 solicitudes en Error, 2 motivos
- 2 × SMTP 550 de smtp.example.com:587: 5.1.1 <a***@example.com> no existe
  Canal: Email. Ejemplos: #101, #107
- 1 × Meta 131026: mensaje no entregable
  Canal: WhatsApp. Ejemplos: #130

CANALES PAUSADOS: 1
- SMS, pausado el 24/11/2026 08:10 por rocio: saldo de Tigo agotado

ALERTAS ABIERTAS: 1
- 24/11/2026 08:10 · SISTEMA · Pendiente: cantina-notify: canal SMS pausado

TARJETAS BAJO EL UMBRAL: 30 (se muestran las 2 de menor saldo)
- Luis Benítez · tarjeta 0001 · saldo Gs. -1.500 (umbral Gs. 5.000)
- (sin alumno) · tarjeta 0099 · saldo Gs. 3.000 (umbral Gs. 10.000)
Umbral por defecto: Gs. 5.000 (CANTINA__RULES__SALDO_BAJO__UMBRAL); una tarjeta con su propio monto de aviso usa ese.

Canales pausados, alertas y tarjetas: situación al 24/11/2026 21:00.
Correo automático de cantina-notify para el personal de la cantina.
";

#[test]
fn the_text_part_is_exact_spanish_with_guaranies_and_local_times() {
    let r = render(&data(), None).unwrap();
    assert_eq!(r.subject, "Cantina Tita: resumen de notificaciones del 23/11/2026");
    assert_eq!(r.text, EXPECTED_TEXT, "\n{}", r.text);
}

#[test]
fn the_html_part_escapes_and_carries_the_same_figures() {
    let mut d = data();
    d.tarjetas[0].alumno = Some("<script>alert(1)</script>".into());
    let r = render(&d, None).unwrap();
    assert!(r.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{}", r.html);
    assert!(!r.html.contains("<script>"));
    for needle in [
        "Resumen de notificaciones del lunes 23/11/2026",
        "Gs. -1.500",
        "Gs. 10.000",
        "24/11/2026 08:10",
        "#101, #107",
        "saldo de Tigo agotado",
        "1252",
        "situación al 24/11/2026 21:00",
    ] {
        assert!(r.html.contains(needle), "missing {needle}");
    }
    assert!(r.html.starts_with("<!DOCTYPE html>"));
    assert!(r.html.contains("lang=\"es-PY\""));
}

#[test]
fn an_empty_day_says_so_and_unknown_pauses_are_not_called_none() {
    let d = SummaryData {
        conteos: vec![],
        motivos: vec![],
        motivos_total: 0,
        pausas: None,
        alertas: vec![],
        alertas_total: 0,
        tarjetas: vec![],
        tarjetas_total: 0,
        ..data()
    };
    let t = render(&d, Some("Informe {fecha} de la cantina")).unwrap();
    assert_eq!(t.subject, "Informe 23/11/2026 de la cantina");
    assert!(t.text.contains("SOLICITUDES DEL DÍA: 0\nNo se creó ninguna solicitud ese día.\n"), "{}", t.text);
    assert!(t.text.contains("FALLOS: ninguno\n"), "{}", t.text);
    assert!(t.text.contains("CANALES PAUSADOS: no se pudo consultar (falta la migración 0008)\n"), "{}", t.text);
    assert!(t.text.contains("ALERTAS ABIERTAS: ninguna\n"), "{}", t.text);
    assert!(t.text.contains("TARJETAS BAJO EL UMBRAL: ninguna\n"), "{}", t.text);
    let mut d2 = d.clone();
    d2.pausas = Some(vec![]);
    assert!(render(&d2, None).unwrap().text.contains("CANALES PAUSADOS: ninguno\n"));
}

#[test]
fn a_subject_without_placeholder_gets_the_date() {
    assert_eq!(subject(Some("Resumen Cantina"), Date::constant(2026, 1, 5)), "Resumen Cantina (05/01/2026)");
    assert_eq!(
        subject(Some("  "), Date::constant(2026, 1, 5)),
        "Cantina Tita: resumen de notificaciones del 05/01/2026"
    );
}

#[test]
fn the_reported_day_is_the_local_day_before_the_firing() {
    // 21:00 local on Tuesday 24/11 is 00:00 UTC on the 25th.
    assert_eq!(report_day(at("2026-11-25T00:00:00Z")), Date::constant(2026, 11, 23));
    // A retry at 01:30 local on the 25th of the firing of the 24th is given the firing's instant, not now.
    assert_eq!(report_day(at("2026-11-24T03:30:00Z")), Date::constant(2026, 11, 23));
    let (start, end) = day_bounds(Date::constant(2026, 11, 23));
    assert_eq!(start, at("2026-11-23T03:00:00Z"));
    assert_eq!(end, at("2026-11-24T03:00:00Z"));
}

#[test]
fn recipients_are_validated_with_the_key_and_masked() {
    let s = SummarySettings {
        destinatarios: vec!["admin@cantina.com.py".into(), "roto@".into(), "ADMIN@Cantina.com.py".into()],
        asunto: Some("dos\nlíneas".into()),
    };
    let errors = validate(&s);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].starts_with("CANTINA__RESUMEN_DIARIO__DESTINATARIOS: address 2 is invalid"), "{errors:?}");
    assert!(!errors[0].contains("roto@"), "{errors:?}");
    assert!(errors[1].starts_with("CANTINA__RESUMEN_DIARIO__ASUNTO:"), "{errors:?}");
    let ok = SummarySettings { destinatarios: vec!["a@x.py".into(), "a@X.PY".into()], asunto: None };
    assert_eq!(ok.recipients().unwrap().len(), 1, "the domain is case-insensitive");
    assert!(validate(&SummarySettings::default()).is_empty());
}

#[test]
fn recipient_programas_are_stable_and_do_not_show_the_address() {
    let a = EmailAddress::parse(Some("admin@cantina.com.py")).unwrap();
    let p = recipient_programa(&a);
    assert!(p.starts_with("resumen_diario/") && p.len() == "resumen_diario/".len() + 12, "{p}");
    assert!(!p.contains("admin"));
    assert_eq!(p, recipient_programa(&EmailAddress::parse(Some("Admin@cantina.com.py")).unwrap()));
    assert_ne!(p, recipient_programa(&EmailAddress::parse(Some("otro@cantina.com.py")).unwrap()));
}

#[test]
fn reasons_are_masked_before_they_are_grouped() {
    let m = |motivo: &str, n: i64, destino: &str, ejemplos: &[i64]| Motivo {
        motivo: motivo.into(),
        n,
        destinos: vec![destino.into()],
        ejemplos: ejemplos.to_vec(),
    };
    let (motivos, total) = group_reasons(vec![
        m("SMTP 550: <ana.perez@example.com> no existe", 2, "Email", &[40, 12]),
        m("SMTP 550: <alberto@example.com> no existe", 1, "Email", &[7]),
        m("Twilio 21614: +595981123456 no es un móvil", 1, "SMS", &[3]),
        m("Twilio 21614: +595981123456 no es un móvil", 2, "WhatsApp", &[9, 1]),
    ]);
    assert_eq!(total, 2);
    assert_eq!(motivos[0].motivo, "SMTP 550: <a***@example.com> no existe");
    assert_eq!((motivos[0].n, motivos[0].ejemplos.as_slice()), (3, &[7, 12, 40][..]));
    assert!(!motivos[1].motivo.contains("981123456"), "{:?}", motivos[1]);
    assert_eq!(motivos[1].destinos, ["SMS", "WhatsApp"]);
    assert_eq!(motivos[1].ejemplos, [1, 3, 9]);
    let many: Vec<Motivo> = (0..15).map(|i| m(&format!("motivo {i}"), 1, "Email", &[i])).collect();
    let (motivos, total) = group_reasons(many);
    assert_eq!((motivos.len(), total), (MAX_MOTIVOS, 15));
}

#[test]
fn failed_receipts_count_among_the_failures() {
    let mut d = data();
    d.recibos_fallidos = 1;
    d.motivos_total = 3;
    let t = render(&d, None).unwrap().text;
    assert!(
        t.contains(
            "FALLOS: 4 solicitudes (3 en Error, 1 enviada no entregada según el recibo del proveedor), 3 motivos\n"
        ),
        "{t}"
    );
    // The failures listed (3) are one fewer than the total: the rest is counted.
    assert!(t.contains("- 1 más, con otros motivos\n"), "{t}");
}

#[test]
fn unconfirmed_and_paused_recipients_are_not_reported_as_sent() {
    let r = SendReport {
        dia: Some(Date::constant(2026, 11, 23)),
        en_curso: vec!["a***@x.py".into()],
        pausados: vec!["b***@x.py".into()],
        pausa: Some("canal Email pausado por rocio: SMTP en mantenimiento".into()),
        ..Default::default()
    };
    assert_eq!(
        r.to_string(),
        "resumen del 23/11/2026: en curso sin confirmar (una ejecución anterior no registró el resultado; se \
         reintenta) para a***@x.py; no enviado a b***@x.py (canal Email pausado por rocio: SMTP en mantenimiento; \
         se reintenta)"
    );
    assert!(!r.ok());
}

#[test]
fn the_report_reads_in_spanish() {
    let r = SendReport {
        dia: Some(Date::constant(2026, 11, 23)),
        enviados: vec!["a***@x.py".into()],
        ya_enviados: vec!["b***@x.py".into()],
        fallidos: vec![("c***@x.py".into(), "SMTP: tiempo de espera agotado".into())],
        ..Default::default()
    };
    assert_eq!(
        r.to_string(),
        "resumen del 23/11/2026: enviado a a***@x.py; ya enviado antes a b***@x.py; falló para c***@x.py: SMTP: tiempo de espera agotado"
    );
    assert!(!r.ok());
}
