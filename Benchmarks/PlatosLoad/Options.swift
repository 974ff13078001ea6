import BenchmarkSupport
import Foundation

let usage = """
    platos-load: concurrent callers against a Platos gateway on this machine (127.0.0.1 / ::1 only);
    prints calls/s and p50/p90/p99/p99.9 latency.

      platos-load [--gateway 127.0.0.1:7400] (--token SECRET | --tokens-file FILE | env PLATOS_TOKEN)
                  [--user USER] [--task TASK_ID]
                  (--method METHOD --request JSON | --scenario recall|context-load|context-legs)
                  [--callers 64] [--seconds 10] [--warmup 2] [--rate CALLS_PER_S] [--connections 4]
                  [--timeout-ms 10000] [--thread THREAD_ID] [--seed-messages 20] [--label NAME] [--machine]

    --method/--request   any unary public method and its request in proto3 JSON, for example
                         --method memory.recall --request '{"query":"window seats","limit":10}'
    --scenario recall        memory.recall of two random words (limit 10)
               context-load  context.load on a thread of the caller's (recall 10, messages 20)
               context-legs  the two calls context.load makes (memory.recall, and messages.list
                             with the thread), issued in parallel by each caller and timed one by one
    --tokens-file        one caller identity per line: '<token> [user [thread]]'; caller i uses line
                         i mod n (the thread is the one its context scenarios use).
                         Tokens are rate-limited by the gateway (1,000 calls/s each by default): use
                         several for more than that.
    --rate               total calls/s over all callers, evenly paced (latency counts from each
                         call's slot, so a backlog shows); without it every caller is a closed loop
    --thread             the thread for the context scenarios when the tokens file names none; by
                         default each identity gets a new thread with --seed-messages messages
    --machine            also print one 'LOAD key=value ...' line per series

    Direct mode, to compare against the gateway: calls go straight to the backends, stamped with
    the principal each token resolves to and signed with the internal secret, as the gateway does:
      --direct --registry H:P --memory H:P --threads H:P --secret-file DATA_DIR/internal.secret
    """

enum Scenario: String {
    case recall
    case contextLoad = "context-load"
    case contextLegs = "context-legs"
}

struct Identity {
    var token: String
    var user: String?
    /// Its thread for the context scenarios.
    var thread: String?
}

struct Options {
    var gateway = try! LoopbackEndpoint("127.0.0.1:7400")
    var identities: [Identity] = []
    var task: String?
    var method: String?
    var request: String?
    var scenario: Scenario?
    var callers = 64
    var seconds = 10.0
    var warmup = 2.0
    var rate: Double?
    var connections = 4
    var timeout: Duration = .seconds(10)
    var thread: String?
    var seedMessages = 20
    var label: String?
    var machine = false
    var direct = false
    var registry: LoopbackEndpoint?
    var memory: LoopbackEndpoint?
    var threads: LoopbackEndpoint?
    var secretFile: String?

    init(_ arguments: [String]) throws {
        var it = arguments.makeIterator()
        var token: String?
        var tokensFile: String?
        var user: String?
        func value(_ flag: String) throws -> String {
            guard let v = it.next() else { throw UsageError("\(flag) needs a value") }
            return v
        }
        func number(_ flag: String) throws -> Double {
            let text = try value(flag)
            guard let v = Double(text), v >= 0 else { throw UsageError("\(flag) needs a number, got '\(text)'") }
            return v
        }
        while let flag = it.next() {
            switch flag {
            case "--gateway": gateway = try LoopbackEndpoint(try value(flag))
            case "--token": token = try value(flag)
            case "--tokens-file": tokensFile = try value(flag)
            case "--user": user = try value(flag)
            case "--task": task = try value(flag)
            case "--method": method = try value(flag)
            case "--request": request = try value(flag)
            case "--scenario":
                let name = try value(flag)
                guard let s = Scenario(rawValue: name) else { throw UsageError("unknown scenario '\(name)'") }
                scenario = s
            case "--callers": callers = max(1, Int(try number(flag)))
            case "--seconds": seconds = max(0.1, try number(flag))
            case "--warmup": warmup = try number(flag)
            case "--rate": rate = max(0.1, try number(flag))
            case "--connections": connections = max(1, Int(try number(flag)))
            case "--timeout-ms": timeout = .milliseconds(max(1, Int(try number(flag))))
            case "--thread": thread = try value(flag)
            case "--seed-messages": seedMessages = Int(try number(flag))
            case "--label": label = try value(flag)
            case "--machine": machine = true
            case "--direct": direct = true
            case "--registry": registry = try LoopbackEndpoint(try value(flag))
            case "--memory": memory = try LoopbackEndpoint(try value(flag))
            case "--threads": threads = try LoopbackEndpoint(try value(flag))
            case "--secret-file": secretFile = try value(flag)
            case "-h", "--help":
                print(usage)
                exit(0)
            default: throw UsageError("unknown option \(flag)")
            }
        }
        if let tokensFile {
            let text = try String(contentsOfFile: tokensFile, encoding: .utf8)
            for line in text.split(separator: "\n") {
                let words = line.split(separator: " ", omittingEmptySubsequences: true)
                guard let first = words.first, !first.hasPrefix("#") else { continue }
                identities.append(
                    Identity(
                        token: String(first), user: words.count > 1 ? String(words[1]) : user,
                        thread: words.count > 2 ? String(words[2]) : nil))
            }
        } else if let token = token ?? ProcessInfo.processInfo.environment["PLATOS_TOKEN"] {
            identities = [Identity(token: token, user: user)]
        }
        guard !identities.isEmpty else { throw UsageError("no token: give --token, --tokens-file or PLATOS_TOKEN") }
        switch (method, scenario) {
        case (nil, nil): throw UsageError("give --method and --request, or --scenario")
        case (.some, .some): throw UsageError("give either --method or --scenario, not both")
        case (.some, nil) where request == nil: request = "{}"
        default: break
        }
        if direct {
            guard registry != nil, memory != nil, threads != nil, secretFile != nil else {
                throw UsageError("--direct needs --registry, --memory, --threads and --secret-file")
            }
            guard task == nil else { throw UsageError("--task is resolved by the gateway; it cannot be used with --direct") }
            guard scenario != .contextLoad else { throw UsageError("context.load is answered by the gateway; use context-legs with --direct") }
        }
    }
}
