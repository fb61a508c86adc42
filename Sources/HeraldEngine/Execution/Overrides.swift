import HeraldCore

/// Provider overrides from the workflow and the trigger, deep-merged (later wins): the step's `overrides.<provider>`,
/// the trigger's legacy `overrides.<provider>`, `overrides.providers.<provider>`, then
/// `overrides.steps.<stepId>.providers.<provider>`.
enum Overrides {
    static func merged(step: JSONValue?, trigger: JSONValue, stepId: String, providerId: String) -> JSONValue {
        var result: JSONValue = step ?? .object([:])
        let object = trigger.objectValue ?? [:]
        for layer in [
            object[providerId], object["providers"]?.objectValue?[providerId],
            object["steps"]?.objectValue?[stepId]?.objectValue?["providers"]?.objectValue?[providerId],
        ] {
            if let layer { result = result.deepMerged(with: layer) }
        }
        return result
    }
}

extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}
