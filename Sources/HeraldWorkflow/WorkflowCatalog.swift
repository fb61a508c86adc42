import Dispatch
import Foundation
import Synchronization

/// The workflows of a directory, by trigger identifier, with the findings of every file.
///
/// Reloading re-parses the files that changed. A file that no longer validates is reported and its last good
/// version stays active, so a typo saved in production never takes a workflow down. Two files that define the
/// same identifier are an error; the file that sorts first keeps the identifier.
public struct WorkflowCatalog: Sendable {
    struct FileState: Sendable {
        var contents: String
        var lastGood: Workflow?
        var diagnostics: [Diagnostic]
    }

    private var files: [String: FileState] = [:]
    /// Shared translation files (`translations/<locale>.yaml`) by path, and their texts merged by locale.
    private var translationFiles: [String: (contents: String, locale: String, texts: [String: String], diagnostics: [Diagnostic])] = [:]
    private var sharedTranslations: [String: [String: String]] = [:]
    /// Active workflows by trigger identifier.
    public private(set) var workflows: [String: Workflow] = [:]
    private var duplicateFindings: [Diagnostic] = []

    public init() {}

    /// The active workflow for a trigger identifier.
    public func workflow(_ id: String) -> Workflow? { workflows[id] }

    /// The text of a loaded file (the console shows it with its findings), or nil for an unknown path.
    public func source(of path: String) -> String? { files[path]?.contents }

    /// Every loaded file, valid or not, sorted.
    public var paths: [String] { files.keys.sorted() }

    /// Every current finding, sorted by file and position.
    public var diagnostics: [Diagnostic] {
        (files.values.flatMap(\.diagnostics) + translationFiles.values.flatMap(\.diagnostics) + duplicateFindings).sorted()
    }

    /// Replaces the catalog's files with `sources` (path → contents): new and changed files are parsed, missing
    /// ones removed. Returns the findings of the files that changed.
    @discardableResult
    public mutating func update(_ all: [(path: String, contents: String)]) -> [Diagnostic] {
        var changed: [Diagnostic] = []
        // Shared translation files first: when they change, every workflow is checked (and rendered) against them again.
        let translationSources = all.filter { TranslationFile.isTranslationFile($0.path) }
        let sources = all.filter { !TranslationFile.isTranslationFile($0.path) }
        let translationPaths = Set(translationSources.map(\.path))
        var translationsChanged = false
        for path in translationFiles.keys where !translationPaths.contains(path) {
            translationFiles[path] = nil
            translationsChanged = true
        }
        for (path, contents) in translationSources where translationFiles[path]?.contents != contents {
            let (locale, texts, diagnostics) = TranslationFile.parse(contents, file: path)
            translationFiles[path] = (contents, locale, texts, diagnostics)
            changed += diagnostics
            translationsChanged = true
        }
        if translationsChanged {
            var merged: [String: [String: String]] = [:]
            for path in translationFiles.keys.sorted() {
                guard let file = translationFiles[path], !file.locale.isEmpty else { continue }
                merged[file.locale, default: [:]].merge(file.texts, uniquingKeysWith: { $1 })
            }
            sharedTranslations = merged
        }
        let paths = Set(sources.map(\.path))
        for path in files.keys where !paths.contains(path) { files[path] = nil }
        let pending = sources.filter { translationsChanged || files[$0.path]?.contents != $0.contents }
        for ((path, contents), (workflow, diagnostics)) in zip(pending, Self.parseConcurrently(pending, translations: sharedTranslations)) {
            files[path] = FileState(contents: contents, lastGood: workflow ?? files[path]?.lastGood, diagnostics: diagnostics)
            changed += diagnostics
        }
        rebuild()
        return changed.sorted() + duplicateFindings
    }

    /// Parses files on every core: parsing is pure, and a directory of workflows is embarrassingly parallel.
    static func parseConcurrently(
        _ sources: [(path: String, contents: String)], translations: [String: [String: String]] = [:]
    ) -> [(workflow: Workflow?, diagnostics: [Diagnostic])] {
        guard sources.count > 1 else {
            return sources.map { WorkflowParser.parse($0.contents, file: $0.path, sharedTranslations: translations) }
        }
        let results = Mutex([(workflow: Workflow?, diagnostics: [Diagnostic])?](repeating: nil, count: sources.count))
        DispatchQueue.concurrentPerform(iterations: sources.count) { index in
            let result = WorkflowParser.parse(sources[index].contents, file: sources[index].path, sharedTranslations: translations)
            results.withLock { $0[index] = result }
        }
        return results.withLock { $0.map { $0! } }
    }

    private mutating func rebuild() {
        workflows = [:]
        duplicateFindings = []
        for path in files.keys.sorted() {
            guard let workflow = files[path]?.lastGood else { continue }
            if let first = workflows[workflow.id] {
                duplicateFindings.append(
                    Diagnostic(
                        file: path, location: workflow.steps.first.map { _ in SourceLocation(line: 1, column: 1) } ?? .start,
                        severity: .error,
                        rule: .duplicateWorkflow,
                        message: "workflow '\(workflow.id)' is already defined in \(first.file); this file is ignored"
                    )
                )
                continue
            }
            workflows[workflow.id] = workflow
        }
    }
}

/// Finds workflow files on disk: the only place the workflow module reads files.
public enum WorkflowFiles {
    /// Every `*.yaml` / `*.yml` under `path` (recursively) or `path` itself if it is a file — with the shared
    /// translation files of its directory (`translations/*.yaml`), which it may use — sorted.
    public static func find(at path: String) throws -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw WorkflowFileError(message: "\(path): no such file or directory")
        }
        guard isDirectory.boolValue else {
            let beside = ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent("translations")
            var isFolder: ObjCBool = false
            guard !TranslationFile.isTranslationFile(path), FileManager.default.fileExists(atPath: beside, isDirectory: &isFolder),
                isFolder.boolValue
            else { return [path] }
            return [path] + (try find(at: beside))
        }
        guard let enumerator = FileManager.default.enumerator(atPath: path) else {
            throw WorkflowFileError(message: "\(path): cannot list the directory")
        }
        var result: [String] = []
        while let entry = enumerator.nextObject() as? String {
            if entry.hasSuffix(".yaml") || entry.hasSuffix(".yml") {
                result.append(path.hasSuffix("/") ? path + entry : path + "/" + entry)
            }
        }
        return result.sorted()
    }

    /// Reads the files under `paths` (files or directories) as (path, contents). Files over the size limit are
    /// read only up to it plus one byte, so the parser reports them without loading a huge file.
    public static func read(_ paths: [String]) throws -> [(path: String, contents: String)] {
        var sources: [(path: String, contents: String)] = []
        var seen: Set<String> = []
        for path in paths {
            for file in try find(at: path) where seen.insert(file).inserted {
                guard let handle = FileHandle(forReadingAtPath: file) else {
                    throw WorkflowFileError(message: "\(file): cannot read the file")
                }
                defer { try? handle.close() }
                let data = (try? handle.read(upToCount: YAMLTree.maxBytes + 1)) ?? Data()
                sources.append((file, String(decoding: data, as: UTF8.self)))
            }
        }
        return sources
    }
}

/// A workflow file that cannot be found or read.
public struct WorkflowFileError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
