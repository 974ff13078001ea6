import Foundation

/// One sample of the Prometheus text exposition format (0.0.4): `name{label="value",...} value`.
public struct PrometheusSample: Sendable, Equatable {
    public var name: String
    public var labels: [String: String]
    public var value: Double
}

/// A strict enough reader of the Prometheus text format for tests: every line is blank, a
/// `# HELP`/`# TYPE` comment, or a sample whose name and label names are valid identifiers, whose
/// label values are quoted with `\\`, `\"`, `\n` escapes, and whose value is a number (or
/// `+Inf`, `-Inf`, `NaN`), with an optional integer timestamp. Throws naming the bad line.
public enum PrometheusText {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public static func parse(_ text: String) throws -> [PrometheusSample] {
        var samples: [PrometheusSample] = []
        var lineNumber = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            if line.isEmpty { continue }
            if line.hasPrefix("#") {
                let parts = line.split(separator: " ", maxSplits: 3)
                if parts.count >= 2, parts[1] == "TYPE" {
                    guard parts.count == 4, isName(parts[2]),
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(parts[3])
                    else { throw Failure(description: "line \(lineNumber): bad TYPE comment '\(line)'") }
                }
                continue
            }
            guard let sample = sample(Substring(line)) else {
                throw Failure(description: "line \(lineNumber): not 'name{labels} value': '\(line)'")
            }
            samples.append(sample)
        }
        return samples
    }

    /// The samples named `name` whose labels include `labels`.
    public static func values(_ samples: [PrometheusSample], _ name: String, _ labels: [String: String] = [:]) -> [Double] {
        samples.filter { sample in
            sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value }
        }.map(\.value)
    }

    private static func isName(_ s: Substring) -> Bool {
        guard let first = s.unicodeScalars.first, first == "_" || first == ":" || first.properties.isAlphabetic && first.isASCII
        else { return false }
        return s.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_" || $0 == ":") }
    }

    private static func sample(_ line: Substring) -> PrometheusSample? {
        var rest = line
        let name = rest.prefix { $0 != "{" && $0 != " " }
        guard isName(name) else { return nil }
        rest = rest.dropFirst(name.count)
        var labels: [String: String] = [:]
        if rest.first == "{" {
            rest = rest.dropFirst()
            while rest.first != "}" {
                let labelName = rest.prefix { $0 != "=" }
                guard isName(labelName), !labelName.contains(":") else { return nil }
                rest = rest.dropFirst(labelName.count)
                guard rest.first == "=" else { return nil }
                rest = rest.dropFirst()
                guard rest.first == "\"" else { return nil }
                rest = rest.dropFirst()
                var value = ""
                var closed = false
                while let c = rest.first {
                    rest = rest.dropFirst()
                    if c == "\"" {
                        closed = true
                        break
                    }
                    if c == "\\" {
                        guard let escaped = rest.first else { return nil }
                        rest = rest.dropFirst()
                        switch escaped {
                        case "\\": value.append("\\")
                        case "\"": value.append("\"")
                        case "n": value.append("\n")
                        default: return nil
                        }
                    } else {
                        value.append(c)
                    }
                }
                guard closed else { return nil }
                labels[String(labelName)] = value
                if rest.first == "," { rest = rest.dropFirst() } else if rest.first != "}" { return nil }
            }
            rest = rest.dropFirst()
        }
        guard rest.first == " " else { return nil }
        let fields = rest.split(separator: " ")
        guard fields.count == 1 || fields.count == 2 else { return nil }
        let value: Double
        switch fields[0] {
        case "+Inf": value = .infinity
        case "-Inf": value = -.infinity
        case "NaN": value = .nan
        default:
            guard let number = Double(fields[0]) else { return nil }
            value = number
        }
        if fields.count == 2, Int64(fields[1]) == nil { return nil }
        return PrometheusSample(name: String(name), labels: labels, value: value)
    }
}
