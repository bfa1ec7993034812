//! Presentation shared by the operator commands, the channel-state reports and the service's logs: local times,
//! ages and tables (`format`), and addresses masked wherever they are shown (`mask`). Pure; imports only `domain`.

pub mod format;
pub mod mask;
