import MemoryService
import PlatosProto

/// A deterministic pseudo-random generator (SplitMix64), so every run loads the same corpus.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

/// Memory-like text: sentences of 8–24 words from a 5,000-word vocabulary with a skewed
/// (roughly Zipf) frequency, so a few words are in most memories and most words are rare, as in
/// real notes. Queries are drawn from the same distribution, common words included.
enum Corpus {
    static let vocabulary: [String] = {
        let onsets = [
            "b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "br", "st", "tr", "pl",
        ]
        let vowels = ["a", "e", "i", "o", "u", "ai", "ou", "ea"]
        let codas = ["", "n", "r", "s", "t", "l", "nd", "ck"]
        var words: [String] = []
        var rng = SplitMix64(seed: 7)
        var seen = Set<String>()
        while words.count < 5000 {
            let syllables = Int.random(in: 1...3, using: &rng)
            var word = ""
            for _ in 0..<syllables {
                word += pick(onsets, &rng) + pick(vowels, &rng) + pick(codas, &rng)
            }
            if seen.insert(word).inserted { words.append(word) }
        }
        return words
    }()

    private static func pick(_ list: [String], _ rng: inout SplitMix64) -> String {
        list[Int(rng.next() % UInt64(list.count))]
    }

    static func word(_ rng: inout SplitMix64) -> String {
        let u = Double(rng.next() >> 11) / Double(1 << 53)
        return vocabulary[min(vocabulary.count - 1, Int(u * u * u * Double(vocabulary.count)))]
    }

    static func sentence(_ rng: inout SplitMix64) -> String {
        (0..<Int.random(in: 8...24, using: &rng)).map { _ in word(&rng) }.joined(separator: " ")
    }

    static func query(_ rng: inout SplitMix64) -> String {
        (0..<3).map { _ in word(&rng) }.joined(separator: " ")
    }

    static let project = V1.Scope(org: "bench", project: "memory", env: "prod")

    /// Scope `i`: cluster `cluster-i`, end user `user-i`; written by `agent-i-a`, recalled by `agent-i-b`.
    static func memoryScope(_ i: Int) -> MemoryScope {
        MemoryScope(
            org: project.org, project: project.project, env: project.env, owner: .cluster("cluster-\(i)"),
            userId: "user-\(i)")
    }

    static func writer(_ i: Int) -> V1.Principal {
        V1.Principal(
            scope: project, agentId: "agent-\(i)-a", clusterId: "cluster-\(i)", userId: "user-\(i)", role: .agent)
    }

    static func reader(_ i: Int) -> V1.Principal {
        V1.Principal(
            scope: project, agentId: "agent-\(i)-b", clusterId: "cluster-\(i)", userId: "user-\(i)", role: .agent)
    }

    /// Memory `n` of scope `i`, dated within the last 90 days so that recency matters.
    static func memory(scope i: Int, _ rng: inout SplitMix64, nowMs: Int64) -> NewMemory {
        NewMemory(
            scope: memoryScope(i), authorAgentId: "agent-\(i)-a", content: sentence(&rng),
            tags: [vocabulary[Int(rng.next() % 20)]], nowMs: nowMs - Int64(rng.next() % (90 * 86_400_000)))
    }
}
