import Foundation
import PlatosService
import Testing
import PlatosTestSupport

/// Configuration layering: defaults < config file (top level, then the service's section) <
/// environment < flags.
@Suite struct ServiceOptionsTests {
    /// A config file in a fresh temporary directory.
    static func configFile(_ text: String) throws -> String {
        let path = TestDirectories.make("platos-config") + "/platos.toml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func error(_ body: () throws -> Void) -> String? {
        do {
            try body()
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func defaults() throws {
        for kind in ServiceKind.allCases {
            let options = try ServiceOptions.parse(kind, arguments: [], environment: [:])
            #expect(options.port == kind.defaultPort)
            #expect(options.adminPort == kind.defaultPort + 1000)
            #expect(options.host == "127.0.0.1")
            #expect(options.dataDir == "./data")
            #expect(options.secretFile == nil)
            #expect(options.synchronous == .normal)
            #expect(options.logLevel == .info)
            #expect(options.configFile == nil)
        }
        #expect(ServiceKind.gateway.defaultAdminPort == 8400)
        #expect(ServiceKind.registry.defaultAdminPort == 8401)
        #expect(ServiceKind.memory.defaultAdminPort == 8402)
        #expect(ServiceKind.threads.defaultAdminPort == 8403)
        let gateway = try ServiceOptions.parse(.gateway, arguments: [], environment: [:])
        #expect(gateway.peer("registry") == .init(host: "127.0.0.1", port: 7401))
        #expect(gateway.peer("memory") == .init(host: "127.0.0.1", port: 7402))
        #expect(gateway.peer("threads") == .init(host: "127.0.0.1", port: 7403))
        #expect(try ServiceOptions.parse(.threads, arguments: [], environment: [:]).peer("registry").port == 7401)
    }

    @Test func fileThenEnvironmentThenFlags() throws {
        let path = try Self.configFile(
            """
            # every service
            port = 1000
            admin-port = 2000
            data-dir = "/var/lib/platos"
            log-level = debug
            synchronous = 'full'

            [memory]
            port = 1002   # memory only
            [registry]
            port = 1001
            """)
        // File alone: the section overrides the top level.
        var options = try ServiceOptions.parse(.memory, arguments: [], environment: ["PLATOS_CONFIG": path])
        #expect(options.port == 1002)
        #expect(options.adminPort == 2000)
        #expect(options.dataDir == "/var/lib/platos")
        #expect(options.logLevel == .debug)
        #expect(options.synchronous == .full)
        #expect(options.configFile == path)
        #expect(try ServiceOptions.parse(.registry, arguments: [], environment: ["PLATOS_CONFIG": path]).port == 1001)
        #expect(try ServiceOptions.parse(.threads, arguments: [], environment: ["PLATOS_CONFIG": path]).port == 1000)

        // The environment overrides the file.
        let environment = [
            "PLATOS_CONFIG": path, "PLATOS_MEMORY_PORT": "3002", "PLATOS_MEMORY_ADMIN_PORT": "4002",
            "PLATOS_LOG_LEVEL": "warning", "PLATOS_REGISTRY_PORT": "9999",
        ]
        options = try ServiceOptions.parse(.memory, arguments: [], environment: environment)
        #expect(options.port == 3002)
        #expect(options.adminPort == 4002)
        #expect(options.logLevel == .warning)
        #expect(options.dataDir == "/var/lib/platos")

        // Flags override the environment; the last of a repeated flag wins.
        options = try ServiceOptions.parse(
            .memory, arguments: ["--port", "5002", "--admin-port=0", "--data-dir", "/d", "--port", "5003"],
            environment: environment)
        #expect(options.port == 5003)
        #expect(options.adminPort == 0)
        #expect(options.dataDir == "/d")
        #expect(options.logLevel == .warning)
    }

    @Test func configFlagWinsOverTheEnvironment() throws {
        let fromEnvironment = try Self.configFile("port = 1")
        let fromFlag = try Self.configFile("port = 2")
        let options = try ServiceOptions.parse(
            .memory, arguments: ["--config", fromFlag], environment: ["PLATOS_CONFIG": fromEnvironment])
        #expect(options.port == 2)
        #expect(options.configFile == fromFlag)
    }

    @Test func peersAreLayeredToo() throws {
        let path = try Self.configFile(
            """
            registry = "10.0.0.1:7401"   # gateway and threads both call the registry

            [gateway]
            memory = "10.0.0.2:7402"
            """)
        let gateway = try ServiceOptions.parse(
            .gateway, arguments: ["--threads", "10.0.0.4:7403"],
            environment: ["PLATOS_CONFIG": path, "PLATOS_MEMORY_ADDR": "10.0.0.3:7402"])
        #expect(gateway.peer("registry") == .init(host: "10.0.0.1", port: 7401))
        #expect(gateway.peer("memory") == .init(host: "10.0.0.3", port: 7402))
        #expect(gateway.peer("threads") == .init(host: "10.0.0.4", port: 7403))
        let threads = try ServiceOptions.parse(.threads, arguments: [], environment: ["PLATOS_CONFIG": path])
        #expect(threads.peer("registry") == .init(host: "10.0.0.1", port: 7401))
        // A top-level key that the running service does not have is skipped, not an error.
        let memory = try ServiceOptions.parse(.memory, arguments: [], environment: ["PLATOS_CONFIG": path])
        #expect(memory.peers.isEmpty)
    }

    /// The gateway's limits are settings like any other, and only the gateway has them.
    @Test func theGatewaysLimitsAreLayeredAndChecked() throws {
        let path = try Self.configFile("[gateway]\nmax-live-calls-per-agent = 1024\nrate-limit-burst = 50\n")
        let gateway = try ServiceOptions.parse(
            .gateway, arguments: ["--rate-limit-burst", "60"],
            environment: ["PLATOS_CONFIG": path, "PLATOS_GATEWAY_RATE_LIMIT_PER_SECOND": "30"])
        #expect(gateway.limit(.maxLiveCallsPerAgent) == 1024)
        #expect(gateway.limit(.rateLimitPerSecond) == 30)
        #expect(gateway.limit(.rateLimitBurst) == 60)
        #expect(try ServiceOptions.parse(.gateway, arguments: [], environment: [:]).limit(.maxLiveCallsPerAgent) == 256)
        let zero = Self.error { _ = try ServiceOptions.parse(.gateway, arguments: ["--max-live-calls-per-agent", "0"], environment: [:]) }
        #expect(zero == "--max-live-calls-per-agent must be a whole number above 0, got '0'")
        let elsewhere = Self.error { _ = try ServiceOptions.parse(.memory, arguments: ["--rate-limit-burst", "5"], environment: [:]) }
        #expect(elsewhere?.hasPrefix("unknown option --rate-limit-burst") == true, "\(elsewhere ?? "no error")")
    }

    @Test func unknownKeyNamesFileAndLine() throws {
        let path = try Self.configFile("port = 1\n\n# comment\nbogus = 2\n")
        let message = Self.error { _ = try ServiceOptions.parse(.memory, arguments: ["--config", path], environment: [:]) }
        #expect(message?.hasPrefix("\(path):4: unknown key 'bogus'") == true, "\(message ?? "no error")")

        // In a section, a key of another service is unknown.
        let section = try Self.configFile("[memory]\nregistry = \"127.0.0.1:7401\"\n")
        let sectionMessage = Self.error { _ = try ServiceOptions.parse(.gateway, arguments: [], environment: ["PLATOS_CONFIG": section]) }
        #expect(sectionMessage?.hasPrefix("\(section):2: unknown key 'registry' ([memory])") == true, "\(sectionMessage ?? "no error")")
    }

    @Test func malformedFilesAreErrorsWithTheLine() throws {
        let cases: [(text: String, line: Int, says: String)] = [
            ("[nope]", 1, "unknown section [nope]"),
            ("port = 1\n[memory\n", 2, "closing ']'"),
            ("port", 1, "expected 'key = value'"),
            ("port =", 1, "missing value"),
            ("data-dir = \"/x", 1, "unterminated string"),
            ("data-dir = \"/x\" y", 1, "unexpected text"),
            ("data-dir = '/x", 1, "unterminated string"),
            ("data-dir = \"a\\qb\"", 1, "unsupported escape"),
            ("port = 1\nport = 2", 2, "set twice"),
            ("port = \"seventy\"", 1, "port must be a port number"),
            ("host = 1\n[gateway]\nmemory = nowhere", 3, "memory must be host:port"),
            ("synchronous = sometimes", 1, "synchronous must be 'normal' or 'full'"),
            ("po rt = 1", 1, "is not a key"),
        ]
        for (text, line, says) in cases {
            let path = try Self.configFile(text)
            let message = Self.error { _ = try ServiceOptions.parse(.gateway, arguments: [], environment: ["PLATOS_CONFIG": path]) }
            #expect(message?.hasPrefix("\(path):\(line): ") == true, "\(text): \(message ?? "no error")")
            #expect(message?.contains(says) == true, "\(text): \(message ?? "no error")")
        }
        let missing = Self.error { _ = try ServiceOptions.parse(.memory, arguments: ["--config", "/nonexistent/platos.toml"], environment: [:]) }
        #expect(missing == "cannot read config file /nonexistent/platos.toml")
    }

    @Test func valueSyntax() throws {
        let file = try ConfigFile(
            path: "test.toml",
            text: """
                data-dir = "a \\"quoted\\" # not a comment\\\\"  # a comment
                secret-file = 'C:\\literal # too'
                host = bare.example.com # comment
                log-level=debug\r
                   port   =   7\t
                """)
        let values = Dictionary(uniqueKeysWithValues: file.entries.map { ($0.key, $0.value) })
        #expect(values["data-dir"] == "a \"quoted\" # not a comment\\")
        #expect(values["secret-file"] == "C:\\literal # too")
        #expect(values["host"] == "bare.example.com")
        #expect(values["log-level"] == "debug")
        #expect(values["port"] == "7")
        #expect(file.entries.map(\.line) == [1, 2, 3, 4, 5])
    }

    @Test func environmentAndFlagErrorsNameTheirSource() {
        #expect(Self.error { _ = try ServiceOptions.parse(.memory, arguments: [], environment: ["PLATOS_MEMORY_ADMIN_PORT": "x"]) }
            == "PLATOS_MEMORY_ADMIN_PORT must be a port number 0–65535, got 'x'")
        #expect(Self.error { _ = try ServiceOptions.parse(.memory, arguments: ["--admin-port", "70000"], environment: [:]) }
            == "--admin-port must be a port number 0–65535, got '70000'")
        #expect(Self.error { _ = try ServiceOptions.parse(.gateway, arguments: ["--registry", "nohost"], environment: [:]) }
            == "--registry must be host:port, got 'nohost'")
        #expect(Self.error { _ = try ServiceOptions.parse(.memory, arguments: ["--registry", "127.0.0.1:1"], environment: [:]) }?
            .hasPrefix("unknown option --registry") == true)
        #expect(Self.error { _ = try ServiceOptions.parse(.memory, arguments: ["--port"], environment: [:]) } == "--port needs a value")
        #expect(Self.error { _ = try ServiceOptions.parse(.memory, arguments: ["serve"], environment: [:]) } == "unexpected argument 'serve'")
        // Empty environment variables count as unset.
        #expect(Self.error { _ = try ServiceOptions.parse(.memory, arguments: [], environment: ["PLATOS_MEMORY_PORT": "", "PLATOS_CONFIG": ""]) } == nil)
    }
}

/// The internal secret every process of a stack must agree on.
@Suite struct InternalSecretTests {
    static func options(dataDir: String, arguments: [String] = []) throws -> ServiceOptions {
        try ServiceOptions.parse(.memory, arguments: ["--data-dir", dataDir] + arguments, environment: [:])
    }

    /// A data directory that does not exist yet, as on a first start.
    static func freshDirectory() -> String {
        TestDirectories.make("platos-secret") + "/data"
    }

    @Test func theFirstStartGeneratesItPrivatelyAndLaterStartsReadIt() throws {
        let dir = Self.freshDirectory()
        let first = try Self.options(dataDir: dir).loadSecret(environment: [:])
        #expect(first.count == 64)
        let attributes = try FileManager.default.attributesOfItem(atPath: "\(dir)/internal.secret")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        #expect(try Self.options(dataDir: dir).loadSecret(environment: [:]) == first)
        // No draft file is left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["internal.secret"])
    }

    /// Processes starting together on a fresh data directory all end up with one secret: a
    /// reader never sees the file half-written.
    @Test func concurrentFirstStartsAgree() async throws {
        let dir = Self.freshDirectory()
        let options = try Self.options(dataDir: dir)
        let secrets = try await withThrowingTaskGroup(of: [UInt8].self) { group in
            for _ in 0..<16 { group.addTask { try options.loadSecret(environment: [:]) } }
            return try await group.reduce(into: Set<[UInt8]>()) { $0.insert($1) }
        }
        #expect(secrets.count == 1)
    }

    @Test func aSecretFileThatIsNotTextIsAClearError() throws {
        let dir = Self.freshDirectory()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: "\(dir)/internal.secret", contents: Data(repeating: 0xFF, count: 32))
        let error = ServiceOptionsTests.error { _ = try Self.options(dataDir: dir).loadSecret(environment: [:]) }
        #expect(error?.contains("not UTF-8") == true, "\(error ?? "no error")")
    }

    @Test func theEnvironmentAndANamedFileAreCheckedToo() throws {
        let dir = Self.freshDirectory()
        let secret = String(repeating: "s", count: 32)
        #expect(try Self.options(dataDir: dir).loadSecret(environment: ["PLATOS_INTERNAL_SECRET": secret]) == Array(secret.utf8))
        let short = ServiceOptionsTests.error {
            _ = try Self.options(dataDir: dir).loadSecret(environment: ["PLATOS_INTERNAL_SECRET": "short"])
        }
        #expect(short?.contains("at least 32") == true)
        let missing = ServiceOptionsTests.error {
            _ = try Self.options(dataDir: dir, arguments: ["--secret-file", "\(dir)/nope"]).loadSecret(environment: [:])
        }
        #expect(missing?.contains("cannot read the internal secret file \(dir)/nope") == true)
    }
}
