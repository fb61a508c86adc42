"""Drives a live Herald through the official novu-py SDK (3.19.0) and checks every management operation.

Usage: HERALD_URL=http://127.0.0.1:PORT HERALD_KEY=... HERALD_OTHER_KEY=... python novu_sdk_test.py
Prints one line per SDK operation; exits non-zero on the first failed check.
"""
import os
import sys

from checks import check, summary
import uuid

import novu_py
from novu_py import Novu, models

URL = os.environ["HERALD_URL"]
KEY = os.environ["HERALD_KEY"]
OTHER_KEY = os.environ["HERALD_OTHER_KEY"]
novu = Novu(secret_key=KEY, server_url=URL)
other = Novu(secret_key=OTHER_KEY, server_url=URL)
run = uuid.uuid4().hex[:8]

APNS_P8 = os.environ["HERALD_TEST_P8"]


def expect_error(operation, status, call, error_type=None):
    """Calls the SDK and expects the typed error it raises for `status` (ErrorDto, ValidationErrorDto, …)."""
    try:
        call()
    except models.ResponseValidationError as error:
        check(operation, False, f"the SDK could not parse the error body: {error}")
    except novu_py.models.NovuError as error:
        actual = error.raw_response.status_code
        expected_type = error_type or (models.ValidationErrorDto if status == 422 else models.ErrorDto)
        check(operation, actual == status and isinstance(error, expected_type), f"got {actual} {type(error).__name__}")
        return error
    check(operation, False, "no error raised")


no_retries = novu_py.utils.RetryConfig("backoff", novu_py.utils.BackoffStrategy(1, 1, 1.0, 1), False)

# --- subscribers -------------------------------------------------------------------------------------------
sid = f"sdk-user-{run}"
created = novu.subscribers.create(create_subscriber_request_dto={"subscriber_id": sid, "first_name": "Ann", "last_name": "Lee",
                                                                 "email": f"{sid}@example.com", "phone": "+15550001111", "data": {"tier": "gold"}})
check("subscribers.create", created.result.subscriber_id == sid and created.result.first_name == "Ann")
fetched = novu.subscribers.retrieve(subscriber_id=sid)
check("subscribers.retrieve", fetched.result.email == f"{sid}@example.com" and fetched.result.data == {"tier": "gold"})
patched = novu.subscribers.patch(subscriber_id=sid, patch_subscriber_request_dto={"last_name": None, "locale": "en-GB"})
check("subscribers.patch (null clears, absent keeps)", not patched.result.last_name and patched.result.first_name == "Ann"
      and patched.result.locale == "en-GB")
error = expect_error("subscribers.create failIfExists -> 409", 409,
                     lambda: novu.subscribers.create(create_subscriber_request_dto={"subscriber_id": sid}, fail_if_exists=True, retries=no_retries),
                     models.SubscriberResponseDtoError)
expect_error("subscribers.retrieve unknown -> 404", 404, lambda: novu.subscribers.retrieve(subscriber_id=f"nobody-{run}"))
expect_error("subscribers.create bad email -> 422", 422,
             lambda: novu.subscribers.create(create_subscriber_request_dto={"subscriber_id": f"bad-{run}", "email": "not-an-email"}))
bulk = novu.subscribers.create_bulk(bulk_subscriber_create_dto={"subscribers": [
    {"subscriber_id": f"bulk-{run}-{i}", "first_name": f"B{i}"} for i in range(12)] + [{"subscriber_id": sid}]})
check("subscribers.create_bulk", len(bulk.result.created) == 12 and len(bulk.result.updated) == 1 and bulk.result.failed == [])
first = novu.subscribers.search(request={"limit": 5, "order_direction": "ASC"})
check("subscribers.search page 1", len(first.result.data) == 5 and first.result.next is not None and first.result.total_count >= 13)
seen = [s.subscriber_id for s in first.result.data]
cursor = first.result.next
while cursor:
    page = novu.subscribers.search(request={"limit": 5, "order_direction": "ASC", "after": cursor})
    seen += [s.subscriber_id for s in page.result.data]
    cursor = page.result.next
check("subscribers.search across pages", len(seen) == len(set(seen)) == first.result.total_count, f"{len(seen)} vs {first.result.total_count}")
by_email = novu.subscribers.search(request={"email": f"{sid}@example.com"})
check("subscribers.search by email", [s.subscriber_id for s in by_email.result.data] == [sid])
isolated = other.subscribers.search(request={"email": f"{sid}@example.com"})
check("subscribers.search from another environment is empty", isolated.result.data == [] and isolated.result.total_count == 0)
expect_error("subscribers.retrieve from another environment -> 404", 404, lambda: other.subscribers.retrieve(subscriber_id=sid))

# --- integrations ------------------------------------------------------------------------------------------
apns = novu.integrations.create(create_integration_request_dto={
    "provider_id": "apns", "channel": "push", "name": "APNs", "identifier": f"apns-{run}", "active": True,
    "credentials": {"secret_key": APNS_P8, "api_key": "ABC123DEFG", "project_name": "TEAM123456", "application_id": "com.example.app", "secure": False}})
check("integrations.create", apns.result.identifier == f"apns-{run}" and apns.result.active)
check("integrations.create masks secrets", apns.result.credentials.secret_key.startswith("••••") and "PRIVATE" not in apns.result.credentials.secret_key)
hook = novu.integrations.create(create_integration_request_dto={"provider_id": "push-webhook", "channel": "push", "active": True,
                                                                "credentials": {"webhook_url": "https://hooks.example.com/push"}})
check("integrations.create generates an identifier", hook.result.identifier.startswith("push-webhook-"))
expect_error("integrations.create bad .p8 -> 422", 422, lambda: novu.integrations.create(create_integration_request_dto={
    "provider_id": "apns", "channel": "push", "credentials": {"secret_key": "nope", "api_key": "ABC123DEFG", "project_name": "TEAM123456",
                                                               "application_id": "x"}}))
updated = novu.integrations.update(integration_id=apns.result.id, update_integration_request_dto={
    "name": "APNs (sandbox)", "credentials": {"secret_key": apns.result.credentials.secret_key, "api_key": "ABC123DEFG",
                                              "project_name": "TEAM123456", "application_id": "com.example.app", "secure": False}})
check("integrations.update keeps a masked secret", updated.result.name == "APNs (sandbox)" and updated.result.credentials.secret_key == apns.result.credentials.secret_key)
expect_error("integrations.update identifier is immutable -> 422", 422, lambda: novu.integrations.update(
    integration_id=apns.result.id, update_integration_request_dto={"identifier": "renamed"}))
listed = novu.integrations.list()
check("integrations.list", {i.identifier for i in listed.result} >= {f"apns-{run}", hook.result.identifier})
check("integrations.list from another environment excludes them", all(i.identifier != f"apns-{run}" for i in other.integrations.list().result))
active = novu.integrations.list_active()
check("integrations.list_active", all(i.active for i in active.result))
mail1 = novu.integrations.create(create_integration_request_dto={"provider_id": "sendgrid", "channel": "email", "identifier": f"sg1-{run}",
                                                                 "credentials": {"api_key": "SG.key-one-123456", "from": "a@example.com"}})
mail2 = novu.integrations.create(create_integration_request_dto={"provider_id": "sendgrid", "channel": "email", "identifier": f"sg2-{run}",
                                                                 "credentials": {"api_key": "SG.key-two-123456", "from": "b@example.com"}})
primary = novu.integrations.set_as_primary(integration_id=mail2.result.id)
check("integrations.set_as_primary", primary.result.primary)
primaries = [i for i in novu.integrations.list().result if i.channel == "email" and i.primary]
check("integrations: one primary per channel", [i.identifier for i in primaries] == [f"sg2-{run}"])
remaining = novu.integrations.delete(integration_id=mail1.result.id)
check("integrations.delete returns the remaining list", all(i.identifier != f"sg1-{run}" for i in remaining.result))

# --- credentials (device registry) -------------------------------------------------------------------------
tok = lambda c: c * 64  # noqa: E731
put = novu.subscribers.credentials.update(subscriber_id=sid, update_subscriber_channel_request_dto={
    "provider_id": "apns", "integration_identifier": f"apns-{run}", "credentials": {"device_tokens": [tok("a"), tok("b")]}})
channel = next(c for c in put.result.channels if c.provider_id == "apns")
check("subscribers.credentials.update (PUT)", sorted(channel.credentials.device_tokens) == [tok("a"), tok("b")])
patch = novu.subscribers.credentials.append(subscriber_id=sid, update_subscriber_channel_request_dto={
    "provider_id": "apns", "credentials": {"device_tokens": [tok("b"), tok("c")]}})
channel = next(c for c in patch.result.channels if c.provider_id == "apns")
check("subscribers.credentials.append (PATCH, deduplicated)", sorted(channel.credentials.device_tokens) == [tok("a"), tok("b"), tok("c")])
replaced = novu.subscribers.credentials.update(subscriber_id=sid, update_subscriber_channel_request_dto={
    "provider_id": "apns", "credentials": {"device_tokens": [tok("c")]}})
channel = next(c for c in replaced.result.channels if c.provider_id == "apns")
check("subscribers.credentials.update replaces", channel.credentials.device_tokens == [tok("c")])
moved = novu.subscribers.credentials.append(subscriber_id=f"bulk-{run}-0", update_subscriber_channel_request_dto={
    "provider_id": "apns", "credentials": {"device_tokens": [tok("c")]}})
still = novu.subscribers.retrieve(subscriber_id=sid)
check("a token registered for another subscriber moves", all(c.provider_id != "apns" or tok("c") not in (c.credentials.device_tokens or [])
                                                             for c in (still.result.channels or [])))
expect_error("subscribers.credentials.update bad APNs token -> 422", 422, lambda: novu.subscribers.credentials.update(
    subscriber_id=sid, update_subscriber_channel_request_dto={"provider_id": "apns", "credentials": {"device_tokens": ["zz"]}}))
expect_error("subscribers.credentials.update without integration -> 400", 400, lambda: novu.subscribers.credentials.update(
    subscriber_id=sid, update_subscriber_channel_request_dto={"provider_id": "expo", "credentials": {"device_tokens": ["ExponentPushToken[x]"]}}))
novu.subscribers.credentials.update(subscriber_id=sid, update_subscriber_channel_request_dto={
    "provider_id": "apns", "credentials": {"device_tokens": [tok("d")]}})
novu.subscribers.credentials.delete(subscriber_id=sid, provider_id="apns")
after_delete = novu.subscribers.retrieve(subscriber_id=sid)
check("subscribers.credentials.delete", all(c.provider_id != "apns" for c in (after_delete.result.channels or [])))

# --- topics ------------------------------------------------------------------------------------------------
key = f"sdk-topic-{run}"
topic = novu.topics.create(create_update_topic_request_dto={"key": key, "name": "SDK topic"})
check("topics.create", topic.result.key == key and topic.result.name == "SDK topic")
again = novu.topics.create(create_update_topic_request_dto={"key": key, "name": "SDK topic"})
check("topics.create again is an upsert", again.result.id == topic.result.id)
expect_error("topics.create failIfExists -> 409", 409, lambda: novu.topics.create(
    create_update_topic_request_dto={"key": key}, fail_if_exists=True, retries=no_retries), novu_py.models.NovuError)
check("topics.get", novu.topics.get(topic_key=key).result.name == "SDK topic")
check("topics.update", novu.topics.update(topic_key=key, update_topic_request_dto={"name": "Renamed"}).result.name == "Renamed")
members = [f"bulk-{run}-{i}" for i in range(12)]
added = novu.topics.subscriptions.create(topic_key=key, create_topic_subscriptions_request_dto={"subscriber_ids": members + [f"ghost-{run}"]})
check("topics.subscriptions.create", added.result.meta.successful == 12 and added.result.meta.failed == 1)
page = novu.topics.subscriptions.list(request={"topic_key": key, "limit": 5})
listed_members = [s.subscriber.subscriber_id for s in page.result.data]
cursor = page.result.next
while cursor:
    page = novu.topics.subscriptions.list(request={"topic_key": key, "limit": 5, "after": cursor})
    listed_members += [s.subscriber.subscriber_id for s in page.result.data]
    cursor = page.result.next
check("topics.subscriptions.list across pages", sorted(listed_members) == sorted(members))
one = novu.topics.subscriptions.get_subscription(topic_key=key, identifier=f"tk_{key}:{members[0]}")
check("topics.subscriptions.get_subscription", one.result.identifier == f"tk_{key}:{members[0]}" and one.result.id)
removed = novu.topics.subscriptions.delete(topic_key=key, delete_topic_subscriptions_request_dto={"subscriber_ids": members[:2]})
check("topics.subscriptions.delete", removed.result.meta.successful == 2)
retrieved = novu.topics.subscribers.retrieve(topic_key=key, external_subscriber_id=members[2])
check("topics.subscribers.retrieve", retrieved.result.external_subscriber_id == members[2] and retrieved.result.topic_key == key)
listed_topics = novu.topics.list(request={"key": key})
check("topics.list", [t.key for t in listed_topics.result.data] == [key])
check("topics.list from another environment is empty", other.topics.list(request={"key": key}).result.data == [])
expect_error("topics.get from another environment -> 404", 404, lambda: other.topics.get(topic_key=key))
subs = novu.subscribers.topics.list(request={"subscriber_id": members[3]})
check("subscribers.topics.list", [s.topic.key for s in subs.result.data] == [key])
deleted_topic = novu.topics.delete(topic_key=key)
check("topics.delete", deleted_topic.result.acknowledged)
expect_error("topics.get deleted -> 404", 404, lambda: novu.topics.get(topic_key=key))

# --- idempotency -------------------------------------------------------------------------------------------
idem_key = f"idem-{run}"
first_create = novu.subscribers.create(create_subscriber_request_dto={"subscriber_id": f"idem-{run}"}, idempotency_key=idem_key)
replayed = novu.subscribers.create(create_subscriber_request_dto={"subscriber_id": f"idem-{run}"}, idempotency_key=idem_key)
check("idempotency replay returns the first response", replayed.result.id == first_create.result.id
      and replayed.result.created_at == first_create.result.created_at)
expect_error("idempotency key reused with another body -> 422", 422, lambda: novu.subscribers.create(
    create_subscriber_request_dto={"subscriber_id": f"other-{run}"}, idempotency_key=idem_key))

# --- events and activity -----------------------------------------------------------------------------------
import time

SIM_URL = os.environ["HERALD_SIMULATOR_URL"]
hook = novu.integrations.create(create_integration_request_dto={
    "provider_id": "push-webhook", "channel": "push", "identifier": f"sdk-hook-{run}", "name": "SDK hook", "active": True,
    "credentials": {"webhook_url": f"{SIM_URL}/hooks/sdk-{run}"}})
check("integrations.create push-webhook for triggers", hook.result.provider_id == "push-webhook")
tx = f"sdk-tx-{run}"
trigger_to = {"subscriber_id": f"jit-{run}", "first_name": "Jo",
              "channels": [{"provider_id": "push-webhook", "integration_identifier": f"sdk-hook-{run}",
                            "credentials": {"device_tokens": [f"tok-{run}"]}}]}
triggered = novu.trigger(trigger_event_request_dto={"workflow_id": "order-shipped", "to": trigger_to, "payload": {"orderId": "SDK-1"},
                                                      "transaction_id": tx})
check("trigger (JIT subscriber and device token)", triggered.result.acknowledged and triggered.result.status == "processed"
      and triggered.result.transaction_id == tx)
again = novu.trigger(trigger_event_request_dto={"workflow_id": "order-shipped", "to": trigger_to, "payload": {"orderId": "SDK-1"},
                                                  "transaction_id": tx})
check("trigger with the same transactionId and body replays", again.result.transaction_id == tx and again.result.status == "processed")
expect_error("trigger reusing a transactionId with another body -> 422", 422, lambda: novu.trigger(
    trigger_event_request_dto={"workflow_id": "order-shipped", "to": trigger_to, "payload": {"orderId": "SDK-2"}, "transaction_id": tx},
    retries=no_retries))
expect_error("trigger of an unknown workflow -> 422", 422, lambda: novu.trigger(
    trigger_event_request_dto={"workflow_id": f"nope-{run}", "to": "x"}, retries=no_retries))
payload_error = expect_error("trigger with an invalid payload -> 400 PAYLOAD_VALIDATION_ERROR", 400, lambda: novu.trigger(
    trigger_event_request_dto={"workflow_id": "order-shipped", "to": "x", "payload": {"eta": 5}}, retries=no_retries),
    models.PayloadValidationExceptionDto)
check("the 400 lists every field error", payload_error is not None and
      {e.field for e in payload_error.data.errors} == {"orderId", "eta"}, str(getattr(payload_error, "data", None)))
bulk = novu.trigger_bulk(bulk_trigger_event_dto={"events": [
    {"workflow_id": "order-shipped", "to": f"jit-{run}", "payload": {"orderId": f"B-{i}"}} for i in range(3)]})
check("trigger_bulk", len(bulk.result) == 3 and all(r.status == "processed" for r in bulk.result))
broadcast = novu.trigger_broadcast(trigger_event_to_all_request_dto={"name": "order-shipped", "payload": {"orderId": "ALL-1"}})
check("trigger_broadcast", broadcast.result.status == "processed")

deadline = time.time() + 20
messages = None
while time.time() < deadline:
    messages = novu.messages.retrieve(request={"transaction_id": [tx]})
    if messages.result.data and all(m.status == "sent" for m in messages.result.data):
        break
    time.sleep(0.2)
check("messages.retrieve by transactionId (delivered to the simulator)", messages is not None and len(messages.result.data) == 1
      and messages.result.data[0].status == "sent" and messages.result.data[0].device_tokens == [f"tok-{run}"],
      str(messages.result.data if messages else None))
activity = novu.notifications.list(request={"transaction_id": tx})
check("notifications.list with jobs and execution details", len(activity.result.data) == 1
      and [j.status for j in activity.result.data[0].jobs] == ["completed", "skipped"]
      and any(d.detail == "message_sent" for d in activity.result.data[0].jobs[0].execution_details))
one_notification = novu.notifications.retrieve(notification_id=activity.result.data[0].id)
check("notifications.retrieve", one_notification.result.transaction_id == tx)
message_id = messages.result.data[0].id
deleted_message = novu.messages.delete(message_id=message_id)
check("messages.delete", deleted_message.result.acknowledged and deleted_message.result.status == "deleted")

delayed_tx = f"sdk-delay-{run}"
novu.trigger(trigger_event_request_dto={"workflow_id": "appointment-reminder", "to": f"jit-{run}", "transaction_id": delayed_tx,
                                        "payload": {"appointmentId": "A1", "startsAt": "2099-01-01T10:00:00Z", "remindAt": "2099-01-01T09:00:00Z"}})
check("cancel a pending delayed workflow", novu.cancel(transaction_id=delayed_tx).result is True)
novu.trigger(trigger_event_request_dto={"workflow_id": "order-shipped", "to": f"jit-{run}", "transaction_id": f"{tx}-del",
                                        "payload": {"orderId": "DEL"}})
deadline = time.time() + 20
while time.time() < deadline and not novu.messages.retrieve(request={"transaction_id": [f"{tx}-del"]}).result.data:
    time.sleep(0.2)
novu.messages.delete_by_transaction_id(transaction_id=f"{tx}-del")
check("messages.delete_by_transaction_id", novu.messages.retrieve(request={"transaction_id": [f"{tx}-del"]}).result.data == [])

# --- preferences (README §Preferences) ------------------------------------------------------------------------
prefs = novu.subscribers.preferences.list(subscriber_id=sid)
check("subscribers.preferences.list", prefs.result.global_.enabled and prefs.result.global_.channels.email is True
      and any(w.workflow.identifier == "product-updates" and w.channels.email is True for w in prefs.result.workflows))
check("subscribers.preferences.list hides critical workflows by default",
      all(w.workflow.identifier != "password-reset" for w in prefs.result.workflows))
critical = novu.subscribers.preferences.list(subscriber_id=sid, criticality=models.Criticality.CRITICAL)
check("subscribers.preferences.list criticality=critical", {w.workflow.identifier for w in critical.result.workflows}
      == {"password-reset"}, str([w.workflow.identifier for w in critical.result.workflows]))
updated = novu.subscribers.preferences.update(subscriber_id=sid, patch_subscriber_preferences_dto={"channels": {"email": False}})
check("subscribers.preferences.update global (partial)", updated.result.global_.channels.email is False
      and updated.result.global_.channels.sms is True)
per_workflow = novu.subscribers.preferences.update(
    subscriber_id=sid, patch_subscriber_preferences_dto={"workflow_id": "product-updates", "channels": {"email": True}})
news = next(w for w in per_workflow.result.workflows if w.workflow.identifier == "product-updates")
check("subscribers.preferences.update per workflow beats global", news.channels.email is True and news.updated_at is not None
      and [(o.channel, o.source) for o in news.overrides] == [("email", "subscriber")])
bulk_prefs = novu.subscribers.preferences.bulk_update(subscriber_id=sid, bulk_update_subscriber_preferences_dto={
    "preferences": [{"workflow_id": "order-shipped", "channels": {"push": False}},
                    {"workflow_id": "product-updates", "channels": {"email": False}}]})
check("subscribers.preferences.bulk_update", [(p.workflow.identifier, p.level) for p in bulk_prefs.result]
      == [("order-shipped", "template"), ("product-updates", "template")]
      and bulk_prefs.result[0].channels.push is False and bulk_prefs.result[1].channels.email is False)
expect_error("subscribers.preferences.update of a critical workflow -> 400", 400,
             lambda: novu.subscribers.preferences.update(subscriber_id=sid, patch_subscriber_preferences_dto={
                 "workflow_id": "password-reset", "channels": {"email": False}}))
expect_error("subscribers.preferences.update of an unknown workflow -> 404", 404,
             lambda: novu.subscribers.preferences.update(subscriber_id=sid, patch_subscriber_preferences_dto={
                 "workflow_id": f"nope-{run}", "channels": {"email": False}}))
expect_error("subscribers.preferences.list of an unknown subscriber -> 404", 404,
             lambda: novu.subscribers.preferences.list(subscriber_id=f"nobody-{run}"))
expect_error("subscribers.preferences.list from another environment -> 404", 404,
             lambda: other.subscribers.preferences.list(subscriber_id=sid))

# --- delete ------------------------------------------------------------------------------------------------
removed_subscriber = novu.subscribers.delete(subscriber_id=sid)
check("subscribers.delete", removed_subscriber.result.acknowledged and removed_subscriber.result.status == "deleted")
expect_error("subscribers.delete again -> 404", 404, lambda: novu.subscribers.delete(subscriber_id=sid))

# These point at the real APNs and SendGrid with made-up credentials: the suites after this one must not send through them.
novu.integrations.delete(integration_id=mail2.result.id)
remaining = novu.integrations.delete(integration_id=apns.result.id)
check("integrations.delete of the remaining test integrations", {i.identifier for i in remaining.result}.isdisjoint({f"apns-{run}", f"sg2-{run}"}))
summary("novu-py 3.19.0")
