//! `cantina-notify requests list|show|resend|cancel`.
//!
//! Resend and cancel change one request per transaction (each ID is processed, or refused with its reason, on its
//! own) and tell the history triggers (migration 0007) who did it and why through `cantina_notify.origen`,
//! `.evento` and `.detalle`, set for that transaction only.
//!
//! Cancel and a dispatcher sending the same request: the dispatcher's outcome write only matches a row still
//! `Pendiente` with the attempt number it claimed, so once cancelled (`Omitido`) the request can never become
//! `Enviado` or `Error` afterwards. If the send was already in flight it may still reach the parent; the row stays
//! `Omitido` ("cancelado por operador: …") and the dispatcher logs that its outcome was not recorded. Cancel warns
//! when the request looks claimed right now, and then keeps the claim's lease (`proximo_intento`): a resend resets
//! `intentos` to 0, so attempt numbers repeat, and were the resent request claimed again (attempt 1) while the old
//! send (attempt 1 too) is still running, that send's late outcome would match the new claim. A resend is therefore
//! due at the end of that lease at the earliest (the lease outlasts the send timeout), and says when.

use jiff::Timestamp;
use serde_json::{Value as Json, json};
use tokio_postgres::Client;

use super::OpsError;
use super::format::{self, Align, table};
use super::mask;
use crate::domain::{ChannelKind, Guaranies, NotificationType};
use crate::requests::{RequestState, history, staff};

/// Upper bound for `--limit` (a terminal, not an export).
pub const MAX_LIMIT: i64 = 10_000;

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Pendiente, Enviado, Error or Omitido (any case).
    #[arg(long)]
    pub estado: Option<String>,
    /// Notification type (recarga_exitosa, saldo_bajo, …; any case).
    #[arg(long)]
    pub tipo: Option<String>,
    /// Channel: email, sms, whatsapp or portal.
    #[arg(long)]
    pub destino: Option<String>,
    /// Card number (nro_tarjeta).
    #[arg(long)]
    pub tarjeta: Option<String>,
    /// Client id (id_cliente).
    #[arg(long)]
    pub cliente: Option<i32>,
    /// Only requests created in this period: 30m, 24h, 7d.
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
    /// Show addresses in full.
    #[arg(long)]
    pub reveal: bool,
    #[arg(long)]
    pub json: bool,
}

pub use crate::requests::staff::{Filter, RequestRow};

impl ListArgs {
    pub fn filter(&self) -> Result<Filter, OpsError> {
        let estado = self.estado.as_deref().map(parse_estado).transpose()?;
        let tipo = self.tipo.as_deref().map(parse_tipo).transpose()?;
        let destino = self
            .destino
            .as_deref()
            .map(|d| {
                ChannelKind::parse(d).map(|k| k.destino().to_string()).map_err(|_| {
                    OpsError::InvalidArgument(format!("canal desconocido '{d}': email, sms, whatsapp o portal"))
                })
            })
            .transpose()?;
        let since = match &self.since {
            Some(s) => Some(Timestamp::now().checked_sub(format::parse_duration(s)?).unwrap_or(Timestamp::UNIX_EPOCH)),
            None => None,
        };
        if !(1..=MAX_LIMIT).contains(&self.limit) {
            return Err(OpsError::InvalidArgument(format!("--limit debe estar entre 1 y {MAX_LIMIT}")));
        }
        Ok(Filter {
            estado,
            tipo,
            destino,
            tarjeta: self.tarjeta.clone(),
            cliente: self.cliente,
            since,
            limit: self.limit,
        })
    }
}

pub fn parse_estado(s: &str) -> Result<String, OpsError> {
    RequestState::parse_any_case(s).map(|e| e.as_str().to_string()).ok_or_else(|| {
        OpsError::InvalidArgument(format!("estado desconocido '{s}': Pendiente, Enviado, Error u Omitido"))
    })
}

/// A known notification type, any case (a typo would otherwise just list nothing).
pub fn parse_tipo(s: &str) -> Result<String, OpsError> {
    NotificationType::parse(&s.trim().to_lowercase()).map(|t| t.as_str().to_string()).map_err(|_| {
        let known: Vec<&str> = NotificationType::ALL.iter().map(|t| t.as_str()).collect();
        OpsError::InvalidArgument(format!("tipo desconocido '{s}': {}", known.join(", ")))
    })
}

impl RequestRow {
    fn shown_address(&self, reveal: bool) -> Option<String> {
        self.destinatario.as_deref().map(|d| if reveal { d.to_string() } else { mask::address(d) })
    }

    fn shown_error(&self, reveal: bool) -> Option<String> {
        self.ultimo_error.as_deref().map(|e| if reveal { e.to_string() } else { mask::text(e) })
    }

    /// `--json`: one object per request; times RFC 3339 UTC.
    pub fn to_json(&self, reveal: bool) -> Json {
        json!({
            "id_solicitud": self.id,
            "fecha_solicitud": self.creada.map(format::iso),
            "tipo": self.tipo,
            "destino": self.destino,
            "destinatario": self.shown_address(reveal),
            "estado": self.estado,
            "intentos": self.intentos,
            "estado_entrega": self.estado_entrega,
            "ultimo_error": self.shown_error(reveal),
            "nro_tarjeta": self.nro_tarjeta,
            "id_cliente": self.id_cliente,
            "actualizado_en": self.actualizada.map(format::iso),
        })
    }
}

pub async fn list(client: &Client, f: &Filter) -> Result<Vec<RequestRow>, OpsError> {
    Ok(staff::list(client, f).await?)
}

pub fn render_list(rows: &[RequestRow], reveal: bool) -> String {
    if rows.is_empty() {
        return "Ninguna solicitud con esos filtros.\n".to_string();
    }
    let dash = || "-".to_string();
    let lines: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                format::local_opt(r.creada),
                r.tipo.clone().unwrap_or_else(dash),
                r.destino.clone().unwrap_or_else(dash),
                r.shown_address(reveal).unwrap_or_else(dash),
                r.estado.clone(),
                r.intentos.to_string(),
                r.estado_entrega.clone().unwrap_or_else(dash),
                r.nro_tarjeta.clone().unwrap_or_else(dash),
                r.shown_error(reveal).map(|e| format::cut(&e, 60)).unwrap_or_else(dash),
            ]
        })
        .collect();
    let h = [
        ("ID", Align::Right),
        ("CREADA", Align::Left),
        ("TIPO", Align::Left),
        ("CANAL", Align::Left),
        ("DESTINATARIO", Align::Left),
        ("ESTADO", Align::Left),
        ("INTENTOS", Align::Right),
        ("ENTREGA", Align::Left),
        ("TARJETA", Align::Left),
        ("ÚLTIMO ERROR", Align::Left),
    ];
    let mut out = table(&h, &lines);
    out.push_str(&format!("{} solicitud(es)\n", rows.len()));
    out
}

pub use crate::requests::HistoryRow;

/// `requests show`: every column (in table order, as PostgreSQL renders it to JSON) and the history.
#[derive(Debug, Clone)]
pub struct Detail {
    pub id: i64,
    pub columns: Vec<(String, Json)>,
    pub history: Vec<HistoryRow>,
}

/// Columns whose value is an address, template data, or free text that may quote one (a provider's error, the
/// POS's own message); the others (times, keys, ids) are shown as they are.
fn mask_column(name: &str, v: &Json) -> Json {
    match (name, v) {
        ("destinatario", Json::String(s)) => Json::String(mask::address(s)),
        ("datos", v) => mask::datos(v),
        ("ultimo_error" | "mensaje", Json::String(s)) => Json::String(mask::text(s)),
        (_, v) => v.clone(),
    }
}

impl Detail {
    fn shown_columns(&self, reveal: bool) -> Vec<(String, Json)> {
        self.columns.iter().map(|(k, v)| (k.clone(), if reveal { v.clone() } else { mask_column(k, v) })).collect()
    }

    /// The delivery receipts: the history rows where the delivery state moved.
    pub fn receipts(&self) -> impl Iterator<Item = &HistoryRow> {
        self.history.iter().filter(|h| h.evento == "recibo")
    }

    /// `--json`: `{"solicitud": {column: value…}, "historial": [...], "recibos": [...]}`.
    pub fn to_json(&self, reveal: bool) -> Json {
        let row: serde_json::Map<String, Json> = self.shown_columns(reveal).into_iter().collect();
        let history = |h: &HistoryRow| {
            let shown = HistoryRow {
                detalle: h.detalle.as_deref().map(|d| if reveal { d.to_string() } else { mask::text(d) }),
                ..h.clone()
            };
            serde_json::to_value(shown).unwrap_or(Json::Null)
        };
        json!({
            "solicitud": row,
            "historial": self.history.iter().map(history).collect::<Vec<_>>(),
            "recibos": self.receipts().map(history).collect::<Vec<_>>(),
        })
    }
}

pub async fn show(client: &Client, id: i64) -> Result<Option<Detail>, OpsError> {
    let Some(columns) = staff::columns(client, id).await? else {
        return Ok(None);
    };
    let history = history::of(client, id).await?;
    Ok(Some(Detail { id, columns, history }))
}

/// Keys of template data (`datos`) whose whole-number value is an amount of guaraníes.
const AMOUNT_KEYS: [&str; 3] = ["monto", "saldo", "umbral"];

/// The template data as staff read it: amounts as `Gs. 50.000` (at any depth: a low-balance notice lists its
/// cards). `--json` keeps the numbers.
fn amounts(v: &Json) -> Json {
    match v {
        Json::Array(items) => Json::Array(items.iter().map(amounts).collect()),
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| match v.as_i64() {
                    Some(n) if AMOUNT_KEYS.contains(&k.as_str()) => (k.clone(), Json::String(Guaranies(n).to_string())),
                    _ => (k.clone(), amounts(v)),
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A column of `requests show` as staff read it: `saldo_alerta` and the amounts in `datos` in guaraníes, the rest
/// as [`cell`] shows it.
fn column_cell(name: &str, v: &Json) -> String {
    match (name, v.as_i64()) {
        ("saldo_alerta", Some(n)) => Guaranies(n).to_string(),
        ("datos", _) => cell(&amounts(v)),
        _ => cell(v),
    }
}

/// A column's value as staff read it: times in America/Asuncion, JSON compact, NULL as `-`.
fn cell(v: &Json) -> String {
    match v {
        Json::Null => "-".to_string(),
        Json::String(s) => match s.parse::<Timestamp>() {
            Ok(t) if s.len() >= 20 && s.as_bytes().get(10) == Some(&b'T') => format::local(t),
            _ => s.clone(),
        },
        other => other.to_string(),
    }
}

pub fn render_show(d: &Detail, reveal: bool) -> String {
    let mut out = format!("Solicitud #{}\n", d.id);
    let cols = d.shown_columns(reveal);
    let width = cols.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    for (k, v) in &cols {
        out.push_str(&format!("  {k:<width$}  {}\n", column_cell(k, v)));
    }
    out.push_str("\nHistorial\n");
    if d.history.is_empty() {
        out.push_str("  (sin historial)\n");
    } else {
        let dash = || "-".to_string();
        let rows: Vec<Vec<String>> = d
            .history
            .iter()
            .map(|h| {
                let estado = match (&h.estado_anterior, &h.estado) {
                    (Some(a), Some(b)) if a != b => format!("{a} → {b}"),
                    (_, Some(b)) => b.clone(),
                    _ => dash(),
                };
                vec![
                    format::local(h.registrado_en),
                    h.evento.clone(),
                    estado,
                    h.intentos.map_or_else(dash, |i| i.to_string()),
                    h.proveedor.clone().unwrap_or_else(dash),
                    h.id_proveedor.clone().unwrap_or_else(dash),
                    h.estado_entrega.clone().unwrap_or_else(dash),
                    h.origen.clone(),
                    h.detalle
                        .as_deref()
                        .map(|t| if reveal { t.to_string() } else { mask::text(t) })
                        .unwrap_or_else(dash),
                ]
            })
            .collect();
        let h = [
            ("CUÁNDO", Align::Left),
            ("EVENTO", Align::Left),
            ("ESTADO", Align::Left),
            ("INTENTO", Align::Right),
            ("PROVEEDOR", Align::Left),
            ("ID PROVEEDOR", Align::Left),
            ("ENTREGA", Align::Left),
            ("ORIGEN", Align::Left),
            ("DETALLE", Align::Left),
        ];
        for line in table(&h, &rows).lines() {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
    }
    let receipts: Vec<&HistoryRow> = d.receipts().collect();
    out.push_str("\nRecibos de entrega\n");
    if receipts.is_empty() {
        out.push_str("  (ninguno)\n");
    }
    for r in receipts {
        out.push_str(&format!(
            "  {}  {}{}\n",
            format::local(r.registrado_en),
            r.estado_entrega.as_deref().unwrap_or("-"),
            r.detalle
                .as_deref()
                .map(|t| format!(" ({})", if reveal { t.to_string() } else { mask::text(t) }))
                .unwrap_or_default()
        ));
    }
    out
}

/// Who runs the command, for the history (`operador: <user>`); the database role when the OS does not say.
pub fn operator() -> Option<String> {
    ["SUDO_USER", "USER", "LOGNAME"].iter().find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
}

/// What became of one ID: `Ok` (what was done) or `Err` (why it was refused), plus warnings either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionResult {
    pub id: i64,
    pub outcome: Result<String, String>,
    pub warnings: Vec<String>,
}

/// `requests resend`: each `Error` or `Omitido` request back to `Pendiente`, `intentos = 0`, due now (or when the
/// lease of a send still running when it was cancelled ends: a warning says when).
pub async fn resend(
    client: &mut Client,
    ids: &[i64],
    reason: Option<&str>,
    who: Option<&str>,
) -> Result<Vec<ActionResult>, OpsError> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    let detalle = match reason {
        Some(r) => format!("reenviada por operador: {r}"),
        None => "reenviada por operador".to_string(),
    };
    let mut results = Vec::with_capacity(ids.len());
    for &id in ids {
        let tx = client.transaction().await?;
        history::set_context(&tx, who, "reenviada", &detalle).await?;
        let mut warnings = Vec::new();
        let outcome = match staff::lock_for_resend(&tx, id).await? {
            None => Err("no existe esa solicitud".to_string()),
            Some(staff::ResendLock { estado, has_key, opted_out }) => match RequestState::parse(&estado) {
                Some(RequestState::Enviado) => Err("ya fue enviado".to_string()),
                Some(RequestState::Pendiente) => Err("ya está Pendiente: el servicio la enviará".to_string()),
                _ if !has_key => {
                    Err("es una fila del POS que el servicio nunca tomó (sin clave_dedup): no se puede reenviar; \
                         cree una nueva desde el POS"
                        .to_string())
                }
                Some(RequestState::Error | RequestState::Omitido) => {
                    let followed = staff::next_link_exists(&tx, id).await?;
                    let resent = staff::resend(&tx, id, followed).await?;
                    if resent.waits {
                        let at = resent.due.map(format::timestamp);
                        warnings.push(format!(
                            "un despachador la tenía tomada cuando se canceló y ese envío puede seguir en curso: \
                                 se enviará a partir de {}, cuando venza esa toma",
                            format::local_opt(at)
                        ));
                    }
                    if opted_out {
                        warnings.push(
                            "el destinatario está dado de baja en este canal: el servicio la volverá a marcar \
                                 Omitido"
                                .to_string(),
                        );
                    }
                    if followed {
                        warnings.push(
                            "ya se creó la solicitud del canal de respaldo: el aviso puede llegar por los dos \
                                 canales"
                                .to_string(),
                        );
                    }
                    Ok(format!("reenviada ({estado} → Pendiente, intentos 0)"))
                }
                None => Err(format!("estado {estado}: no se puede reenviar")),
            },
        };
        tx.commit().await?;
        results.push(ActionResult { id, outcome, warnings });
    }
    Ok(results)
}

/// `requests cancel`: each `Pendiente` request becomes `Omitido` with `cancelado por operador: <reason>`.
pub async fn cancel(
    client: &mut Client,
    ids: &[i64],
    reason: &str,
    who: Option<&str>,
) -> Result<Vec<ActionResult>, OpsError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(OpsError::InvalidArgument("--reason: indique por qué se cancela".to_string()));
    }
    let error = format!("cancelado por operador: {reason}");
    let mut results = Vec::with_capacity(ids.len());
    for &id in ids {
        let tx = client.transaction().await?;
        history::set_context(&tx, who, "cancelada", &error).await?;
        let mut warnings = Vec::new();
        let outcome = match staff::lock_for_cancel(&tx, id).await? {
            None => Err("no existe esa solicitud".to_string()),
            Some(staff::CancelLock { estado, intentos, in_flight, chain }) => {
                let state = RequestState::parse(&estado);
                if state == Some(RequestState::Pendiente) {
                    staff::cancel(&tx, id, &error, in_flight).await?;
                    if in_flight {
                        warnings.push(format!(
                            "un despachador la tenía tomada (intento {intentos}): si el envío ya estaba en curso \
                             puede llegar igual, pero la solicitud queda Omitido"
                        ));
                    }
                    if chain {
                        warnings.push("no se probará el canal de respaldo".to_string());
                    }
                    Ok("cancelada (Pendiente → Omitido)".to_string())
                } else if state == Some(RequestState::Enviado) {
                    Err("ya fue enviado: no se puede cancelar".to_string())
                } else {
                    Err(format!("está {estado}: solo se cancela una solicitud Pendiente"))
                }
            }
        };
        tx.commit().await?;
        results.push(ActionResult { id, outcome, warnings });
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estados_are_matched_case_insensitively() {
        assert_eq!(parse_estado("error").unwrap(), "Error");
        assert_eq!(parse_estado(" PENDIENTE ").unwrap(), "Pendiente");
        assert!(parse_estado("Fallido").unwrap_err().to_string().contains("estado desconocido 'Fallido'"));
    }

    /// Every state is accepted, and the refusal names them all (RequestState is the list).
    #[test]
    fn parse_estado_knows_every_state_and_names_them() {
        let e = parse_estado("Fallido").unwrap_err().to_string();
        for s in RequestState::ALL {
            assert_eq!(parse_estado(&s.as_str().to_lowercase()).unwrap(), s.as_str());
            assert!(e.contains(s.as_str()), "{e}");
        }
    }

    #[test]
    fn list_arguments_are_validated() {
        let args = |destino: &str, limit: i64| ListArgs {
            estado: Some("omitido".into()),
            tipo: None,
            destino: Some(destino.into()),
            tarjeta: None,
            cliente: Some(7),
            since: Some("7d".into()),
            limit,
            reveal: false,
            json: false,
        };
        let f = args("whatsapp", 50).filter().unwrap();
        assert_eq!(f.estado.as_deref(), Some("Omitido"));
        assert_eq!(f.destino.as_deref(), Some("WhatsApp"));
        let age = Timestamp::now().duration_since(f.since.unwrap()).as_secs();
        assert!((7 * 86_400..7 * 86_400 + 60).contains(&age), "{age}");
        assert!(args("fax", 50).filter().unwrap_err().to_string().contains("canal desconocido 'fax'"));
        assert!(args("sms", 0).filter().unwrap_err().to_string().contains("--limit"));
        assert!(args("sms", MAX_LIMIT + 1).filter().is_err());
    }

    #[test]
    fn an_unknown_type_is_refused_with_the_known_ones() {
        let args = |tipo: &str| ListArgs {
            estado: None,
            tipo: Some(tipo.into()),
            destino: None,
            tarjeta: None,
            cliente: None,
            since: None,
            limit: 50,
            reveal: false,
            json: false,
        };
        assert_eq!(args(" Saldo_Bajo ").filter().unwrap().tipo.as_deref(), Some("saldo_bajo"));
        let e = args("recarga_exitoza").filter().unwrap_err().to_string();
        assert!(e.contains("tipo desconocido 'recarga_exitoza'"), "{e}");
        for t in NotificationType::ALL {
            assert!(e.contains(t.as_str()), "{e}");
        }
    }

    #[test]
    fn show_masks_addresses_data_and_quoted_errors() {
        assert_eq!(mask_column("destinatario", &json!("ana@example.com")), json!("a***@example.com"));
        assert_eq!(
            mask_column("datos", &json!({"email": "ana@example.com", "monto": 5})),
            json!({"email": "a***@example.com", "monto": 5})
        );
        assert_eq!(
            mask_column("ultimo_error", &json!("número +595981123456 inválido")),
            json!("número +595 98* *** 456 inválido")
        );
        assert_eq!(mask_column("intentos", &json!(3)), json!(3));
        let t = json!("2026-11-24T03:53:21.123456+00:00");
        assert_eq!(mask_column("fecha_solicitud", &t), t);
        assert_eq!(mask_column("destinatario", &Json::Null), Json::Null);
    }

    #[test]
    fn cells_show_times_locally_and_nulls_as_dashes() {
        assert_eq!(cell(&json!("2026-11-28T17:05:59.123456+00:00")), "28/11/2026 14:05");
        assert_eq!(cell(&Json::Null), "-");
        assert_eq!(cell(&json!("recarga_exitosa:12:email")), "recarga_exitosa:12:email");
        assert_eq!(cell(&json!({"monto": 50000})), r#"{"monto":50000}"#);
        assert_eq!(cell(&json!(true)), "true");
    }

    #[test]
    fn show_prints_amounts_in_guaranies() {
        assert_eq!(column_cell("saldo_alerta", &json!(1500)), "Gs. 1.500");
        assert_eq!(column_cell("saldo_alerta", &Json::Null), "-");
        assert_eq!(column_cell("intentos", &json!(1500)), "1500");
        let datos = json!({
            "monto": 50000,
            "saldo": 70000,
            "ventas": 3,
            "nro_tarjeta": "T0001",
            "tarjetas": [{"saldo": 3500, "umbral": 5000}]
        });
        assert_eq!(
            column_cell("datos", &datos),
            r#"{"monto":"Gs. 50.000","nro_tarjeta":"T0001","saldo":"Gs. 70.000","tarjetas":[{"saldo":"Gs. 3.500","umbral":"Gs. 5.000"}],"ventas":3}"#
        );
        // --json keeps the numbers.
        let d = Detail {
            id: 1,
            columns: vec![("saldo_alerta".into(), json!(1500)), ("datos".into(), datos)],
            history: vec![],
        };
        assert_eq!(d.to_json(false)["solicitud"]["saldo_alerta"], 1500);
        assert_eq!(d.to_json(false)["solicitud"]["datos"]["monto"], 50000);
        let t = render_show(&d, false);
        assert!(t.contains("saldo_alerta  Gs. 1.500") && t.contains(r#""monto":"Gs. 50.000""#), "{t}");
    }
}
