//! Kubernetes Events on resources (events.k8s.io, with kube's series
//! aggregation so a repeating event does not flood the API server).

use std::sync::Mutex;

use kube::Resource;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::events::{Event as KubeEvent, EventType as KubeEventType, Recorder, Reporter};

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

/// Publishes after which the recorder is replaced by a fresh one.
///
/// kube's `Recorder` keeps every event it published for six minutes, to
/// aggregate repeats into a series, and drops old ones only when it next
/// publishes. A thousand resources created and deleted in a few minutes leave
/// thousands of events in it (measured: 8 MiB per round of 1,000 clients).
/// A fresh recorder every 256 events bounds that cache; an event repeating
/// across a rotation starts a new series, which costs one Event object.
const EVENTS_PER_RECORDER: u32 = 256;

/// Where a controller's Events go: kube's recorder, rotated so that its
/// cache stays bounded.
pub struct EventSink {
    client: kube::Client,
    reporter: Reporter,
    current: Mutex<(Recorder, u32)>,
}

impl EventSink {
    /// A sink reporting as `reporter`.
    pub fn new(client: kube::Client, reporter: Reporter) -> Self {
        let recorder = Recorder::new(client.clone(), reporter.clone());
        EventSink {
            client,
            reporter,
            current: Mutex::new((recorder, 0)),
        }
    }

    /// The recorder to publish the next event with.
    fn recorder(&self) -> Recorder {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.1 >= EVENTS_PER_RECORDER {
            *current = (Recorder::new(self.client.clone(), self.reporter.clone()), 0);
        }
        current.1 += 1;
        current.0.clone()
    }

    /// Records one event on `object`. Failing to record is logged, never
    /// fatal.
    pub async fn publish(&self, object: &DynamicObject, resource: &ApiResource, event: &Event) {
        publish(&self.recorder(), object, resource, event).await;
    }
}

/// Records one event on `object`. Failing to record is logged, never fatal.
async fn publish(recorder: &Recorder, object: &DynamicObject, resource: &ApiResource, event: &Event) {
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
