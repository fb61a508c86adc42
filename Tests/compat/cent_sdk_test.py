"""Drives a live Herald through the official `cent` SDK (5.2.0): Centrifugo PRO's device registry and topic methods.

Usage: HERALD_URL=http://127.0.0.1:PORT HERALD_KEY=... HERALD_OTHER_KEY=... python cent_sdk_test.py
Prints one line per method call; exits non-zero on the first failed check. The sends go through Herald's real
provider clients to the simulator's emulators (HERALD_SIMULATOR_URL, HERALD_SIMULATOR_TLS_URL), where the script checks
what arrived.
"""
import base64
import json
import os
import sys
import time
import urllib.request

from checks import check, summary
import uuid

from cent import (Client, CentApiResponseError, DeviceListRequest, DeviceRegisterRequest, DeviceRemoveRequest, DeviceTopicListRequest,
                  DeviceTopicUpdateRequest, DeviceUpdateRequest, UserTopicListRequest, BatchRequest, SendPushNotificationRequest,
                  PushNotification, FcmPushNotification, HmsPushNotification, ApnsPushNotification, CancelPushRequest,
                  UpdatePushStatusRequest)
from cent.dto import (DeviceFilter, DeviceTopicFilter, DeviceTopicsUpdate, DeviceUserUpdate, DeviceMetaUpdate, UserTopicFilter,
                      UserTopicUpdateRequest, PushRecipient, PushLimitStrategy, PushRateLimitStrategy, PushTimeLimitStrategy,
                      RateLimitPolicy, PushLocalization)

URL = os.environ["HERALD_URL"] + "/api"
client = Client(api_url=URL, api_key=os.environ["HERALD_KEY"])
other = Client(api_url=URL, api_key=os.environ["HERALD_OTHER_KEY"])
run = uuid.uuid4().hex[:8]


def expect_api_error(operation, code, call):
    try:
        call()
    except CentApiResponseError as error:
        check(operation, error.code == code, f"got {error.code} {error.message}")
        return
    check(operation, False, "no error raised")


user, other_user = f"u-{run}", f"v-{run}"
apns = "ab" * 32
fcm = f"fcm-token-{run}"
p256dh = base64.urlsafe_b64encode(b"\x04" + b"\x07" * 64).decode().rstrip("=")
auth = base64.urlsafe_b64encode(b"\x01" * 16).decode().rstrip("=")
webpush = '{"endpoint":"https://push.example.com/' + run + '","keys":{"p256dh":"' + p256dh + '","auth":"' + auth + '"}}'

# --- registration ------------------------------------------------------------------------------------------
client.user_topic_update(UserTopicUpdateRequest(user=user, op="add", topics=[f"news-{run}"]))
check("user_topic_update add", True)
first = client.device_register(DeviceRegisterRequest(provider="fcm", token=fcm, platform="android", user=user, meta={"app": "1.0"},
                                                     topics=[f"sports-{run}"]))
check("device_register (fcm)", bool(first.id))
again = client.device_register(DeviceRegisterRequest(provider="fcm", token=fcm, platform="android", user=user, meta={"app": "1.0"},
                                                     topics=[f"sports-{run}"]))
check("device_register of a known token returns the same device", again.id == first.id)
ios = client.device_register(DeviceRegisterRequest(provider="apns", token=apns, platform="ios", user=user))
web = client.device_register(DeviceRegisterRequest(provider="webpush", token=webpush, platform="web", user=user, topics=[f"promo-{run}"]))
client.device_register(DeviceRegisterRequest(provider="webpush", token=webpush, platform="web", user=user))
check("device_register is full-state: omitted topics are reset (the user's stay attached)", client.device_list(
    DeviceListRequest(filter=DeviceFilter(ids=[web.id]), include_topics=True)).items[0].topics == [f"news-{run}"])
check("device_register (apns, webpush)", ios.id and web.id and len({first.id, ios.id, web.id}) == 3)
rotated = client.device_register(DeviceRegisterRequest(id=ios.id, provider="apns", token="cd" * 32, platform="ios", user=user))
check("device_register with id updates the device in place (token rotation)", rotated.id == ios.id)
expect_api_error("device_register unknown provider -> 107", 107, lambda: client.device_register(
    DeviceRegisterRequest(provider="carrier-pigeon", token="x", platform="ios")))
expect_api_error("device_register bad APNs token -> 107", 107, lambda: client.device_register(
    DeviceRegisterRequest(provider="apns", token="zz", platform="ios")))

# --- listing -----------------------------------------------------------------------------------------------
listed = client.device_list(DeviceListRequest(filter=DeviceFilter(users=[user]), include_total_count=True, include_meta=True,
                                              include_topics=True))
check("device_list by user", listed.total_count == 3 and {d.id for d in listed.items} == {first.id, ios.id, web.id})
fcm_device = next(d for d in listed.items if d.id == first.id)
# The device's own topic and, attached to it, its user's (Centrifugo: user topics are attached to the user's devices).
check("device_list includes meta and topics, the user's topics attached",
      fcm_device.meta == {"app": "1.0"} and sorted(fcm_device.topics) == [f"news-{run}", f"sports-{run}"])
web_device = next(d for d in listed.items if d.id == web.id)
check("device_list shows a Web Push endpoint as the token", web_device.token == f"https://push.example.com/{run}" and web_device.provider == "webpush")
page = client.device_list(DeviceListRequest(filter=DeviceFilter(users=[user]), limit=2))
rest = client.device_list(DeviceListRequest(filter=DeviceFilter(users=[user]), limit=2, cursor=page.next_cursor))
check("device_list cursor pagination", len(page.items) == 2 and page.next_cursor and len(rest.items) == 1 and not rest.next_cursor)
by_topic = client.device_list(DeviceListRequest(filter=DeviceFilter(topics=[f"news-{run}"])))
check("device_list by user topic reaches all the user's devices", {d.id for d in by_topic.items} == {first.id, ios.id, web.id})
check("device_list from another environment is empty", other.device_list(DeviceListRequest(filter=DeviceFilter(users=[user]))).items == [])

# --- topics ------------------------------------------------------------------------------------------------
client.device_topic_update(DeviceTopicUpdateRequest(device_id=ios.id, op="add", topics=[f"alerts-{run}", f"sports-{run}"]))
topics = client.device_topic_list(DeviceTopicListRequest(filter=DeviceTopicFilter(device_ids=[ios.id]), include_total_count=True))
check("device_topic_update add + device_topic_list (with the user's topic attached)",
      sorted(t.topic for t in topics.items) == [f"alerts-{run}", f"news-{run}", f"sports-{run}"]
      and all(t.device.id == ios.id for t in topics.items) and topics.total_count == 3)
client.device_topic_update(DeviceTopicUpdateRequest(device_id=ios.id, op="remove", topics=[f"alerts-{run}"]))
prefixed = client.device_topic_list(DeviceTopicListRequest(filter=DeviceTopicFilter(topic_prefix="sports-"), include_total_count=True))
check("device_topic_update remove + topic_prefix filter", {t.device.id for t in prefixed.items} >= {first.id, ios.id}
      and all(t.topic.startswith("sports-") for t in prefixed.items))
expect_api_error("device_topic_update unknown device -> 104", 104, lambda: client.device_topic_update(
    DeviceTopicUpdateRequest(device_id="0" * 24, op="add", topics=["x"])))
client.user_topic_update(UserTopicUpdateRequest(user=user, op="set", topics=[f"news-{run}", f"weather-{run}"]))
user_topics = client.user_topic_list(UserTopicListRequest(filter=UserTopicFilter(users=[user]), include_total_count=True))
check("user_topic_update set + user_topic_list", sorted(t.topic for t in user_topics.items) == [f"news-{run}", f"weather-{run}"])

# --- updates, moves and removal ----------------------------------------------------------------------------
client.device_update(DeviceUpdateRequest(ids=[first.id], meta_update=DeviceMetaUpdate(meta={"app": "2.0"}),
                                         topics_update=DeviceTopicsUpdate(op="set", topics=[f"tv-{run}"])))
updated = client.device_list(DeviceListRequest(filter=DeviceFilter(ids=[first.id]), include_meta=True, include_topics=True)).items[0]
check("device_update meta and topics (the user's topics stay attached)", updated.meta == {"app": "2.0"}
      and sorted(updated.topics) == [f"news-{run}", f"tv-{run}", f"weather-{run}"])
client.device_update(DeviceUpdateRequest(ids=[first.id], user_update=DeviceUserUpdate(user=other_user)))
switched = client.device_list(DeviceListRequest(filter=DeviceFilter(ids=[first.id]), include_topics=True)).items[0]
check("device_update user: the old user's topics leave with it", switched.user == other_user and switched.topics == [f"tv-{run}"])
moved = client.device_register(DeviceRegisterRequest(provider="apns", token="cd" * 32, platform="ios", user=other_user))
check("registering a token under another user moves the device", moved.id == ios.id
      and client.device_list(DeviceListRequest(filter=DeviceFilter(ids=[ios.id]))).items[0].user == other_user)
replies = client.batch(BatchRequest(requests=[DeviceListRequest(filter=DeviceFilter(users=[other_user])),
                                              UserTopicListRequest(filter=UserTopicFilter(users=[user]))]))
check("batch", len(replies.replies) == 2 and len(replies.replies[0].items) == 2)
client.device_remove(DeviceRemoveRequest(users=[user]))
check("device_remove by user", client.device_list(DeviceListRequest(filter=DeviceFilter(users=[user]))).items == [])
client.device_remove(DeviceRemoveRequest(ids=[first.id, ios.id]))
check("device_remove by ids", client.device_list(DeviceListRequest(filter=DeviceFilter(ids=[first.id, ios.id]))).items == [])

# --- sends through the provider emulators -------------------------------------------------------------------
SIMULATOR, TLS = os.environ["HERALD_SIMULATOR_URL"], os.environ["HERALD_SIMULATOR_TLS_URL"]


def http(method, url, body=None, headers=None):
    request = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
        return json.loads(text) if text else None


def arrived(provider):
    return http("GET", f"{SIMULATOR}/_control/push/messages?provider={provider}&limit=1000")["data"]


def wait_for(what, condition, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return check(what, True)
        time.sleep(0.1)
    seen = {p: [m["target"] for m in arrived(p)] for p in ("fcm", "apns", "hms", "web-push")}
    check(what, False, f"timed out; the emulators saw {seen}")


novu = {"Authorization": "ApiKey " + os.environ["HERALD_KEY"]}
vapid = None
for item in http("GET", f"{SIMULATOR}/_control/dev/integrations?tls={TLS}")["data"]:
    if item["providerId"] in ("fcm", "apns", "hms", "web-push"):
        http("POST", os.environ["HERALD_URL"] + "/v1/integrations", {"providerId": item["providerId"], "channel": "push", "active": True,
             "identifier": item["identifier"] + "-" + run, "name": item["identifier"], "credentials": item["credentials"]}, novu)
        vapid = item["credentials"].get("vapidPublicKey", vapid)
http("DELETE", f"{SIMULATOR}/_control/push/messages")
browser = json.dumps(http("POST", f"{SIMULATOR}/_control/webpush/subscriptions", {"baseUrl": TLS, "applicationServerKey": vapid}))
fan = f"w-{run}"
fan_fcm = client.device_register(DeviceRegisterRequest(provider="fcm", token=f"fcm-fan-{run}", platform="android", user=fan))
client.device_register(DeviceRegisterRequest(provider="apns", token="ef" * 32, platform="ios", user=fan))
client.device_register(DeviceRegisterRequest(provider="hms", token=f"hms-fan-{run}", platform="android", topics=[f"derby-{run}"]))
client.device_register(DeviceRegisterRequest(provider="webpush", token=browser, platform="web", topics=[f"derby-{run}"]))
client.user_topic_update(UserTopicUpdateRequest(user=fan, op="add", topics=[f"derby-{run}"]))
notification = PushNotification(
    fcm=FcmPushNotification(message={"notification": {"title": "Derby", "body": "Kick-off"}, "data": {"match": run}}),
    hms=HmsPushNotification(message={"notification": {"title": "Derby", "body": "Kick-off"},
                                     "android": {"notification": {"click_action": {"type": 3}}}}),
    apns=ApnsPushNotification(headers={"apns-priority": "10"}, payload={"aps": {"alert": {"title": "Derby", "body": "Kick-off"}}}),
    webpush={"headers": {"Urgency": "high"}, "payload": {"title": "Derby", "body": "Kick-off"}})  # not modelled by cent 5.2.0

sent = client.send_push_notification(SendPushNotificationRequest(
    recipient=PushRecipient(filter=DeviceFilter(topics=[f"derby-{run}"])), notification=notification, uid=f"derby-{run}"))
check("send_push_notification to a topic returns the uid", sent.uid == f"derby-{run}")
wait_for("send_push_notification to a topic reaches fcm, apns, hms and webpush devices",
         lambda: all(len(arrived(p)) == 1 for p in ("fcm", "apns", "hms", "web-push")))
fcm_arrived = arrived("fcm")[0]
check("the FCM message arrives as sent, plus the token", fcm_arrived["payload"] == {
    "token": f"fcm-fan-{run}", "notification": {"title": "Derby", "body": "Kick-off"}, "data": {"match": run}})
check("the APNs payload and headers arrive as sent", arrived("apns")[0]["payload"] == {"aps": {"alert": {"title": "Derby", "body": "Kick-off"}}}
      and arrived("apns")[0]["headers"]["apns-priority"] == "10")
check("the Web Push payload (a cent extra) arrives decrypted as sent", arrived("web-push")[0]["payload"] == {"title": "Derby", "body": "Kick-off"})
again = client.send_push_notification(SendPushNotificationRequest(
    recipient=PushRecipient(filter=DeviceFilter(topics=[f"derby-{run}"])), notification=notification, uid=f"derby-{run}"))
time.sleep(1)
check("send_push_notification with a repeated uid sends nothing new", again.uid == sent.uid and len(arrived("fcm")) == 1)

client.send_push_notification(SendPushNotificationRequest(recipient=PushRecipient(filter=DeviceFilter(ids=[fan_fcm.id])),
                                                          notification=notification))
client.send_push_notification(SendPushNotificationRequest(recipient=PushRecipient(filter=DeviceFilter(users=[fan])), notification=notification))
wait_for("send_push_notification to device ids and to users", lambda: len(arrived("fcm")) == 3 and len(arrived("apns")) == 2)
client.send_push_notification(SendPushNotificationRequest(recipient=PushRecipient(fcm_tokens=[f"raw-{run}"]), notification=notification))
client.send_push_notification(SendPushNotificationRequest(recipient=PushRecipient(fcm_topic=f"news-{run}"), notification=notification))
client.send_push_notification(SendPushNotificationRequest(recipient=PushRecipient(apns_tokens=["aa" * 32]), notification=notification))
client.send_push_notification(SendPushNotificationRequest(recipient=PushRecipient(hms_tokens=[f"hms-raw-{run}"]), notification=notification))
client.send_push_notification(SendPushNotificationRequest(recipient=PushRecipient(webpush_tokens=[browser]), notification=notification))
wait_for("send_push_notification to raw fcm/apns/hms/webpush tokens and a native FCM topic",
         lambda: {f"raw-{run}", f"/topics/news-{run}"} <= {m["target"] for m in arrived("fcm")}
         and "aa" * 32 in {m["target"] for m in arrived("apns")} and f"hms-raw-{run}" in {m["target"] for m in arrived("hms")}
         and len(arrived("web-push")) == 2)

later = client.send_push_notification(SendPushNotificationRequest(
    recipient=PushRecipient(fcm_tokens=[f"later-{run}"]), notification=notification, send_at=int(time.time()) + 3600))
client.cancel_push(CancelPushRequest(uid=later.uid))
stats = http("GET", os.environ["HERALD_URL"] + f"/v1/push-stats?uid={later.uid}", headers=novu)["data"]
check("cancel_push cancels a scheduled send", stats["status"] == "canceled" and stats["totals"]["sent"] == 0)
expect_api_error("cancel_push of an unknown uid -> 104", 104, lambda: client.cancel_push(CancelPushRequest(uid=f"nope-{run}")))

client.update_push_status(UpdatePushStatusRequest(analytics_uid=sent.uid, status="delivered", device_id=fan_fcm.id))
client.update_push_status(UpdatePushStatusRequest(analytics_uid=sent.uid, status="interacted", device_id=fan_fcm.id))
stats = http("GET", os.environ["HERALD_URL"] + f"/v1/push-stats?uid={sent.uid}", headers=novu)["data"]
check("update_push_status shows in /v1/push-stats", stats["totals"]["sent"] == 4 and stats["totals"]["delivered"] == 1
      and stats["totals"]["interacted"] == 1)
check("/v1/push-stats splits by provider and platform", {(p["provider"], p["platform"]) for p in stats["providers"]} == {
    ("fcm", "android"), ("apns", "ios"), ("hms", "android"), ("web-push", "web")})
expect_api_error("send_push_notification without a payload for the recipient's provider -> 107", 107,
                 lambda: client.send_push_notification(SendPushNotificationRequest(
                     recipient=PushRecipient(hms_tokens=["x"]), notification=PushNotification(fcm=FcmPushNotification(message={})))))

# --- personalisation: templating, meta, localizations, limit strategy (no 108 any more) ------------------------
reader = f"r-{run}"
client.user_topic_update(UserTopicUpdateRequest(user=reader, op="add", topics=[f"digest-{run}"]))
fr = client.device_register(DeviceRegisterRequest(provider="fcm", token=f"fcm-fr-{run}", platform="android", user=reader,
                                                  locale="fr-CA", timezone="UTC", meta={"name": "Ann"}, topics=[f"own-{run}"]))
de = client.device_register(DeviceRegisterRequest(provider="fcm", token=f"fcm-de-{run}", platform="android", user=reader,
                                                  locale="de", timezone="Europe/Berlin", meta={"name": "Bo"}))
entries = client.device_topic_list(DeviceTopicListRequest(filter=DeviceTopicFilter(device_users=[reader]), include_total_count=True))
check("device_topic_list lists the user's topics on each of the user's devices",
      sorted((e.device.id, e.topic) for e in entries.items) == sorted([(fr.id, f"digest-{run}"), (fr.id, f"own-{run}"),
                                                                      (de.id, f"digest-{run}")]) and entries.total_count == 3)
http("DELETE", f"{SIMULATOR}/_control/push/messages")
templated = PushNotification(fcm=FcmPushNotification(message={"notification": {
    "title": "{{default [[Hello]] .l10n.greeting}} {{.device.meta.name}}", "body": "for {{.device.user}}"}}))
personal = client.send_push_notification(SendPushNotificationRequest(
    recipient=PushRecipient(filter=DeviceFilter(users=[reader])), notification=templated, uid=f"personal-{run}",
    use_templating=True, use_meta=True, localizations={"fr": PushLocalization(translations={"greeting": "Bonjour"})},
    optimize_for_reliability=True,
    limit_strategy=PushLimitStrategy(
        time_limit=PushTimeLimitStrategy(send_after_time="00:00:00", send_before_time="23:59:59", no_tz_send_now=True),
        rate_limit=PushRateLimitStrategy(key="{{.device.id}}", policies=[RateLimitPolicy(rate=5, interval_ms=86_400_000)]))))
check("send_push_notification with limit_strategy, localizations, use_templating and use_meta is accepted",
      personal.uid == f"personal-{run}")
wait_for("the personalised send reaches each device", lambda: len(arrived("fcm")) == 2)
titles = {m["target"]: (m["payload"]["notification"]["title"], m["payload"]["notification"]["body"]) for m in arrived("fcm")}
check("each device got its own rendering: its locale's translation (fr-CA -> fr) or the default, its meta, its user",
      titles == {f"fcm-fr-{run}": ("Bonjour Ann", f"for {reader}"), f"fcm-de-{run}": ("Hello Bo", f"for {reader}")}, str(titles))
dropped = client.send_push_notification(SendPushNotificationRequest(
    recipient=PushRecipient(filter=DeviceFilter(users=[reader])), notification=templated, use_templating=True, use_meta=True,
    limit_strategy=PushLimitStrategy(rate_limit=PushRateLimitStrategy(
        key="{{.device.id}}", policies=[RateLimitPolicy(rate=1, interval_ms=86_400_000)], drop_if_rate_limited=True))))
wait_for("a send over the rate limit with drop_if_rate_limited skips every device",
         lambda: http("GET", os.environ["HERALD_URL"] + f"/v1/push-stats?uid={dropped.uid}", headers=novu)["data"]["skipped"] == 2)
expect_api_error("a template mistake is a 107 naming the field", 107, lambda: client.send_push_notification(
    SendPushNotificationRequest(recipient=PushRecipient(filter=DeviceFilter(users=[reader])), use_templating=True,
                                notification=PushNotification(fcm=FcmPushNotification(message={"notification": {"title": "{{.nope}}"}})))))

summary("cent 5.2.0")
