import Foundation
import HeraldCore
import HeraldWorkflow

/// Renders a channel step's templates into provider-neutral content.
enum StepRenderer {
    static func render(_ step: Step, context: JSONValue) -> MessageContent {
        switch step.action {
        case .push(let push, _):
            var data: [String: String] = [:]
            for (key, template) in push.data { data[key] = template.render(context) }
            return MessageContent(
                channel: .push, title: push.title?.render(context), body: push.body?.render(context) ?? "", data: data,
                image: push.image?.render(context).nonEmpty, sound: push.sound?.render(context).nonEmpty,
                badge: push.badge.flatMap { Int($0.render(context).trimmingCharacters(in: .whitespaces)) }, ttl: push.ttl?.seconds,
                priority: push.priority, collapseKey: push.collapseKey?.render(context).nonEmpty)
        case .chat(let chat, _):
            return MessageContent(channel: .chat, body: chat.body.render(context))
        case .email(let email, _):
            return MessageContent(
                channel: .email, title: email.subject.render(context), body: email.body.render(context), text: email.text?.render(context),
                from: email.from?.render(context).nonEmpty, senderName: email.senderName?.render(context).nonEmpty)
        case .sms(let sms, _):
            return MessageContent(channel: .sms, body: sms.body.render(context))
        case .delay, .digest, .throttle:
            return MessageContent(channel: .push, body: "")
        }
    }
}
