//! `cantina-notify preferences list|set|unset`: the explicit choices per client, type and channel
//! (`cantina_notify_preferencias_cliente`), until the parents' page sets them. What staff read is Spanish; a
//! client's addresses are shown masked.

use clap::Subcommand;
use deadpool_postgres::GenericClient;

use super::OpsError;
use crate::cantina::preferences::{self, Choice, Source};
use crate::config::PreferenceDefaults;
use crate::domain::{ChannelKind, NotificationType};
use crate::present::mask;

/// `cantina-notify preferences …`
#[derive(Debug, Subcommand)]
pub enum PreferencesCommand {
    /// Every type and channel of a client: on or off, and why (explicit choice, portal, default, opt-in).
    List {
        #[arg(long, value_name = "ID_CLIENTE")]
        cliente: i32,
    },
    /// Record the client's explicit choice for a type and channel: it wins over the portal and the defaults, and
    /// is the only way to switch an opt-in type (consumo_realizado, resumen_consumos) on.
    Set {
        #[arg(long, value_name = "ID_CLIENTE")]
        cliente: i32,
        /// Notification type: saldo_bajo, recarga_exitosa, …, consumo_realizado, resumen_consumos.
        #[arg(long)]
        tipo: String,
        /// email, sms, whatsapp or portal.
        #[arg(long)]
        canal: String,
        /// on or off.
        valor: String,
        /// Who asked for it (stored as cambiado_por); default: the OS user, else "cli".
        #[arg(long)]
        por: Option<String>,
    },
    /// Delete the explicit choice: the portal's preference and the defaults decide again.
    Unset {
        #[arg(long, value_name = "ID_CLIENTE")]
        cliente: i32,
        #[arg(long)]
        tipo: String,
        #[arg(long)]
        canal: String,
    },
}

/// The longest `--por` accepted: a name or a ticket reference, as much as `list` shows of it.
pub const POR_MAX_CHARS: usize = 100;

/// Characters that would move the cursor, recolour or reorder a terminal's text: the control characters
/// (newline, tab, ESC of an ANSI sequence, C1) and the bidirectional overrides.
fn is_unprintable(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Text from the database as `list` and `set` print it: each unprintable character replaced by `�`, so a row
/// written by other means cannot break the table or drive the terminal; at most [`POR_MAX_CHARS`] characters.
pub fn printable(s: &str) -> String {
    let s = s.trim();
    let mut out: String =
        s.chars().take(POR_MAX_CHARS).map(|c| if is_unprintable(c) { '\u{FFFD}' } else { c }).collect();
    if s.chars().nth(POR_MAX_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// Who asked for a choice (`--por`, or the OS user): printable text of at most [`POR_MAX_CHARS`] characters.
pub fn parse_por(s: &str) -> Result<String, OpsError> {
    let s = s.trim();
    if s.chars().any(is_unprintable) {
        return Err(OpsError::InvalidArgument(
            "--por no puede contener caracteres de control (saltos de línea, tabulaciones, secuencias de escape)"
                .into(),
        ));
    }
    let n = s.chars().count();
    if n > POR_MAX_CHARS {
        return Err(OpsError::InvalidArgument(format!("--por admite hasta {POR_MAX_CHARS} caracteres (tiene {n})")));
    }
    Ok(s.to_string())
}

/// A type name in any case (`SALDO_BAJO`), with the error staff read.
pub fn parse_tipo(s: &str) -> Result<NotificationType, OpsError> {
    NotificationType::parse(&s.trim().to_lowercase()).map_err(|_| {
        OpsError::InvalidArgument(format!(
            "tipo de aviso desconocido '{}' (se espera {})",
            printable(s),
            NotificationType::names_o()
        ))
    })
}

/// A channel name, with the error staff read.
pub fn parse_canal(s: &str) -> Result<ChannelKind, OpsError> {
    ChannelKind::parse(s).map_err(|_| {
        OpsError::InvalidArgument(format!(
            "canal desconocido '{}' (se espera email, sms, whatsapp o portal)",
            printable(s)
        ))
    })
}

/// `on`/`off` (also `si`/`sí`/`no`, `true`/`false`).
pub fn parse_valor(s: &str) -> Result<bool, OpsError> {
    match s.trim().to_lowercase().as_str() {
        "on" | "si" | "sí" | "true" => Ok(true),
        "off" | "no" | "false" => Ok(false),
        _ => Err(OpsError::InvalidArgument(format!("valor '{}' no válido (se espera on u off)", printable(s)))),
    }
}

/// The POS's own text is sent whatever the preferences say: a choice for it would never be read.
fn preferenceable(tipo: NotificationType) -> Result<(), OpsError> {
    match tipo {
        NotificationType::MensajeCantina => Err(OpsError::InvalidArgument(
            "mensaje_cantina es el texto que escribe la caja y se envía siempre: no tiene preferencias".into(),
        )),
        _ => Ok(()),
    }
}

/// The client's name and masked addresses, or an error if there is no such client.
async fn cliente(client: &impl GenericClient, id: i32) -> Result<String, OpsError> {
    let row = client
        .query_opt("SELECT nombres, apellidos, email, telefono FROM clientes WHERE id_cliente = $1", &[&id])
        .await?
        .ok_or_else(|| OpsError::InvalidArgument(format!("el cliente {id} no existe")))?;
    let text = |i: usize| row.get::<_, Option<String>>(i).map(|s| printable(&s)).filter(|s| !s.is_empty());
    let nombre = [text(0), text(1)].into_iter().flatten().collect::<Vec<_>>().join(" ");
    let mut contacto = Vec::new();
    if let Some(e) = text(2) {
        contacto.push(format!("correo {}", mask::address(&e)));
    }
    if let Some(t) = text(3) {
        contacto.push(format!("teléfono {}", mask::address(&t)));
    }
    Ok(match contacto.is_empty() {
        true => format!("Cliente {id}: {nombre}"),
        false => format!("Cliente {id}: {nombre} ({})", contacto.join(", ")),
    })
}

/// Where a value comes from, as staff read it.
pub fn origen(c: &Choice) -> String {
    if c.tipo == NotificationType::MensajeCantina {
        return "siempre (texto de la caja; no sigue preferencias)".into();
    }
    match &c.source {
        Source::Explicit { por, en } => {
            format!("explícito ({}, {})", printable(por), crate::rules::local_datetime(*en))
        }
        Source::Portal => "portal".into(),
        Source::Default => "predeterminado".into(),
        Source::OptIn => "opt-in: apagado sin elección explícita".into(),
    }
}

fn si_no(on: bool) -> &'static str {
    if on { "sí" } else { "no" }
}

/// The table `preferences list` prints.
pub fn render_list(encabezado: &str, choices: &[Choice]) -> String {
    let mut out = format!("{encabezado}\n{:<20} {:<9} {:<7} ORIGEN\n", "TIPO", "CANAL", "ACTIVO");
    for c in choices {
        let on = c.on || c.tipo == NotificationType::MensajeCantina;
        out.push_str(&format!("{:<20} {:<9} {:<7} {}\n", c.tipo.as_str(), c.channel.destino(), si_no(on), origen(c)));
    }
    out
}

async fn one(
    client: &impl GenericClient,
    id: i32,
    tipo: NotificationType,
    channel: ChannelKind,
    defaults: &PreferenceDefaults,
) -> Result<Choice, OpsError> {
    let all = preferences::choices(client, id, defaults).await?;
    all.into_iter()
        .find(|c| c.tipo == tipo && c.channel == channel)
        .ok_or_else(|| OpsError::InvalidArgument(format!("sin valor para {tipo} por {}", channel.destino())))
}

/// Runs one `preferences` command and returns what to print.
pub async fn run(
    client: &impl GenericClient,
    command: PreferencesCommand,
    defaults: &PreferenceDefaults,
    operator: Option<String>,
) -> Result<String, OpsError> {
    match command {
        PreferencesCommand::List { cliente: id } => {
            let encabezado = cliente(client, id).await?;
            let choices = preferences::choices(client, id, defaults).await?;
            Ok(render_list(&encabezado, &choices))
        }
        PreferencesCommand::Set { cliente: id, tipo, canal, valor, por } => {
            let (tipo, channel, activo) = (parse_tipo(&tipo)?, parse_canal(&canal)?, parse_valor(&valor)?);
            preferenceable(tipo)?;
            let por = match por {
                Some(p) => parse_por(&p)?,
                // The OS user is not staff's to fix: made printable rather than refused.
                None => operator.map(|p| printable(&p)).unwrap_or_default(),
            };
            let por = if por.is_empty() { "cli".to_string() } else { por };
            let encabezado = cliente(client, id).await?;
            let before = one(client, id, tipo, channel, defaults).await?;
            preferences::set_explicit(client, id, tipo, channel, activo, &por).await?;
            let after = one(client, id, tipo, channel, defaults).await?;
            Ok(format!(
                "{encabezado}\n{tipo} por {}: {} (antes: {}, {}; ahora: {})\n",
                channel.destino(),
                if activo { "activado" } else { "desactivado" },
                si_no(before.on),
                origen(&before),
                origen(&after)
            ))
        }
        PreferencesCommand::Unset { cliente: id, tipo, canal } => {
            let (tipo, channel) = (parse_tipo(&tipo)?, parse_canal(&canal)?);
            preferenceable(tipo)?;
            let encabezado = cliente(client, id).await?;
            let removed = preferences::unset_explicit(client, id, tipo, channel).await?;
            let after = one(client, id, tipo, channel, defaults).await?;
            let what = if removed { "elección explícita borrada" } else { "no tenía elección explícita" };
            Ok(format!(
                "{encabezado}\n{tipo} por {}: {what}; ahora: {} ({})\n",
                channel.destino(),
                si_no(after.on),
                origen(&after)
            ))
        }
    }
}
