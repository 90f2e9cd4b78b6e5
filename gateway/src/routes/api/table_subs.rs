//! The rows of the operations table for webhook subscriptions and their deliveries.

use axum::routing::{MethodRouter, delete, get, patch, post};
use cynode_orchestrator::api_tokens::Role;

use super::{Body, Operation, Param, deliveries, op, subscriptions};
use crate::server::AppState;

const SUB: Param = Param { name: "id", location: "path", description: "Subscription id (UUID) or name" };
const DELIVERY: Param = Param { name: "id", location: "path", description: "Delivery id (UUID)" };

pub(super) fn rows() -> Vec<(Operation, MethodRouter<AppState>)> {
    use Body::{Empty, Json};
    let (v, o) = (Some(Role::Viewer), Some(Role::Operator));
    let list = &[
        SUB,
        Param { name: "state", location: "query", description: "Only this state: pending, delivered, failed, dead" },
        Param { name: "limit", location: "query", description: "Page size, 1–1000 (default 50)" },
        Param { name: "before", location: "query", description: "`next_cursor` of the previous page" },
    ];
    let path = "/v1/subscriptions/{id}";
    vec![
        (
            op(
                "post",
                "/v1/subscriptions",
                "createSubscription",
                "Subscribe a URL to events (the secret is returned once)",
                o,
                Some("CreateSubscriptionRequest"),
                201,
                Json("CreatedSubscription"),
                &[],
            ),
            post(subscriptions::create),
        ),
        (
            op(
                "get",
                "/v1/subscriptions",
                "listSubscriptions",
                "Webhook subscriptions, by name",
                v,
                None,
                200,
                Json("SubscriptionList"),
                &[],
            ),
            get(subscriptions::list),
        ),
        (
            op("get", path, "getSubscription", "A subscription", v, None, 200, Json("Subscription"), &[SUB]),
            get(subscriptions::get),
        ),
        (
            op(
                "patch",
                path,
                "updateSubscription",
                "Change URL, event types, filter, or enable/disable",
                o,
                Some("UpdateSubscriptionRequest"),
                200,
                Json("Subscription"),
                &[SUB],
            ),
            patch(subscriptions::update),
        ),
        (
            op(
                "delete",
                path,
                "deleteSubscription",
                "Delete a subscription and its deliveries",
                o,
                None,
                204,
                Empty,
                &[SUB],
            ),
            delete(subscriptions::delete),
        ),
        (
            op(
                "post",
                "/v1/subscriptions/{id}/rotate",
                "rotateSubscriptionSecret",
                "Rotate the signing secret (the previous one signs too during a grace period)",
                o,
                Some("RotateRequest"),
                200,
                Json("RotateResponse"),
                &[SUB],
            ),
            post(subscriptions::rotate),
        ),
        (
            op(
                "post",
                "/v1/subscriptions/{id}/test",
                "testSubscription",
                "Send a `ping` message",
                o,
                None,
                202,
                Json("QueuedDelivery"),
                &[SUB],
            ),
            post(subscriptions::test),
        ),
        (
            op(
                "get",
                "/v1/subscriptions/{id}/deliveries",
                "listDeliveries",
                "Deliveries of a subscription, newest first",
                v,
                None,
                200,
                Json("DeliveryList"),
                list,
            ),
            get(deliveries::list),
        ),
        (
            op(
                "post",
                "/v1/subscriptions/{id}/replay",
                "replayDeliveries",
                "Resend the failed deliveries of a time range",
                o,
                Some("ReplayRangeRequest"),
                202,
                Json("ReplayRangeResponse"),
                &[SUB],
            ),
            post(deliveries::replay_range),
        ),
        (
            op("get", "/v1/deliveries/{id}", "getDelivery", "A delivery", v, None, 200, Json("Delivery"), &[DELIVERY]),
            get(deliveries::get),
        ),
        (
            op(
                "post",
                "/v1/deliveries/{id}/replay",
                "replayDelivery",
                "Send a delivery again with the same webhook-id",
                o,
                None,
                202,
                Json("QueuedDelivery"),
                &[DELIVERY],
            ),
            post(deliveries::replay),
        ),
    ]
}
