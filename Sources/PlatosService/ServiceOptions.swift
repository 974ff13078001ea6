import Foundation
import PlatosRPC
import Logging
import PlatosStorage

/// The four Platos executables, with what their options default to.
public enum ServiceKind: String, CaseIterable, Sendable {
    case gateway, registry, memory, threads

    /// The RPC port: gateway 7400, registry 7401, memory 7402, threads 7403.
    public var defaultPort: Int {
        switch self {
        case .gateway: 7400
        case .registry: 7401
        case .memory: 7402
        case .threads: 7403
        }
    }

    /// The admin HTTP port (`/metrics`, `/healthz`): the RPC port + 1000.
    public var defaultAdminPort: Int { defaultPort + 1000 }

    /// The services this one calls, by option key (`--registry`, `PLATOS_REGISTRY_ADDR`), with
    /// their default addresses.
    public var peers: [(key: String, default: RPCEndpoint)] {
        func local(_ kind: ServiceKind) -> (key: String, default: RPCEndpoint) {
            (kind.rawValue, RPCEndpoint(host: "127.0.0.1", port: kind.defaultPort))
        }
        switch self {
        case .gateway: return [local(.registry), local(.memory), local(.threads)]
        case .threads: return [local(.registry)]
        case .registry, .memory: return []
        }
    }

    /// Whole-number limits this service takes (`--max-live-calls-per-agent`,
    /// `PLATOS_GATEWAY_MAX_LIVE_CALLS_PER_AGENT`).
    public var limits: [LimitOption] {
        switch self {
        case .gateway: return [.maxLiveCallsPerAgent, .rateLimitPerSecond, .rateLimitBurst]
        case .registry, .memory, .threads: return []
        }
    }

    /// Every key this service takes, in the config file and as `--key` flags (besides `--config`).
    public var keys: [String] { ServiceOptions.commonKeys + peers.map(\.key) + limits.map(\.key) }
}

/// The settings of an executable, from four layers, each overriding the one before:
///
/// 1. defaults;
/// 2. the config file named by `--config FILE` or `PLATOS_CONFIG` (see ``ConfigFile``): its
///    top-level keys, then its `[<service>]` section;
/// 3. environment variables (`PLATOS_HOST`, `PLATOS_<SERVICE>_PORT`, ...);
/// 4. flags (`--host`, `--port`, ...).
///
/// Keys, flags and environment variables are listed in README.md ("Configuration").
public struct ServiceOptions: Sendable {
    /// The keys every executable takes.
    public static let commonKeys = ["host", "port", "admin-port", "data-dir", "secret-file", "synchronous", "log-level"]

    public var kind: ServiceKind
    public var name: String { kind.rawValue }
    public var host = "127.0.0.1"
    public var port: Int
    /// The admin HTTP server's port (`/metrics`, `/healthz`), on `host`; 0 picks a free one.
    public var adminPort: Int
    public var dataDir = "./data"
    /// File holding the internal secret shared with the gateway; default `<data-dir>/internal.secret`.
    public var secretFile: String?
    public var synchronous: SynchronousMode = .normal
    public var logLevel: Logger.Level = .info
    /// The config file that was read, if any.
    public var configFile: String?
    /// Addresses of the services this one calls, by key (see ``ServiceKind/peers``).
    public var peers: [String: RPCEndpoint]
    /// This service's limits, by key (see ``ServiceKind/limits``).
    public var limits: [String: Int]

    /// The defaults.
    public init(_ kind: ServiceKind) {
        self.kind = kind
        port = kind.defaultPort
        adminPort = kind.defaultAdminPort
        peers = Dictionary(uniqueKeysWithValues: kind.peers.map { ($0.key, $0.default) })
        limits = Dictionary(uniqueKeysWithValues: kind.limits.map { ($0.key, $0.defaultValue) })
    }

    /// The value of `option` (one of ``ServiceKind/limits``).
    public func limit(_ option: LimitOption) -> Int {
        guard let value = limits[option.key] else { preconditionFailure("platos-\(name) has no limit '\(option.key)'") }
        return value
    }

    /// The address of peer `key` (one of ``ServiceKind/peers``).
    public func peer(_ key: String) -> RPCEndpoint {
        guard let address = peers[key] else { preconditionFailure("platos-\(name) has no peer '\(key)'") }
        return address
    }

    /// The environment variable for `key`, or nil for keys only the config file and flags set.
    public static func environmentVariable(for key: String, of kind: ServiceKind) -> String? {
        let service = kind.rawValue.uppercased()
        switch key {
        case "host": return "PLATOS_HOST"
        case "port": return "PLATOS_\(service)_PORT"
        case "admin-port": return "PLATOS_\(service)_ADMIN_PORT"
        case "data-dir": return "PLATOS_DATA_DIR"
        case "secret-file": return "PLATOS_INTERNAL_SECRET_FILE"
        case "synchronous": return "PLATOS_SYNCHRONOUS"
        case "log-level": return "PLATOS_LOG_LEVEL"
        default:
            if kind.limits.contains(where: { $0.key == key }) {
                return "PLATOS_\(service)_\(key.uppercased().replacingOccurrences(of: "-", with: "_"))"
            }
            guard kind.peers.contains(where: { $0.key == key }) else { return nil }
            return "PLATOS_\(key.uppercased())_ADDR"
        }
    }

    /// Reads the config file, the environment, then the command line. Throws a message naming
    /// the bad setting and where it came from.
    public static func parse(
        _ kind: ServiceKind, arguments: [String] = Array(CommandLine.arguments.dropFirst()),
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> ServiceOptions {
        var options = ServiceOptions(kind)
        let flags = try parseFlags(arguments, kind: kind)

        // 2. The config file: --config wins over PLATOS_CONFIG.
        let configPath = flags.last(where: { $0.key == "config" })?.value
            ?? environment["PLATOS_CONFIG"].flatMap { $0.isEmpty ? nil : $0 }
        if let configPath {
            let file = try ConfigFile.load(path: configPath)
            for entry in file.entries(for: kind) {
                try options.apply(entry.key, entry.value, source: "\(configPath):\(entry.line): \(entry.key)")
            }
            options.configFile = configPath
        }
        // 3. The environment.
        for key in kind.keys {
            guard let variable = environmentVariable(for: key, of: kind),
                let value = environment[variable], !value.isEmpty
            else { continue }
            try options.apply(key, value, source: variable)
        }
        // 4. Flags.
        for flag in flags where flag.key != "config" {
            try options.apply(flag.key, flag.value, source: "--\(flag.key)")
        }
        return options
    }

    /// `--key value` and `--key=value` pairs, in order; unknown keys are an error.
    private static func parseFlags(_ arguments: [String], kind: ServiceKind) throws -> [(key: String, value: String)] {
        var flags: [(key: String, value: String)] = []
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
            guard key == "config" || kind.keys.contains(key) else {
                throw ServiceOptionsError(
                    "unknown option --\(key); options: \((["config"] + kind.keys).map { "--\($0)" }.joined(separator: ", "))")
            }
            flags.append((key, value))
        }
        return flags
    }

    /// Sets `key` from text; `source` names where it came from in an error.
    private mutating func apply(_ key: String, _ value: String, source: String) throws {
        func portNumber() throws -> Int {
            guard let port = Int(value), (0...65535).contains(port) else {
                throw ServiceOptionsError("\(source) must be a port number 0–65535, got '\(value)'")
            }
            return port
        }
        switch key {
        case "host": host = value
        case "port": port = try portNumber()
        case "admin-port": adminPort = try portNumber()
        case "data-dir": dataDir = value
        case "secret-file": secretFile = value
        case "synchronous":
            guard let mode = SynchronousMode(rawValue: value.uppercased()) else {
                throw ServiceOptionsError("\(source) must be 'normal' or 'full', got '\(value)'")
            }
            synchronous = mode
        case "log-level":
            guard let level = Logger.Level(rawValue: value.lowercased()) else {
                throw ServiceOptionsError(
                    "\(source) must be one of trace, debug, info, notice, warning, error, critical, got '\(value)'")
            }
            logLevel = level
        default:
            if limits[key] != nil {
                guard let number = Int(value), number > 0 else {
                    throw ServiceOptionsError("\(source) must be a whole number above 0, got '\(value)'")
                }
                limits[key] = number
                return
            }
            guard peers[key] != nil else { throw ServiceOptionsError("\(source): platos-\(name) has no option '\(key)'") }
            guard let address = RPCEndpoint(value) else {
                throw ServiceOptionsError("\(source) must be host:port, got '\(value)'")
            }
            peers[key] = address
        }
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
        if let secret = try Self.readSecret(path) { return secret }
        guard secretFile == nil else { throw ServiceOptionsError("cannot read the internal secret file \(path)") }
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        if let generated = try Self.publishNewSecret(at: path) { return generated }
        // Another process sharing the data directory published its secret first. On a file
        // system without hard links it may still be writing it (see publishNewSecret).
        for _ in 0..<50 {
            if let secret = try? Self.readSecret(path) { return secret }
            usleep(20_000)
        }
        if let secret = try Self.readSecret(path) { return secret }
        throw ServiceOptionsError("cannot read the internal secret file \(path)")
    }

    /// The secret in `path`, or nil when there is no file there (or it cannot be read).
    private static func readSecret(_ path: String) throws -> [UInt8]? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        guard let text = String(validating: data, as: UTF8.self) else {
            throw ServiceOptionsError("the internal secret in \(path) is not UTF-8 text")
        }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.utf8.count >= 32 else {
            throw ServiceOptionsError("the internal secret in \(path) is shorter than 32 characters")
        }
        return Array(trimmed.utf8)
    }

    /// Writes a new random secret to a file of its own and links it to `path`, so the file is
    /// never seen half-written: when two processes start together on a fresh data directory, one
    /// publishes and the other reads that. Nil when `path` already exists.
    private static func publishNewSecret(at path: String) throws -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: 32)
        var generator = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255, using: &generator) }
        let hex = bytes.map { String(format: "%02x", $0) }.joined()
        let draft = "\(path).\(getpid()).\(UInt64.random(in: .min ... .max, using: &generator)).new"
        let fd = open(draft, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else {
            throw ServiceOptionsError("cannot create \(draft) for the internal secret: \(String(cString: strerror(errno)))")
        }
        let written = hex.withCString { write(fd, $0, strlen($0)) }
        let writeError = errno
        close(fd)
        defer { unlink(draft) }
        guard written == hex.utf8.count else {
            throw ServiceOptionsError("cannot write the internal secret to \(draft): \(String(cString: strerror(writeError)))")
        }
        if link(draft, path) == 0 { return Array(hex.utf8) }
        switch errno {
        case EEXIST: return nil
        case EPERM, ENOTSUP, EOPNOTSUPP, ENOSYS:
            // No hard links here (vfat, some network and FUSE mounts): create the file itself,
            // exclusively. A process reading it meanwhile may find it short, and retries.
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
            guard fd >= 0 else {
                if errno == EEXIST { return nil }
                throw ServiceOptionsError("cannot create the internal secret file \(path): \(String(cString: strerror(errno)))")
            }
            let written = hex.withCString { write(fd, $0, strlen($0)) }
            close(fd)
            guard written == hex.utf8.count else {
                throw ServiceOptionsError("cannot write the internal secret file \(path)")
            }
            return Array(hex.utf8)
        default:
            throw ServiceOptionsError("cannot create the internal secret file \(path): \(String(cString: strerror(errno)))")
        }
    }
}

public struct ServiceOptionsError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
