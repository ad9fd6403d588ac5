//! Kubernetes Events on resources (events.k8s.io, with kube's series
//! aggregation so a repeating event does not flood the API server).

use kube::Resource;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::events::{Event as KubeEvent, EventType as KubeEventType, Recorder};

use crate::runtime::model::{Event, EventType};

/// The first `max` bytes of `text`, cut at a character boundary: the API
/// server counts an Event's note in bytes.
fn clip(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// Records one event on `object`. Failing to record is logged, never fatal.
pub async fn publish(recorder: &Recorder, object: &DynamicObject, resource: &ApiResource, event: &Event) {
    let reference = object.object_ref(resource);
    let kube_event = KubeEvent {
        type_: match event.event_type {
            EventType::Normal => KubeEventType::Normal,
            EventType::Warning => KubeEventType::Warning,
        },
        reason: clip(&event.reason, 128),
        note: Some(clip(&event.message, 1024)),
        action: clip(&event.action, 128),
        secondary: None,
    };
    if let Err(error) = recorder.publish(&kube_event, &reference).await {
        tracing::warn!(%error, reason = %event.reason, "cannot record event");
    }
}

#[cfg(test)]
mod tests {
    use super::clip;

    #[test]
    fn clips_to_bytes_at_a_character_boundary() {
        let note = "ü".repeat(1000);
        let clipped = clip(&note, 1024);
        assert_eq!(clipped.len(), 1024);
        assert_eq!(clip("aü", 2), "a", "never half a character");
        assert_eq!(clip("short", 1024), "short");
    }
}
