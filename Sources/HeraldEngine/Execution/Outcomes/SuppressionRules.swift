import HeraldCore

/// Which refusals put an address on the suppression list (docs/webhooks.md §Suppression list). Only answers that are
/// about the recipient alone and permanent qualify — not every final refusal: a webhook integration's own URL
/// answering 404, a bare SMTP 550 (often a refused sender or relay), or Twilio 21612 (the sender and recipient
/// pair) say nothing certain about the address, and a suppression outlives the integration that caused it.
enum SuppressionRules {
    /// Whether a final refusal by `providerId` (its outcome reason) means the address will never take a message.
    static func isPermanentRecipientRefusal(providerId: String, reason: String) -> Bool {
        switch providerId {
        case "twilio":
            // 21211 invalid number, 21610 the recipient replied STOP, 21614 not a mobile number.
            return [" 21211:", " 21610:", " 21614:"].contains { reason.contains($0) }
        case "nexmo":
            // Vonage 6 (unroutable destination) and 7 (number barred).
            return reason.hasPrefix("Vonage status 6:") || reason.hasPrefix("Vonage status 7:")
        case "postmark":
            // 406: inactive recipient (Postmark's own suppression).
            return reason.contains("406")
        case "nodemailer":
            // Enhanced status 5.1.1 (no such mailbox), 5.1.2 (no such domain), 5.1.3 (bad address syntax).
            return ["5.1.1", "5.1.2", "5.1.3"].contains { reason.contains($0) }
        default:
            return false
        }
    }
}
