/// Made-up words for benchmark memories and queries: a fixed vocabulary built from syllables,
/// drawn with a skew (a few words are everywhere, most are rare), so that a query finds
/// something without matching every memory. The same in every program that imports it, so the
/// queries of `platos-load` match what a benchmark seeded.
public enum Words {
    public static let vocabulary: [String] = {
        let onsets = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "sh", "ch"]
        let nuclei = ["a", "e", "i", "o", "u", "ay", "ee", "oo"]
        var words: [String] = []
        var seen = Set<String>()
        var rng = SplitMix64(seed: 2024)
        while words.count < 2000 {
            var word = ""
            for _ in 0..<(2 + Int(rng.next() % 2)) {
                word += onsets[Int(rng.next() % UInt64(onsets.count))] + nuclei[Int(rng.next() % UInt64(nuclei.count))]
            }
            if seen.insert(word).inserted { words.append(word) }
        }
        return words
    }()

    /// One word; the square of a uniform draw favours the start of the vocabulary.
    public static func word(_ rng: inout SplitMix64) -> String {
        let u = Double(rng.next() >> 11) / Double(UInt64(1) << 53)
        return vocabulary[min(vocabulary.count - 1, Int(u * u * Double(vocabulary.count)))]
    }

    /// `count` words separated by spaces.
    public static func text(_ count: Int, _ rng: inout SplitMix64) -> String {
        (0..<count).map { _ in word(&rng) }.joined(separator: " ")
    }

    /// A recall query: two words.
    public static func query(_ rng: inout SplitMix64) -> String { text(2, &rng) }
}
