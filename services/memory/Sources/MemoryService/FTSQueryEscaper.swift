/// Turns memory content into index terms and a user's recall query into an FTS5 MATCH
/// expression, so that user text is never parsed as FTS5 syntax and every term is bound to a scope.
///
/// Each indexed word is stored as `<scope prefix><word hash>` (8 + 6 base-36 digits), plus one
/// bare `<scope prefix>` term per row. A query word becomes one quoted term per scope the caller
/// may search, OR-ed together. So:
/// - the scope is part of the index lookup itself: FTS5 reads only the posting lists of the
///   caller's scopes, and a recall costs what the caller's scope holds, not what the table holds;
/// - BM25's document frequencies are counted within the scope, so ranking neither slows down with
///   the corpus nor reveals anything about other tenants' text;
/// - user input reaches MATCH only as base-36 digits inside double quotes: `"`, `*`, `NEAR(`,
///   `OR`, `-`, column filters or unicode cannot change the expression or widen its scope.
enum FTSQueryEscaper {
    /// Words indexed per memory; content past this is stored but not searchable. 64 KiB of short
    /// words would otherwise cost some 30,000 terms in one row.
    static let maxIndexedWords = 8192
    /// Distinct words of a query that are searched; the rest are ignored.
    static let maxQueryWords = 64

    /// The text stored in the index for `content` in `scope`.
    static func indexTerms(content: String, scope: MemoryScope) -> String {
        let prefix = scope.termPrefix
        var terms = prefix
        let words = TextTokenizer.words(content, limit: maxIndexedWords)
        terms.reserveCapacity(prefix.utf8.count + words.count * 15)
        for word in words {
            terms += " "
            terms += prefix
            terms += wordHash(word)
        }
        return terms
    }

    /// The MATCH expression for `query` over `scopes`, and whether it has any words (a query
    /// without words matches every memory of the scopes, to be ranked by recency alone).
    static func matchExpression(query: String, scopes: [MemoryScope]) -> (expression: String, hasWords: Bool) {
        let prefixes = scopes.map(\.termPrefix)
        var seen = Set<String>()
        var words: [String] = []
        for word in TextTokenizer.words(query, limit: 1024) where seen.insert(word).inserted {
            words.append(word)
            if words.count == maxQueryWords { break }
        }
        let terms: [String]
        if words.isEmpty {
            terms = prefixes
        } else {
            terms = words.flatMap { word in
                let hash = wordHash(word)
                return prefixes.map { $0 + hash }
            }
        }
        // Quoted although the terms are plain digits and letters: a string in quotes is a term
        // to FTS5 whatever it contains, so even a future change to the term format stays inert.
        return (terms.map { "\"\($0)\"" }.joined(separator: " OR "), !words.isEmpty)
    }

    /// 6 base-36 digits (~31 bits) of the word. A collision within one scope can make a memory
    /// match a word it does not contain; at a few thousand words per scope that is about one
    /// query in a million, and it never crosses a scope.
    static func wordHash(_ word: String) -> String {
        var hash = StableHash()
        hash.combine(bytes: word.utf8)
        return hash.base36(digits: 6)
    }
}
