import Foundation
import Logging
import PlatosStorage

/// The settings every backend executable shares. Precedence: defaults < environment
/// (`PLATOS_<SERVICE>_PORT`, `PLATOS_HOST`, `PLATOS_DATA_DIR`, `PLATOS_INTERNAL_SECRET_FILE`,
/// `PLATOS_SYNCHRONOUS`, `PLATOS_LOG_LEVEL`) < flags (`--port`, `--host`, `--data-dir`,
/// `--secret-file`, `--synchronous normal|full`, `--log-level`).
public struct ServiceOptions: Sendable {
    public var name: String
    public var host = "127.0.0.1"
    public var port: Int
    public var dataDir = "./data"
    /// File holding the internal secret shared with the gateway; default `<data-dir>/internal.secret`.
    public var secretFile: String?
    public var synchronous: SynchronousMode = .normal
    public var logLevel: Logger.Level = .info

    public init(name: String, defaultPort: Int) {
        self.name = name
        self.port = defaultPort
    }

    /// Reads the environment, then the command line. Throws a message naming the bad setting.
    public static func parse(
        name: String, defaultPort: Int, arguments: [String] = Array(CommandLine.arguments.dropFirst()),
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> ServiceOptions {
        var options = ServiceOptions(name: name, defaultPort: defaultPort)
        let envPortKey = "PLATOS_\(name.uppercased())_PORT"
        func apply(_ key: String, _ value: String) throws {
            switch key {
            case "port", envPortKey:
                guard let port = Int(value), (0...65535).contains(port) else {
                    throw ServiceOptionsError("\(key) must be a port number 0–65535, got '\(value)'")
                }
                options.port = port
            case "host", "PLATOS_HOST": options.host = value
            case "data-dir", "PLATOS_DATA_DIR": options.dataDir = value
            case "secret-file", "PLATOS_INTERNAL_SECRET_FILE": options.secretFile = value
            case "synchronous", "PLATOS_SYNCHRONOUS":
                guard let mode = SynchronousMode(rawValue: value.uppercased()) else {
                    throw ServiceOptionsError("\(key) must be 'normal' or 'full', got '\(value)'")
                }
                options.synchronous = mode
            case "log-level", "PLATOS_LOG_LEVEL":
                guard let level = Logger.Level(rawValue: value.lowercased()) else {
                    throw ServiceOptionsError("\(key) must be one of trace, debug, info, notice, warning, error, critical")
                }
                options.logLevel = level
            default:
                throw ServiceOptionsError(
                    "unknown option --\(key); options: --host, --port, --data-dir, --secret-file, --synchronous, --log-level")
            }
        }
        for key in [envPortKey, "PLATOS_HOST", "PLATOS_DATA_DIR", "PLATOS_INTERNAL_SECRET_FILE", "PLATOS_SYNCHRONOUS", "PLATOS_LOG_LEVEL"] {
            if let value = environment[key], !value.isEmpty { try apply(key, value) }
        }
        var it = arguments.makeIterator()
        while let arg = it.next() {
            guard arg.hasPrefix("--") else { throw ServiceOptionsError("unexpected argument '\(arg)'") }
            var key = String(arg.dropFirst(2))
            var value: String
            if let eq = key.firstIndex(of: "=") {
                value = String(key[key.index(after: eq)...])
                key = String(key[..<eq])
            } else {
                guard let next = it.next() else { throw ServiceOptionsError("--\(key) needs a value") }
                value = next
            }
            try apply(key, value)
        }
        return options
    }

    public var databasePath: String { "\(dataDir)/\(name).sqlite" }

    /// The internal secret: `PLATOS_INTERNAL_SECRET` (containers get it from an env file), else the
    /// secret file, else generated into `<data-dir>/internal.secret` (mode 0600) on first start, so
    /// every process of a dev stack sharing a data directory agrees on it.
    public func loadSecret(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> [UInt8] {
        if let value = environment["PLATOS_INTERNAL_SECRET"], !value.isEmpty {
            guard value.utf8.count >= 32 else {
                throw ServiceOptionsError("PLATOS_INTERNAL_SECRET must be at least 32 characters")
            }
            return Array(value.utf8)
        }
        let path = secretFile ?? "\(dataDir)/internal.secret"
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard trimmed.utf8.count >= 32 else {
                throw ServiceOptionsError("the internal secret in \(path) is shorter than 32 characters")
            }
            return Array(trimmed.utf8)
        }
        guard secretFile == nil else { throw ServiceOptionsError("cannot read the internal secret file \(path)") }
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        var bytes = [UInt8](repeating: 0, count: 32)
        var generator = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255, using: &generator) }
        let hex = bytes.map { String(format: "%02x", $0) }.joined()
        // O_EXCL: when two processes start together, one writes and the other reads its secret.
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        if fd >= 0 {
            _ = hex.withCString { write(fd, $0, strlen($0)) }
            close(fd)
            return Array(hex.utf8)
        }
        return try loadSecret(environment: environment)
    }
}

public struct ServiceOptionsError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
