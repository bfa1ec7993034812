//! The summary's email, rendered from [`SummaryData`] (pure).

use jiff::civil::{Date, Weekday};
use jiff::{Timestamp, Zoned};
use sailfish::TemplateSimple;

use crate::domain::{Guaranies, NotificationType};
use crate::requests::RequestState;
use crate::scheduler::asuncion;

use super::*;

// ---------------------------------------------------------------------------------------------------------------
// Rendering (pure).

/// States in the order of the table's columns.
pub const ESTADOS: [&str; 4] = [
    RequestState::Enviado.as_str(),
    RequestState::Pendiente.as_str(),
    RequestState::Error.as_str(),
    RequestState::Omitido.as_str(),
];

/// The rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedSummary {
    pub subject: String,
    pub html: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot render the daily summary: {0}")]
pub struct SummaryRenderError(#[from] sailfish::RenderError);

/// One row of the counts table: a (type, channel) with its count per state of [`ESTADOS`] (and any other).
#[derive(Debug, Clone)]
struct Fila {
    tipo: String,
    canal: String,
    por_estado: [i64; 4],
    total: i64,
}

struct MotivoVista {
    n: i64,
    motivo: String,
    canales: String,
    ejemplos: String,
}

struct PausaVista {
    canal: String,
    desde: String,
    por: String,
    motivo: String,
}

struct AlertaVista {
    fecha: String,
    tipo: String,
    estado: String,
    mensaje: String,
}

struct TarjetaVista {
    alumno: String,
    tarjeta: String,
    saldo: String,
    umbral: String,
}

/// What the templates show, every value already formatted.
struct Vista {
    titulo: String,
    periodo: String,
    corte: String,
    total: i64,
    totales: String,
    filas: Vec<Fila>,
    ancho_tipo: usize,
    ancho_canal: usize,
    /// Each section's headline: `ninguno`, a count, or a count and what is shown.
    fallos_titulo: String,
    motivos: Vec<MotivoVista>,
    motivos_restantes: i64,
    pausas_titulo: String,
    pausas: Vec<PausaVista>,
    alertas_titulo: String,
    alertas: Vec<AlertaVista>,
    tarjetas_titulo: String,
    tarjetas: Vec<TarjetaVista>,
    umbral_defecto: String,
}

fn plural(n: i64, uno: &str, varios: &str) -> String {
    if n == 1 { format!("1 {uno}") } else { format!("{n} {varios}") }
}

/// `ninguna`, `3`, or `30 (se muestran las 25 …)`.
fn titulo_lista(total: i64, mostradas: usize, ninguno: &str, cuales: &str) -> String {
    let mostradas = i64::try_from(mostradas).unwrap_or(i64::MAX);
    if total == 0 {
        ninguno.to_string()
    } else if total > mostradas {
        format!("{total} (se muestran las {mostradas} {cuales})")
    } else {
        total.to_string()
    }
}

#[derive(TemplateSimple)]
#[template(path = "email/resumen_diario.html.stpl")]
struct Html<'a> {
    v: &'a Vista,
}

#[derive(TemplateSimple)]
#[template(path = "email/resumen_diario.txt.stpl")]
struct Text<'a> {
    v: &'a Vista,
}

fn dia_semana(d: Date) -> &'static str {
    match d.weekday() {
        Weekday::Monday => "lunes",
        Weekday::Tuesday => "martes",
        Weekday::Wednesday => "miércoles",
        Weekday::Thursday => "jueves",
        Weekday::Friday => "viernes",
        Weekday::Saturday => "sábado",
        Weekday::Sunday => "domingo",
    }
}

pub use crate::present::format::fecha;

/// `24/11/2026 21:00`, in America/Asuncion.
fn hora_local(t: Timestamp) -> String {
    let z: Zoned = t.to_zoned(asuncion());
    z.strftime("%d/%m/%Y %H:%M").to_string()
}

fn etiqueta_tipo(tipo: Option<&str>) -> String {
    match tipo {
        None => "Manual (POS)".into(),
        Some(t) => NotificationType::ALL.into_iter().find(|k| k.as_str() == t).map_or(t, |k| k.label()).into(),
    }
}

fn cortar(s: &str, max: usize) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

/// The subject: `asunto` (or the default) with `{fecha}` replaced, or the date appended when it has none.
pub fn subject(asunto: Option<&str>, dia: Date) -> String {
    let asunto = asunto.map(str::trim).filter(|a| !a.is_empty()).unwrap_or(DEFAULT_ASUNTO);
    let f = fecha(dia);
    if asunto.contains("{fecha}") { asunto.replace("{fecha}", &f) } else { format!("{asunto} ({f})") }
}

fn vista(d: &SummaryData) -> Vista {
    let mut filas: Vec<Fila> = Vec::new();
    for c in &d.conteos {
        let tipo = etiqueta_tipo(c.tipo.as_deref());
        let canal = c.destino.clone().unwrap_or_else(|| "(sin canal)".into());
        let i = match filas.iter().position(|f| f.tipo == tipo && f.canal == canal) {
            Some(i) => i,
            None => {
                filas.push(Fila { tipo, canal, por_estado: [0; 4], total: 0 });
                filas.len() - 1
            }
        };
        let f = &mut filas[i];
        // The four states are all there are (the column's CHECK); another would count in the total only.
        if let Some(j) = ESTADOS.iter().position(|e| *e == c.estado) {
            f.por_estado[j] += c.n;
        }
        f.total += c.n;
    }
    filas.sort_by(|a, b| (&a.tipo, &a.canal).cmp(&(&b.tipo, &b.canal)));
    let mut por_estado = [0_i64; 4];
    for f in &filas {
        for (t, n) in por_estado.iter_mut().zip(f.por_estado) {
            *t += n;
        }
    }
    let total: i64 = filas.iter().map(|f| f.total).sum();
    let totales = ESTADOS.iter().zip(por_estado).map(|(e, n)| format!("{e}: {n}")).collect::<Vec<_>>().join(" · ");
    let ancho_tipo = filas.iter().map(|f| f.tipo.chars().count()).chain([4]).max().unwrap_or(4);
    let ancho_canal = filas.iter().map(|f| f.canal.chars().count()).chain([5]).max().unwrap_or(5);
    let motivos = d
        .motivos
        .iter()
        .map(|m| MotivoVista {
            n: m.n,
            motivo: cortar(&m.motivo, MAX_MOTIVO_CHARS),
            canales: m.destinos.join(", "),
            ejemplos: m.ejemplos.iter().map(|id| format!("#{id}")).collect::<Vec<_>>().join(", "),
        })
        .collect();
    let listados: i64 = d.motivos.iter().map(|m| m.n).sum();
    let en_error = por_estado[2];
    let fallos = en_error + d.recibos_fallidos;
    Vista {
        titulo: format!("Resumen de notificaciones del {} {}", dia_semana(d.dia), fecha(d.dia)),
        periodo: format!(
            "{} {}, de 00:00 a 24:00 (hora de Asunción); estado actual de las solicitudes creadas ese día",
            dia_semana(d.dia),
            fecha(d.dia)
        ),
        corte: hora_local(d.corte),
        total,
        totales,
        filas,
        ancho_tipo,
        ancho_canal,
        fallos_titulo: if fallos == 0 {
            "ninguno".into()
        } else if d.recibos_fallidos == 0 {
            format!(
                "{} en Error, {}",
                plural(fallos, "solicitud", "solicitudes"),
                plural(d.motivos_total, "motivo", "motivos")
            )
        } else {
            format!(
                "{} ({} en Error, {} no {} según el recibo del proveedor), {}",
                plural(fallos, "solicitud", "solicitudes"),
                en_error,
                plural(d.recibos_fallidos, "enviada", "enviadas"),
                if d.recibos_fallidos == 1 { "entregada" } else { "entregadas" },
                plural(d.motivos_total, "motivo", "motivos")
            )
        },
        motivos,
        motivos_restantes: (fallos - listados).max(0),
        pausas_titulo: match &d.pausas {
            None => "no se pudo consultar (falta la migración 0008)".into(),
            Some(ps) if ps.is_empty() => "ninguno".into(),
            Some(ps) => ps.len().to_string(),
        },
        pausas: d
            .pausas
            .iter()
            .flatten()
            .map(|p| PausaVista {
                canal: p.destino.clone(),
                desde: hora_local(p.pausado_en),
                por: p.pausado_por.clone(),
                motivo: cortar(&p.motivo, MAX_MOTIVO_CHARS),
            })
            .collect(),
        alertas_titulo: titulo_lista(d.alertas_total, d.alertas.len(), "ninguna", "más recientes"),
        alertas: d
            .alertas
            .iter()
            .map(|a| AlertaVista {
                fecha: a.creada.map_or_else(|| "(sin fecha)".into(), hora_local),
                tipo: a.tipo.clone(),
                estado: a.estado.clone(),
                mensaje: cortar(&a.mensaje, MAX_MOTIVO_CHARS),
            })
            .collect(),
        tarjetas_titulo: titulo_lista(d.tarjetas_total, d.tarjetas.len(), "ninguna", "de menor saldo"),
        tarjetas: d
            .tarjetas
            .iter()
            .map(|t| TarjetaVista {
                alumno: t.alumno.clone().unwrap_or_else(|| "(sin alumno)".into()),
                tarjeta: t.nro_tarjeta.clone(),
                saldo: Guaranies(t.saldo).to_string(),
                umbral: Guaranies(t.umbral).to_string(),
            })
            .collect(),
        umbral_defecto: Guaranies(d.umbral_defecto).to_string(),
    }
}

/// Plain text as it travels: no trailing spaces, at most one blank line in a row (the templates' `<% %>` lines
/// leave blank lines behind), one final newline.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = false;
    for line in text.lines().map(str::trim_end) {
        if line.is_empty() {
            blank = !out.is_empty();
            continue;
        }
        if blank {
            out.push('\n');
            blank = false;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Renders the email (HTML and plain text) for `data`.
pub fn render(data: &SummaryData, asunto: Option<&str>) -> Result<RenderedSummary, SummaryRenderError> {
    let v = vista(data);
    Ok(RenderedSummary {
        subject: subject(asunto, data.dia),
        html: Html { v: &v }.render_once()?,
        text: tidy(&Text { v: &v }.render_once()?),
    })
}
