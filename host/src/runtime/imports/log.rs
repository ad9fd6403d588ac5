//! `log`: component messages into the host's log, tagged with who said it.

use super::CallContext;
use crate::runtime::model::LogLevel;

/// Longest message kept; a component cannot flood the log with one call.
const MAX_MESSAGE: usize = 4096;

/// Writes one message.
pub fn write(call: &CallContext, level: LogLevel, message: &str) {
    let message: &str = match message.char_indices().nth(MAX_MESSAGE) {
        Some((end, _)) => &message[..end],
        None => message,
    };
    let (component, resource) = (&call.component, &call.resource);
    match level {
        LogLevel::Trace => tracing::trace!(component, resource, "{message}"),
        LogLevel::Debug => tracing::debug!(component, resource, "{message}"),
        LogLevel::Info => tracing::info!(component, resource, "{message}"),
        LogLevel::Warn => tracing::warn!(component, resource, "{message}"),
        LogLevel::Error => tracing::error!(component, resource, "{message}"),
    }
}
