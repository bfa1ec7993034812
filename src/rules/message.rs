use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::domain::{Guaranies, NotificationType};

/// Everything a template needs, captured when the request is created and stored in `solicitudes_notificacion.datos`,
/// so a retry next hour renders the same notice without reading the database again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "plantilla", rename_all = "snake_case")]
pub enum MessageData {
    RecargaExitosa {
        padre: String,
        alumno: String,
        nro_tarjeta: String,
        monto: Guaranies,
        saldo: Guaranies,
        fecha: String,
        referencia: Option<String>,
    },
    /// One card (the balance trigger, the POS button) or all of a parent's low cards (the daily sweep).
    SaldoBajo(AvisoSaldoBajo),
    TarjetaBloqueada {
        padre: String,
        alumno: String,
        nro_tarjeta: String,
        fecha: String,
    },
    /// Account debt (`ventas` pending payment) with a sale older than 7 days.
    CuentaPendiente {
        padre: String,
        /// Client name (or `razon_social`) and document, as on the account.
        cliente: String,
        ruc_ci: String,
        monto: Guaranies,
        ventas: i64,
        /// Date of the oldest unpaid sale.
        desde: String,
    },
    /// A family's cards allowed below zero and not regularised: 3, 7 and 15 days after its oldest open authorisation.
    RecordatorioDeuda(AvisoDeuda),
    /// A card whose `fecha_vencimiento` is near (the daily sweep, `dias_antes` days before).
    TarjetaPorVencer {
        padre: String,
        alumno: String,
        nro_tarjeta: String,
        /// The expiry date, `dd/mm/yyyy`.
        vence: String,
        /// Local days left until the expiry date.
        dias: i64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ademas: Vec<Ademas>,
    },
    /// A card that expired: its `estado` became `Vencida` (the trigger) or its date passed (the daily sweep).
    TarjetaVencida {
        padre: String,
        alumno: String,
        nro_tarjeta: String,
        /// The expiry date, `dd/mm/yyyy`.
        vencio: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ademas: Vec<Ademas>,
    },
    /// The POS "Notificar" button with the staff's own text: sent as written, inside the Cantina's header and footer.
    MensajeCantina {
        padre: String,
        /// The student of the card the row names, if it names one.
        alumno: Option<String>,
        /// The staff's text as they wrote it (`solicitudes_notificacion.mensaje`, at most 255 characters).
        mensaje: String,
        fecha: String,
    },
    /// One purchase (`consumos_tarjeta`), for parents who switched it on.
    ConsumoRealizado {
        padre: String,
        alumno: String,
        nro_tarjeta: String,
        /// What was bought, as the POS wrote it (`detalle`; "Consumo" when it wrote nothing).
        detalle: String,
        monto: Guaranies,
        /// The card's balance when the service read the purchase.
        saldo: Guaranies,
        /// When it was bought: `23/11/2026 12:35`.
        fecha: String,
    },
    /// The day's purchases of a family's children, for parents who switched it on.
    ResumenConsumos(ResumenConsumos),
}

/// A family's purchases of one local day, per child (only children with purchases that day).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumenConsumos {
    pub padre: String,
    /// The day: `23/11/2026`.
    pub fecha: String,
    pub hijos: Vec<ConsumosHijo>,
}

/// One child's purchases of the day and the card's balance left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumosHijo {
    pub alumno: String,
    pub nro_tarjeta: String,
    pub consumos: Vec<Consumo>,
    /// The card's balance when the summary was made.
    pub saldo: Guaranies,
}

/// One purchase in a summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consumo {
    /// Local time: `12:35`.
    pub hora: String,
    pub detalle: String,
    pub monto: Guaranies,
}

impl ConsumosHijo {
    pub fn total(&self) -> Guaranies {
        Guaranies(self.consumos.iter().map(|c| c.monto.0).sum())
    }
}

impl ResumenConsumos {
    pub fn total(&self) -> Guaranies {
        Guaranies(self.hijos.iter().map(|h| h.total().0).sum())
    }

    pub fn compras(&self) -> usize {
        self.hijos.iter().map(|h| h.consumos.len()).sum()
    }

    /// One line per child: "Luis Benítez: 2 compras, Gs. 33.000 (saldo Gs. 40.000)".
    pub fn por_hijo(&self) -> Vec<String> {
        self.hijos
            .iter()
            .map(|h| {
                let n = h.consumos.len();
                let compras = if n == 1 { "1 compra".to_string() } else { format!("{n} compras") };
                format!("{}: {compras}, {} (saldo: {})", h.alumno, h.total(), h.saldo.saldo())
            })
            .collect()
    }
}

/// A low-balance notice: the parent and at least one card (the first is the row's `nro_tarjeta`).
///
/// Stored as `{"plantilla": "saldo_bajo", "padre", "tarjetas": [{"alumno", "nro_tarjeta", "saldo", "umbral"}, …],
/// "fecha"}`. Rows written before the sweep grouped cards carry one card's fields at the top level
/// (`alumno`, `nro_tarjeta`, `saldo`, `umbral`); they still read, as a one-card notice (a row may be pending or be
/// retried across the upgrade).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SaldoBajoGuardado")]
pub struct AvisoSaldoBajo {
    pub padre: String,
    /// Never empty: the constructors and the deserialiser refuse an empty list.
    tarjetas: Vec<TarjetaSaldoBajo>,
    pub fecha: String,
    /// A reminder (the family's daily message, while the card stays low): the date of the crossing it reminds of,
    /// `dd/mm/yyyy`; `None` on the crossing's own notice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desde: Option<String>,
    /// The other items of the family's daily message this notice leads (empty for the trigger's notice).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ademas: Vec<Ademas>,
}

/// One card of a low-balance notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TarjetaSaldoBajo {
    pub alumno: String,
    pub nro_tarjeta: String,
    pub saldo: Guaranies,
    /// The threshold it is under (the card's own, or the default).
    pub umbral: Guaranies,
}

impl AvisoSaldoBajo {
    /// A notice about one card.
    pub fn una(padre: String, tarjeta: TarjetaSaldoBajo, fecha: String) -> AvisoSaldoBajo {
        AvisoSaldoBajo { padre, tarjetas: vec![tarjeta], fecha, desde: None, ademas: Vec::new() }
    }

    /// A notice about several cards of one parent, in this order; `None` for an empty list.
    pub fn varias(padre: String, tarjetas: Vec<TarjetaSaldoBajo>, fecha: String) -> Option<AvisoSaldoBajo> {
        (!tarjetas.is_empty()).then_some(AvisoSaldoBajo { padre, tarjetas, fecha, desde: None, ademas: Vec::new() })
    }

    /// The cards, never empty.
    pub fn tarjetas(&self) -> &[TarjetaSaldoBajo] {
        &self.tarjetas
    }

    /// The first card: the one the row's `nro_tarjeta` and `saldo_alerta` name.
    pub fn primera(&self) -> &TarjetaSaldoBajo {
        // Non-empty by construction; indexing cannot fail.
        &self.tarjetas[0]
    }
}

/// What `datos` may hold for a `saldo_bajo` row: the current list, or the single card of older rows.
#[derive(Deserialize)]
#[serde(untagged)]
enum SaldoBajoGuardado {
    Lista {
        padre: String,
        tarjetas: Vec<TarjetaSaldoBajo>,
        fecha: String,
        #[serde(default)]
        desde: Option<String>,
        #[serde(default)]
        ademas: Vec<Ademas>,
    },
    Una {
        padre: String,
        alumno: String,
        nro_tarjeta: String,
        saldo: Guaranies,
        umbral: Guaranies,
        fecha: String,
    },
}

impl TryFrom<SaldoBajoGuardado> for AvisoSaldoBajo {
    type Error = &'static str;

    fn try_from(g: SaldoBajoGuardado) -> Result<AvisoSaldoBajo, &'static str> {
        match g {
            SaldoBajoGuardado::Lista { padre, tarjetas, fecha, desde, ademas } => {
                let mut a = AvisoSaldoBajo::varias(padre, tarjetas, fecha).ok_or("saldo_bajo sin tarjetas")?;
                a.desde = desde;
                a.ademas = ademas;
                Ok(a)
            }
            SaldoBajoGuardado::Una { padre, alumno, nro_tarjeta, saldo, umbral, fecha } => {
                Ok(AvisoSaldoBajo::una(padre, TarjetaSaldoBajo { alumno, nro_tarjeta, saldo, umbral }, fecha))
            }
        }
    }
}

/// One more item of a family's daily message, after its main notice: "Además: …" in the email, briefly in SMS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ademas {
    /// A full sentence for the email ("La tarjeta 0001234 de Luis Benítez vence el 20/12/2026; …").
    pub texto: String,
    /// A few words for the SMS ("tarjeta de Luis vence 20/12").
    pub breve: String,
}

/// A debt reminder: the family's cards in debt, each with the date it went negative.
///
/// Stored as `{"plantilla": "recordatorio_deuda", "padre", "tarjetas": [{"alumno", "nro_tarjeta", "monto",
/// "desde"}, …], "dias", "nivel", "ademas"?}`. Rows written when reminders were per authorisation carry one
/// card's fields at the top level (`alumno`, `nro_tarjeta`, `monto`, `fecha`); they still read, as one card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "DeudaGuardada")]
pub struct AvisoDeuda {
    pub padre: String,
    pub tarjetas: Vec<TarjetaDeuda>,
    /// Local days since the family's oldest open authorisation.
    pub dias: i32,
    pub nivel: NivelRecordatorio,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ademas: Vec<Ademas>,
}

/// One card of a debt reminder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TarjetaDeuda {
    pub alumno: String,
    pub nro_tarjeta: String,
    /// What is owed (the card's negative balance, as a positive amount).
    pub monto: Guaranies,
    /// The card's earliest open authorisation, `dd/mm/yyyy` in Asunción.
    pub desde: String,
}

impl AvisoDeuda {
    /// The whole debt of the cards listed.
    pub fn total(&self) -> Guaranies {
        Guaranies(self.tarjetas.iter().map(|t| t.monto.0).sum())
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum DeudaGuardada {
    Lista {
        padre: String,
        tarjetas: Vec<TarjetaDeuda>,
        dias: i32,
        nivel: NivelRecordatorio,
        #[serde(default)]
        ademas: Vec<Ademas>,
    },
    Una {
        padre: String,
        alumno: String,
        nro_tarjeta: String,
        monto: Guaranies,
        dias: i32,
        nivel: NivelRecordatorio,
        fecha: String,
    },
}

impl From<DeudaGuardada> for AvisoDeuda {
    fn from(g: DeudaGuardada) -> AvisoDeuda {
        match g {
            DeudaGuardada::Lista { padre, tarjetas, dias, nivel, ademas } => {
                AvisoDeuda { padre, tarjetas, dias, nivel, ademas }
            }
            DeudaGuardada::Una { padre, alumno, nro_tarjeta, monto, dias, nivel, fecha } => {
                let desde = fecha.split_whitespace().next().unwrap_or_default().to_string();
                AvisoDeuda {
                    padre,
                    tarjetas: vec![TarjetaDeuda { alumno, nro_tarjeta, monto, desde }],
                    dias,
                    nivel,
                    ademas: Vec::new(),
                }
            }
        }
    }
}

/// How insistent a debt reminder is: friendly at 3 days, urgent at 7, critical at 15.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NivelRecordatorio {
    Amistoso,
    Urgente,
    Critico,
}

impl NivelRecordatorio {
    pub fn for_days(dias: i32) -> NivelRecordatorio {
        match dias {
            ..=6 => NivelRecordatorio::Amistoso,
            7..=14 => NivelRecordatorio::Urgente,
            _ => NivelRecordatorio::Critico,
        }
    }
}

impl MessageData {
    pub fn notification_type(&self) -> NotificationType {
        match self {
            MessageData::RecargaExitosa { .. } => NotificationType::RecargaExitosa,
            MessageData::SaldoBajo(_) => NotificationType::SaldoBajo,
            MessageData::TarjetaBloqueada { .. } => NotificationType::TarjetaBloqueada,
            MessageData::CuentaPendiente { .. } => NotificationType::CuentaPendiente,
            MessageData::RecordatorioDeuda(_) => NotificationType::RecordatorioDeuda,
            MessageData::MensajeCantina { .. } => NotificationType::MensajeCantina,
            MessageData::TarjetaPorVencer { .. } => NotificationType::TarjetaPorVencer,
            MessageData::TarjetaVencida { .. } => NotificationType::TarjetaVencida,
            MessageData::ConsumoRealizado { .. } => NotificationType::ConsumoRealizado,
            MessageData::ResumenConsumos(_) => NotificationType::ResumenConsumos,
        }
    }

    /// The other items of a family's daily message this notice leads; empty for every other notice.
    pub fn ademas(&self) -> &[Ademas] {
        match self {
            MessageData::RecordatorioDeuda(a) => &a.ademas,
            MessageData::SaldoBajo(a) => &a.ademas,
            MessageData::TarjetaPorVencer { ademas, .. } | MessageData::TarjetaVencida { ademas, .. } => ademas,
            MessageData::RecargaExitosa { .. }
            | MessageData::TarjetaBloqueada { .. }
            | MessageData::CuentaPendiente { .. }
            | MessageData::MensajeCantina { .. }
            | MessageData::ConsumoRealizado { .. }
            | MessageData::ResumenConsumos(_) => &[],
        }
    }

    /// Sets the other items of a family's daily message; `false` (and nothing set) for a type that is never part of
    /// one.
    pub fn set_ademas(&mut self, items: Vec<Ademas>) -> bool {
        match self {
            MessageData::RecordatorioDeuda(a) => a.ademas = items,
            MessageData::SaldoBajo(a) => a.ademas = items,
            MessageData::TarjetaPorVencer { ademas, .. } | MessageData::TarjetaVencida { ademas, .. } => {
                *ademas = items
            }
            MessageData::RecargaExitosa { .. }
            | MessageData::TarjetaBloqueada { .. }
            | MessageData::CuentaPendiente { .. }
            | MessageData::MensajeCantina { .. }
            | MessageData::ConsumoRealizado { .. }
            | MessageData::ResumenConsumos(_) => return false,
        }
        true
    }

    /// Realistic sample data for `send-test` and template previews.
    pub fn sample(t: NotificationType) -> MessageData {
        let (padre, alumno, nro_tarjeta) = ("Ana".to_string(), "Luis Benítez".to_string(), "0001234".to_string());
        let fecha = local_datetime(Timestamp::now());
        match t {
            NotificationType::RecargaExitosa => MessageData::RecargaExitosa {
                padre,
                alumno,
                nro_tarjeta,
                monto: Guaranies(50_000),
                saldo: Guaranies(62_500),
                fecha,
                referencia: Some("Prueba".into()),
            },
            NotificationType::SaldoBajo => MessageData::SaldoBajo(AvisoSaldoBajo::una(
                padre,
                TarjetaSaldoBajo { alumno, nro_tarjeta, saldo: Guaranies(3_500), umbral: Guaranies(5_000) },
                fecha,
            )),
            NotificationType::TarjetaBloqueada => MessageData::TarjetaBloqueada { padre, alumno, nro_tarjeta, fecha },
            NotificationType::CuentaPendiente => MessageData::CuentaPendiente {
                padre,
                cliente: "Ana Benítez".into(),
                ruc_ci: "1234567".into(),
                monto: Guaranies(185_000),
                ventas: 4,
                desde: "03/11/2026".into(),
            },
            NotificationType::RecordatorioDeuda => MessageData::RecordatorioDeuda(AvisoDeuda {
                padre,
                tarjetas: vec![TarjetaDeuda {
                    alumno,
                    nro_tarjeta,
                    monto: Guaranies(12_000),
                    desde: "16/11/2026".into(),
                }],
                dias: 7,
                nivel: NivelRecordatorio::Urgente,
                ademas: Vec::new(),
            }),
            NotificationType::TarjetaPorVencer => MessageData::TarjetaPorVencer {
                padre,
                alumno,
                nro_tarjeta,
                vence: "20/12/2026".into(),
                dias: 15,
                ademas: Vec::new(),
            },
            NotificationType::TarjetaVencida => MessageData::TarjetaVencida {
                padre,
                alumno,
                nro_tarjeta,
                vencio: "20/12/2026".into(),
                ademas: Vec::new(),
            },
            NotificationType::MensajeCantina => MessageData::MensajeCantina {
                padre,
                alumno: Some(alumno),
                mensaje: "Hola, Luis olvidó su almuerzo en la cantina.\nPuede retirarlo hasta las 14:00.".into(),
                fecha,
            },
            NotificationType::ConsumoRealizado => MessageData::ConsumoRealizado {
                padre,
                alumno,
                nro_tarjeta,
                detalle: "Almuerzo del día".into(),
                monto: Guaranies(25_000),
                saldo: Guaranies(40_000),
                fecha,
            },
            NotificationType::ResumenConsumos => MessageData::ResumenConsumos(ResumenConsumos {
                padre,
                fecha: crate::present::format::fecha(local_date(Timestamp::now())),
                hijos: vec![
                    ConsumosHijo {
                        alumno,
                        nro_tarjeta,
                        consumos: vec![
                            Consumo { hora: "09:40".into(), detalle: "Empanada".into(), monto: Guaranies(8_000) },
                            Consumo {
                                hora: "12:15".into(),
                                detalle: "Almuerzo del día".into(),
                                monto: Guaranies(25_000),
                            },
                        ],
                        saldo: Guaranies(40_000),
                    },
                    ConsumosHijo {
                        alumno: "Sofía Benítez".into(),
                        nro_tarjeta: "0001235".into(),
                        consumos: vec![Consumo {
                            hora: "10:05".into(),
                            detalle: "Jugo".into(),
                            monto: Guaranies(6_000),
                        }],
                        saldo: Guaranies(12_000),
                    },
                ],
            }),
        }
    }

    /// The parent's name the notice greets (every type has one; it is each template's first parameter).
    pub fn padre_mut(&mut self) -> &mut String {
        match self {
            MessageData::RecargaExitosa { padre, .. }
            | MessageData::TarjetaBloqueada { padre, .. }
            | MessageData::CuentaPendiente { padre, .. }
            | MessageData::MensajeCantina { padre, .. }
            | MessageData::TarjetaPorVencer { padre, .. }
            | MessageData::TarjetaVencida { padre, .. }
            | MessageData::ConsumoRealizado { padre, .. } => padre,
            MessageData::SaldoBajo(a) => &mut a.padre,
            MessageData::RecordatorioDeuda(a) => &mut a.padre,
            MessageData::ResumenConsumos(r) => &mut r.padre,
        }
    }

    /// The body parameters of the approved WhatsApp template, in this documented order ({{1}}, {{2}}, …):
    /// - `recarga_exitosa`: padre, alumno, monto, saldo, fecha
    /// - `saldo_bajo`: padre, alumno, saldo, umbral; a notice about several cards lists them in the same order in
    ///   each parameter ("Luis Benítez y Ana Benítez", "Gs. 3.000 y Gs. 1.500"), the threshold once when they
    ///   share it (an approved template's parameters cannot change in number or order)
    /// - `tarjeta_bloqueada`: padre, alumno, nro_tarjeta, fecha
    /// - `cuenta_pendiente`: padre, monto, desde
    /// - `recordatorio_deuda`: padre, alumno, monto, dias; a family with several cards in debt lists students and
    ///   amounts in the same order in each parameter, as `saldo_bajo` does
    /// - `tarjeta_por_vencer`: padre, alumno, nro_tarjeta, vence
    /// - `tarjeta_vencida`: padre, alumno, nro_tarjeta, vencio
    ///
    /// A family's daily message sends its main item's template with these parameters unchanged (an approved
    /// template cannot change its number of parameters); the other items it carries are not repeated in WhatsApp.
    /// - `mensaje_cantina`: padre, mensaje, fecha; the staff's text with its line breaks and runs of spaces as one
    ///   space (WhatsApp refuses a parameter with a newline, a tab or more than four spaces in a row); no student
    ///   (a row may name none, and WhatsApp refuses an empty parameter)
    /// - `consumo_realizado`: padre, alumno, detalle, monto, fecha, saldo; the `detalle` on one line as for
    ///   `mensaje_cantina`
    /// - `resumen_consumos`: padre, fecha (the day), total, one line per child joined with "; " ("Luis Benítez:
    ///   2 compras, Gs. 33.000 (saldo Gs. 40.000); Sofía Benítez: 1 compra, Gs. 6.000 (saldo Gs. 12.000)")
    ///
    /// The types of the family's daily message (`saldo_bajo`, `recordatorio_deuda`, `tarjeta_por_vencer`,
    /// `tarjeta_vencida`) end with one more parameter: the day's other notices ("Además: la tarjeta 0003 de Luis
    /// vence el 20/12/2026: …"), or "Gracias." when there are none (an approved template has a fixed number of
    /// parameters, and WhatsApp refuses an empty one). Without it a parent on WhatsApp would never read them.
    pub fn template_parameters(&self) -> Vec<String> {
        let mut p = self.own_template_parameters();
        if matches!(
            self,
            MessageData::SaldoBajo(_)
                | MessageData::RecordatorioDeuda(_)
                | MessageData::TarjetaPorVencer { .. }
                | MessageData::TarjetaVencida { .. }
        ) {
            let ademas = self.ademas();
            p.push(match ademas.is_empty() {
                true => "Gracias.".to_string(),
                false => format!("Además: {}", ademas.iter().map(|a| a.texto.as_str()).collect::<Vec<_>>().join(" ")),
            });
        }
        p
    }

    fn own_template_parameters(&self) -> Vec<String> {
        match self {
            MessageData::RecargaExitosa { padre, alumno, monto, saldo, fecha, .. } => {
                vec![padre.clone(), alumno.clone(), monto.to_string(), saldo.to_string(), fecha.clone()]
            }
            MessageData::SaldoBajo(a) => {
                let t = a.tarjetas();
                let umbrales: Vec<String> = if t.iter().all(|c| c.umbral == t[0].umbral) {
                    vec![t[0].umbral.to_string()]
                } else {
                    t.iter().map(|c| c.umbral.to_string()).collect()
                };
                vec![
                    a.padre.clone(),
                    enumeracion(t.iter().map(|c| c.alumno.as_str())),
                    enumeracion(t.iter().map(|c| c.saldo.to_string())),
                    enumeracion(umbrales),
                ]
            }
            MessageData::TarjetaBloqueada { padre, alumno, nro_tarjeta, fecha } => {
                vec![padre.clone(), alumno.clone(), nro_tarjeta.clone(), fecha.clone()]
            }
            MessageData::CuentaPendiente { padre, monto, desde, .. } => {
                vec![padre.clone(), monto.to_string(), desde.clone()]
            }
            MessageData::RecordatorioDeuda(a) => vec![
                a.padre.clone(),
                enumeracion(a.tarjetas.iter().map(|t| t.alumno.as_str())),
                enumeracion(a.tarjetas.iter().map(|t| t.monto.to_string())),
                a.dias.to_string(),
            ],
            MessageData::TarjetaPorVencer { padre, alumno, nro_tarjeta, vence, .. } => {
                vec![padre.clone(), alumno.clone(), nro_tarjeta.clone(), vence.clone()]
            }
            MessageData::TarjetaVencida { padre, alumno, nro_tarjeta, vencio, .. } => {
                vec![padre.clone(), alumno.clone(), nro_tarjeta.clone(), vencio.clone()]
            }
            MessageData::MensajeCantina { padre, mensaje, fecha, .. } => {
                vec![padre.clone(), mensaje.split_whitespace().collect::<Vec<_>>().join(" "), fecha.clone()]
            }
            MessageData::ConsumoRealizado { padre, alumno, detalle, monto, saldo, fecha, .. } => vec![
                padre.clone(),
                alumno.clone(),
                detalle.split_whitespace().collect::<Vec<_>>().join(" "),
                monto.to_string(),
                fecha.clone(),
                saldo.to_string(),
            ],
            MessageData::ResumenConsumos(r) => {
                vec![r.padre.clone(), r.fecha.clone(), r.total().to_string(), r.por_hijo().join("; ")]
            }
        }
    }
}

/// "A", "A y B", "A, B y C": a list as written in Spanish.
pub fn enumeracion<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let items: Vec<S> = items.into_iter().collect();
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(if i + 1 == items.len() { " y " } else { ", " });
        }
        out.push_str(item.as_ref());
    }
    out
}

fn asuncion() -> TimeZone {
    // The bundled tz database, not the container's: Asunción's rules changed in 2024.
    TimeZone::get("America/Asuncion").unwrap_or(TimeZone::UTC)
}

pub fn local_date(ts: Timestamp) -> Date {
    ts.to_zoned(asuncion()).date()
}

/// `23/11/2026 19:45`, as parents in Paraguay write dates.
pub fn local_datetime(ts: Timestamp) -> String {
    ts.to_zoned(asuncion()).strftime("%d/%m/%Y %H:%M").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::tarjeta;

    #[test]
    fn dates_are_in_asuncion_which_is_utc_minus_3_all_year() {
        // 02:30 UTC on 24 Nov is still 23 Nov in Asunción.
        let ts: Timestamp = "2026-11-24T02:30:00Z".parse().unwrap();
        assert_eq!(local_date(ts).to_string(), "2026-11-23");
        assert_eq!(local_datetime(ts), "23/11/2026 23:30");
        // July: no more DST since October 2024; still UTC-3.
        let ts: Timestamp = "2026-07-01T12:00:00Z".parse().unwrap();
        assert_eq!(local_datetime(ts), "01/07/2026 09:00");
    }

    /// The stored tag (`plantilla`) is the serde name of the variant, a second spelling of the type's name: every
    /// type's sample carries the tag `as_str()`, is of that type and reads back as itself.
    #[test]
    fn every_type_is_tagged_with_its_stored_name() {
        for t in NotificationType::ALL {
            let d = MessageData::sample(t);
            assert_eq!(d.notification_type(), t);
            let v = serde_json::to_value(&d).unwrap();
            assert_eq!(v["plantilla"], t.as_str(), "{t}");
            let back: MessageData = serde_json::from_value(v).unwrap();
            assert_eq!(back.notification_type(), t);
        }
    }

    #[test]
    fn data_round_trips_through_json() {
        let d = MessageData::SaldoBajo(
            AvisoSaldoBajo::varias(
                "Ana".into(),
                vec![tarjeta("Luis Pérez", "T1", 3000, 5000), tarjeta("Sofía Pérez", "T2", 800, 5000)],
                "01/07/2026 09:00".into(),
            )
            .unwrap(),
        );
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["plantilla"], "saldo_bajo");
        assert_eq!(v["padre"], "Ana");
        assert_eq!(v["tarjetas"][0]["nro_tarjeta"], "T1");
        assert_eq!(v["tarjetas"][1]["saldo"], 800);
        let back: MessageData = serde_json::from_value(v).unwrap();
        assert_eq!(back, d);
        assert_eq!(back.notification_type(), NotificationType::SaldoBajo);
    }

    #[test]
    fn a_saldo_bajo_row_stored_with_the_single_card_shape_still_reads() {
        // `datos` as written before the sweep grouped cards per parent.
        let stored = serde_json::json!({
            "plantilla": "saldo_bajo",
            "padre": "Ana",
            "alumno": "Luis Pérez",
            "nro_tarjeta": "T1",
            "saldo": 3000,
            "umbral": 5000,
            "fecha": "01/07/2026 09:00"
        });
        let MessageData::SaldoBajo(a) = serde_json::from_value(stored).unwrap() else { panic!("not saldo_bajo") };
        assert_eq!(a.padre, "Ana");
        assert_eq!(a.fecha, "01/07/2026 09:00");
        assert_eq!(a.tarjetas(), [tarjeta("Luis Pérez", "T1", 3000, 5000)]);
        // Written back in the current shape.
        let v = serde_json::to_value(MessageData::SaldoBajo(a)).unwrap();
        assert_eq!(v["tarjetas"][0]["alumno"], "Luis Pérez");
        assert!(v.get("alumno").is_none());
    }

    #[test]
    fn a_saldo_bajo_without_cards_does_not_read() {
        let empty = serde_json::json!({"plantilla": "saldo_bajo", "padre": "Ana", "tarjetas": [], "fecha": "x"});
        assert!(serde_json::from_value::<MessageData>(empty).is_err());
        let neither = serde_json::json!({"plantilla": "saldo_bajo", "padre": "Ana", "fecha": "x"});
        assert!(serde_json::from_value::<MessageData>(neither).is_err());
        assert!(AvisoSaldoBajo::varias("Ana".into(), Vec::new(), "x".into()).is_none());
    }

    #[test]
    fn whatsapp_parameters_keep_their_number_and_order_with_several_cards() {
        let one = MessageData::SaldoBajo(AvisoSaldoBajo::una(
            "Ana".into(),
            tarjeta("Luis Pérez", "T1", 3000, 5000),
            "01/07/2026 09:00".into(),
        ));
        assert_eq!(one.template_parameters(), ["Ana", "Luis Pérez", "Gs. 3.000", "Gs. 5.000", "Gracias."]);
        let same = MessageData::SaldoBajo(
            AvisoSaldoBajo::varias(
                "Ana".into(),
                vec![tarjeta("Luis Pérez", "T1", 3000, 5000), tarjeta("Sofía Pérez", "T2", 800, 5000)],
                "01/07/2026 09:00".into(),
            )
            .unwrap(),
        );
        assert_eq!(
            same.template_parameters(),
            ["Ana", "Luis Pérez y Sofía Pérez", "Gs. 3.000 y Gs. 800", "Gs. 5.000", "Gracias."]
        );
        let mixed = MessageData::SaldoBajo(
            AvisoSaldoBajo::varias(
                "Ana".into(),
                vec![
                    tarjeta("Luis", "T1", 3000, 5000),
                    tarjeta("Sofía", "T2", 800, 5000),
                    tarjeta("Tomás", "T3", 9000, 10000),
                ],
                "01/07/2026 09:00".into(),
            )
            .unwrap(),
        );
        assert_eq!(
            mixed.template_parameters(),
            [
                "Ana",
                "Luis, Sofía y Tomás",
                "Gs. 3.000, Gs. 800 y Gs. 9.000",
                "Gs. 5.000, Gs. 5.000 y Gs. 10.000",
                "Gracias."
            ]
        );
        // The day's other notices ride in the last parameter: a parent on WhatsApp reads them too.
        let mut family = one.clone();
        family.set_ademas(vec![Ademas {
            texto: "La tarjeta T3 de Tomás vence el 20/12/2026: renuévela en la cantina antes de esa fecha.".into(),
            breve: "tarjeta de Tomás vence el 20/12".into(),
        }]);
        assert_eq!(
            family.template_parameters().last().map(String::as_str),
            Some("Además: La tarjeta T3 de Tomás vence el 20/12/2026: renuévela en la cantina antes de esa fecha.")
        );
        assert_eq!(family.template_parameters().len(), one.template_parameters().len());
    }

    #[test]
    fn enumeracion_joins_as_in_spanish() {
        assert_eq!(enumeracion(Vec::<&str>::new()), "");
        assert_eq!(enumeracion(["A"]), "A");
        assert_eq!(enumeracion(["A", "B"]), "A y B");
        assert_eq!(enumeracion(["A", "B", "C", "D"]), "A, B, C y D");
    }
}
