import Foundation

/// Scratch directories for tests, all inside one directory per test process that is removed
/// when the process exits: a test run leaves nothing behind in the temporary directory.
public enum TestDirectories {
    private static let root: String = {
        let root = FileManager.default.temporaryDirectory
            .appendingPathComponent("platos-tests-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8))").path
        try? FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        atexit { TestDirectories.removeAll() }
        return root
    }()

    /// A new, empty directory whose name starts with `prefix`.
    public static func make(_ prefix: String) -> String {
        let path = "\(root)/\(prefix)-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    private static func removeAll() {
        try? FileManager.default.removeItem(atPath: root)
    }
}
