//! Kubernetes Events on resources (events.k8s.io, with kube's series
//! aggregation so a repeating event does not flood the API server).

use kube::Resource;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::events::{Event as KubeEvent, EventType as KubeEventType, Recorder};

use crate::runtime::model::{Event, EventType};

fn clip(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
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
