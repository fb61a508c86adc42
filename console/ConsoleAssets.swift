import Foundation

/// The operator console's templates (`templates/*.mustache`, swift-mustache) and static files (`static/`: one
/// stylesheet, one script), shipped as resources so that the console needs no front-end build (docs/console.md).
public enum ConsoleAssets {
    /// The folder of the `.mustache` templates.
    public static var templates: URL { Bundle.module.resourceURL!.appendingPathComponent("templates") }
    /// The folder of the stylesheet and the script.
    public static var staticFiles: URL { Bundle.module.resourceURL!.appendingPathComponent("static") }
}
