/// A whole-number limit a service takes as an option: its key (`--key`, the config file, the
/// environment) and its default. The gateway's configuration takes its defaults from here too, so
/// a limit has one default whichever way the gateway is built.
public struct LimitOption: Sendable, Hashable {
    public let key: String
    public let defaultValue: Int

    public init(key: String, defaultValue: Int) {
        self.key = key
        self.defaultValue = defaultValue
    }

    /// Streams and long polls one agent may hold open through the gateway at once.
    public static let maxLiveCallsPerAgent = LimitOption(key: "max-live-calls-per-agent", defaultValue: 256)
    /// Calls per second one token may make through the gateway, sustained.
    public static let rateLimitPerSecond = LimitOption(key: "rate-limit-per-second", defaultValue: 1000)
    /// Calls one token may make at once above its sustained rate.
    public static let rateLimitBurst = LimitOption(key: "rate-limit-burst", defaultValue: 2000)
}
