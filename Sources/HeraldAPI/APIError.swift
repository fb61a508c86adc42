import HTTPTypes
import HeraldCore
import Hummingbird

/// An error with an HTTP status, thrown by route handlers and middleware. ``APIErrorMiddleware`` renders it in the
/// wire format of the API that was called (Novu `ErrorDto`, Centrifugo `{"error":{…}}`).
public struct APIError: Error, Sendable {
    public var status: HTTPResponse.Status
    /// Shown to the caller; never contains a secret.
    public var message: String
    /// Field-level validation failures (Novu 422 `errors` map): field → messages and offending value.
    public var fieldErrors: [String: FieldError]
    /// Headers to add to the error response (e.g. `Retry-After`).
    public var headers: HTTPFields
    /// Extra fields merged into a Novu error body (Novu spreads an exception's object into the body; the SDK types
    /// the 409 of subscriber creation as a `SubscriberResponseDto`).
    public var extraFields: [String: JSONValue] = [:]
    /// The Centrifugo error code when the status alone does not tell it (108 `not available`).
    public var centrifugoCode: Int?

    /// One field's validation failure.
    public struct FieldError: Sendable, Equatable {
        public var messages: [String]
        public var value: JSONValue?

        public init(messages: [String], value: JSONValue? = nil) {
            self.messages = messages
            self.value = value
        }
    }

    public init(_ status: HTTPResponse.Status, _ message: String, fieldErrors: [String: FieldError] = [:], headers: HTTPFields = [:]) {
        self.status = status
        self.message = message
        self.fieldErrors = fieldErrors
        self.headers = headers
    }

    /// The API error for a domain error.
    public init(_ error: HeraldError) {
        let status: HTTPResponse.Status =
            switch error.code {
            case .notFound: .notFound
            case .conflict: .conflict
            case .invalidInput: .unprocessableContent
            case .unauthorized: .unauthorized
            case .tooLarge: .contentTooLarge
            case .unavailable: .serviceUnavailable
            default: .internalServerError
            }
        var fieldErrors: [String: FieldError] = [:]
        if error.code == .invalidInput, let field = error.context["field"] {
            fieldErrors[field] = FieldError(messages: [error.message])
        }
        let message = status == .internalServerError ? "Internal server error" : error.message
        // A database outage: nothing was committed that the caller was told of; retry in a few seconds.
        self.init(status, message, fieldErrors: fieldErrors, headers: status == .serviceUnavailable ? [.retryAfter: "5"] : [:])
    }
}
